using BioForge.Runtime;
using static TorchSharp.torch;

namespace BioForge.Models;

/// <summary>
/// Rotary position embeddings in the rotate-half layout shared by ESM-2 and Llama: angle(t, i) = t / θ^(2i/d), tables
/// and rotation in float32 as the reference implementations compute them.
/// </summary>
internal static class RotaryEmbedding
{
    /// <summary>cos and sin tables [length, dim] for positions start … start + length − 1.</summary>
    public static (Tensor Cos, Tensor Sin) Tables(long start, long length, int dim, double theta, Device device)
    {
        using var scope = NewDisposeScope();
        var invFreq = tensor(InverseFrequencies(dim, theta), ScalarType.Float32, device);
        var angles = outer(ScalarArithmetic.Range(start, start + length, device).to(ScalarType.Float32), invFreq);
        angles = cat([angles, angles], dim: -1);
        return (angles.cos().MoveToOuterDisposeScope(), angles.sin().MoveToOuterDisposeScope());
    }

    /// <summary>cos and sin tables [B, 1, T, dim] for the positions [B, T] of each row (broadcast over the heads).</summary>
    public static (Tensor Cos, Tensor Sin) Tables(Tensor positions, int dim, double theta)
    {
        using var scope = NewDisposeScope();
        var invFreq = tensor(InverseFrequencies(dim, theta), ScalarType.Float32, positions.device);
        var angles = positions.to(ScalarType.Float32).unsqueeze(-1).mul(invFreq);
        angles = cat([angles, angles], dim: -1).unsqueeze(1);
        return (angles.cos().MoveToOuterDisposeScope(), angles.sin().MoveToOuterDisposeScope());
    }

    /// <summary>θ^(−2i/d) in float32 as the reference computes it, built on the host (no implicit scalars, see ScalarArithmetic).</summary>
    private static float[] InverseFrequencies(int dim, double theta) =>
        Enumerable.Range(0, dim / 2).Select(i => 1f / MathF.Pow((float)theta, (float)(2 * i) / dim)).ToArray();

    /// <summary>x·cos + rotate_half(x)·sin over the last dimension, returned in x's type.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        var rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], dim: -1);
        return (x * cos).Plus(rotated * sin).to(x.dtype);
    }
}
