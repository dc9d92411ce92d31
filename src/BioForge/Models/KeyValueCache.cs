using static TorchSharp.torch;

namespace BioForge.Models;

/// <summary>Where attention layers keep keys and values between decoding steps, and how a step attends over them.</summary>
public interface IKeyValueStore
{
    /// <summary>
    /// Stores this step's keys and values of <paramref name="layer"/> ([B, kv heads, T, head dim]) and returns the
    /// attention of <paramref name="queries"/> ([B, heads, T, head dim]) over every key the step sees: [B, heads, T, head
    /// dim]. <paramref name="allowed"/> ([B, 1, T, K], K the keys stored so far) says which; a store that knows each
    /// row's length may read only those positions.
    /// </summary>
    Tensor Attend(int layer, Tensor queries, Tensor keys, Tensor values, Tensor allowed);
}

/// <summary>
/// Keys and values of every layer for the positions decoded so far ([B, kv heads, positions, head dim] each), all rows
/// at the same length. The cache owns its tensors; dispose it when decoding ends.
/// </summary>
public sealed class KeyValueCache(int layers) : IKeyValueStore, IDisposable
{
    private readonly Tensor?[] keys = new Tensor?[layers];
    private readonly Tensor?[] values = new Tensor?[layers];

    /// <summary>Number of cached positions (those of layer 0, which is appended first).</summary>
    public long Length => keys[0]?.shape[2] ?? 0;

    public Tensor Attend(int layer, Tensor queries, Tensor keys, Tensor values, Tensor allowed)
    {
        var (k, v) = Append(layer, keys, values);
        return Attention.Masked(queries, k, v, allowed);
    }

    private (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        var newKeys = keys[layer] is null ? k.detach().clone() : cat([keys[layer]!, k.detach()], dim: 2);
        var newValues = values[layer] is null ? v.detach().clone() : cat([values[layer]!, v.detach()], dim: 2);
        keys[layer]?.Dispose();
        values[layer]?.Dispose();
        keys[layer] = newKeys.DetachFromDisposeScope();
        values[layer] = newValues.DetachFromDisposeScope();
        return (keys[layer]!, values[layer]!);
    }

    /// <summary>Keeps only the given batch rows (sequences still being decoded).</summary>
    public void Select(Tensor rows)
    {
        for (int i = 0; i < keys.Length; i++)
        {
            if (keys[i] is null) continue;
            // Both selected before either leaves the caller's scope: if the second fails, the scope frees the first.
            var k = keys[i]!.index_select(0, rows);
            var v = values[i]!.index_select(0, rows);
            keys[i]!.Dispose();
            values[i]!.Dispose();
            keys[i] = k.DetachFromDisposeScope();
            values[i] = v.DetachFromDisposeScope();
        }
    }

    public void Dispose()
    {
        foreach (var t in keys) t?.Dispose();
        foreach (var t in values) t?.Dispose();
    }
}
