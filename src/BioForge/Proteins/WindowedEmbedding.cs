using BioForge.IO;
using static TorchSharp.torch;

namespace BioForge.Proteins;

/// <summary>
/// The streaming every embedder shares: records read a window at a time (memory bounded by the window, whatever the
/// file size), sorted into batches by length under a token budget, each batch's hidden states pooled per record, and
/// the embeddings yielded in input order.
/// </summary>
internal static class WindowedEmbedding
{
    /// <param name="tokenize">A record's token ids with the model's start and end tokens; refuses what the model cannot take.</param>
    /// <param name="hidden">The hidden states [B, T, H] of a batch, in any dtype on any device (in the batch's dispose scope, without gradients).</param>
    /// <param name="pool">A record's embedding from its row of hidden states [T, H] and its token count: the values and how many rows they hold.</param>
    public static IEnumerable<Embedding> Run(IEnumerable<FastaRecord> records, Func<FastaRecord, int[]> tokenize, long windowTokens, int batchTokens,
        int padId, Device device, Func<TokenBatch, Tensor> hidden, Func<Tensor, int, (Tensor Values, int Rows)> pool, IProgress<int>? progress)
    {
        var window = new List<(FastaRecord Record, int[] Tokens)>();
        long tokens = 0;
        foreach (var record in records)
        {
            var ids = tokenize(record);
            window.Add((record, ids));
            tokens += ids.Length;
            if (tokens < windowTokens) continue;
            foreach (var e in Window(window, batchTokens, padId, device, hidden, pool, progress)) yield return e;
            window.Clear();
            tokens = 0;
        }
        foreach (var e in Window(window, batchTokens, padId, device, hidden, pool, progress)) yield return e;
    }

    private static IEnumerable<Embedding> Window(List<(FastaRecord Record, int[] Tokens)> window, int batchTokens, int padId, Device device,
        Func<TokenBatch, Tensor> hidden, Func<Tensor, int, (Tensor Values, int Rows)> pool, IProgress<int>? progress)
    {
        if (window.Count == 0) yield break;
        var results = new Embedding?[window.Count];
        var tokens = window.Select(w => w.Tokens).ToList();
        foreach (var batch in TokenBatches.ByLength(tokens, batchTokens, padId, device))
        {
            using (batch) // also when the forward pass throws
            using (NewDisposeScope())
            using (no_grad())
            {
                var states = hidden(batch).to(ScalarType.Float32).cpu();
                for (int r = 0; r < batch.Indices.Length; r++)
                {
                    int index = batch.Indices[r];
                    var (values, rows) = pool(states[r], tokens[index].Length);
                    results[index] = new Embedding(window[index].Record, values.contiguous().data<float>().ToArray(), rows, (int)states.shape[2]);
                }
            }
            progress?.Report(batch.Indices.Length);
        }
        foreach (var e in results) yield return e!;
    }
}
