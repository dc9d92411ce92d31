using static TorchSharp.torch;

namespace BioForge.Models;

/// <summary>Where attention layers keep keys and values between decoding steps.</summary>
public interface IKeyValueStore
{
    /// <summary>Stores this step's keys and values of <paramref name="layer"/> ([B, kv heads, T, head dim]) and returns every
    /// key and value the step attends to ([B, kv heads, K, head dim]).</summary>
    (Tensor Keys, Tensor Values) Append(int layer, Tensor keys, Tensor values);
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

    public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
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
