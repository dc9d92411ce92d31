using BioForge.IO;
using static TorchSharp.torch;

namespace BioForge.Proteins;

/// <summary>
/// The streaming every embedder shares: records (or pieces of them) read a window at a time (memory bounded by the
/// window, whatever the file size), sorted into batches by length under a token budget, each batch's hidden states
/// pooled per item, and the vectors yielded in input order.
/// </summary>
internal static class WindowedEmbedding
{
    /// <param name="tokenize">An item's token ids with the model's start and end tokens; refuses what the model cannot take.</param>
    /// <param name="hidden">The hidden states [B, T, H] of a batch, in any dtype on any device (in the batch's dispose scope, without gradients).</param>
    /// <param name="pool">An item's vectors from its row of hidden states [T, H] and its token count: the values and how many rows they hold.</param>
    public static IEnumerable<(T Item, float[] Values, int Rows, int Columns)> Run<T>(IEnumerable<T> items, Func<T, int[]> tokenize, long windowTokens, int batchTokens,
        int padId, Device device, Func<TokenBatch, Tensor> hidden, Func<T, Tensor, int, (Tensor Values, int Rows)> pool, IProgress<int>? progress)
    {
        var window = new List<(T Item, int[] Tokens)>();
        long tokens = 0;
        foreach (var item in items)
        {
            var ids = tokenize(item);
            window.Add((item, ids));
            tokens += ids.Length;
            if (tokens < windowTokens) continue;
            foreach (var e in Window(window, batchTokens, padId, device, hidden, pool, progress)) yield return e;
            window.Clear();
            tokens = 0;
        }
        foreach (var e in Window(window, batchTokens, padId, device, hidden, pool, progress)) yield return e;
    }

    /// <summary><see cref="Run{T}"/> over FASTA records, as embeddings.</summary>
    public static IEnumerable<Embedding> Run(IEnumerable<FastaRecord> records, Func<FastaRecord, int[]> tokenize, long windowTokens, int batchTokens,
        int padId, Device device, Func<TokenBatch, Tensor> hidden, Func<Tensor, int, (Tensor Values, int Rows)> pool, IProgress<int>? progress) =>
        Run(records, tokenize, windowTokens, batchTokens, padId, device, hidden, (_, row, length) => pool(row, length), progress)
            .Select(e => new Embedding(e.Item, e.Values, e.Rows, e.Columns));

    private static IEnumerable<(T Item, float[] Values, int Rows, int Columns)> Window<T>(List<(T Item, int[] Tokens)> window, int batchTokens, int padId, Device device,
        Func<TokenBatch, Tensor> hidden, Func<T, Tensor, int, (Tensor Values, int Rows)> pool, IProgress<int>? progress)
    {
        if (window.Count == 0) yield break;
        var results = new (T Item, float[] Values, int Rows, int Columns)[window.Count];
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
                    var (values, rows) = pool(window[index].Item, states[r], tokens[index].Length);
                    results[index] = (window[index].Item, values.contiguous().data<float>().ToArray(), rows, (int)states.shape[2]);
                }
            }
            progress?.Report(batch.Indices.Length);
        }
        foreach (var e in results) yield return e;
    }
}
