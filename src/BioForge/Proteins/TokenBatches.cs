using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.Proteins;

/// <summary>A padded batch: which inputs it holds, their token ids [B, T] and attention mask [B, T] (owned).</summary>
internal sealed record TokenBatch(int[] Indices, Tensor InputIds, Tensor AttentionMask) : IDisposable
{
    public void Dispose()
    {
        InputIds.Dispose();
        AttentionMask.Dispose();
    }
}

internal static class TokenBatches
{
    /// <summary>
    /// Groups token sequences by length so that each batch's padded size (count × longest) stays within
    /// <paramref name="maxTokens"/>; a sequence longer than the budget travels alone. Padding waste is small because
    /// neighbours in length order have similar lengths.
    /// </summary>
    public static IEnumerable<TokenBatch> ByLength(IReadOnlyList<int[]> sequences, int maxTokens, int padId, Device device)
    {
        if (maxTokens <= 0) throw new BioForgeException($"--batch-tokens must be positive (got {maxTokens})");
        var order = Enumerable.Range(0, sequences.Count).OrderBy(i => sequences[i].Length).ToArray();
        int start = 0;
        while (start < order.Length)
        {
            int end = start + 1;
            // lengths ascend, so the next sequence is the longest of the extended batch
            while (end < order.Length && (long)(end - start + 1) * sequences[order[end]].Length <= maxTokens) end++;
            yield return Pad(order[start..end], sequences, padId, device);
            start = end;
        }
    }

    public static TokenBatch Pad(int[] indices, IReadOnlyList<int[]> sequences, int padId, Device device)
    {
        int width = indices.Max(i => sequences[i].Length);
        var ids = new long[indices.Length * width];
        var mask = new long[indices.Length * width];
        for (int r = 0; r < indices.Length; r++)
        {
            var seq = sequences[indices[r]];
            for (int c = 0; c < width; c++)
            {
                bool real = c < seq.Length;
                ids[r * width + c] = real ? seq[c] : padId;
                mask[r * width + c] = real ? 1 : 0;
            }
        }
        var idTensor = OnDevice(ids);
        try
        {
            return new TokenBatch(indices, idTensor, OnDevice(mask));
        }
        catch
        {
            idTensor.Dispose(); // the mask's copy failed (out of device memory): callers hold no scope that would free it
            throw;
        }

        Tensor OnDevice(long[] values)
        {
            var host = tensor(values, [indices.Length, width], ScalarType.Int64);
            if (device.type == DeviceType.CPU) return host;
            using (host) return host.to(device);
        }
    }
}
