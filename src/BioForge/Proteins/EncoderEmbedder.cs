using BioForge.IO;
using BioForge.Models;
using static TorchSharp.torch;

namespace BioForge.Proteins;

/// <summary>
/// Mean-pooled final hidden states of FASTA records from any registered family's <see cref="SequenceEncoder"/> (a
/// decoder such as GPT-2 or Llama), streamed like <see cref="EsmEmbedder"/>: windows of records, batches by length under
/// a token budget, results in input order.
/// </summary>
public sealed class EncoderEmbedder(SequenceEncoder encoder, int batchTokens, int windowTokens = 1 << 16)
{
    public IEnumerable<Embedding> Embed(IEnumerable<FastaRecord> records, IProgress<int>? progress = null)
    {
        var window = new List<(FastaRecord Record, int[] Tokens)>();
        long tokens = 0;
        foreach (var record in records)
        {
            int[] ids;
            try
            {
                ids = [.. encoder.Encode(record.Sequence).Ids.Select(i => (int)i)];
            }
            catch (BioForgeException e)
            {
                throw new BioForgeException($"record '{record.Id}' (line {record.Line}): {e.Message}");
            }
            // Rotary positions never fail: past the trained ones they only mean nothing.
            if (ids.Length > encoder.MaxTokens)
                throw new BioForgeException($"record '{record.Id}' (line {record.Line}) has {ids.Length} tokens with its start and end tokens; this model takes at most {encoder.MaxTokens}");
            window.Add((record, ids));
            tokens += ids.Length;
            if (tokens < windowTokens) continue;
            foreach (var e in EmbedWindow(window, progress)) yield return e;
            window.Clear();
            tokens = 0;
        }
        foreach (var e in EmbedWindow(window, progress)) yield return e;
    }

    private IEnumerable<Embedding> EmbedWindow(List<(FastaRecord Record, int[] Tokens)> window, IProgress<int>? progress)
    {
        if (window.Count == 0) yield break;
        var results = new Embedding?[window.Count];
        var tokens = window.Select(w => w.Tokens).ToList();
        var device = encoder.Network.parameters().First().device;
        encoder.Network.eval();
        foreach (var batch in TokenBatches.ByLength(tokens, batchTokens, (int)encoder.PadId, device))
        {
            using (batch) // also when the forward pass throws
            using (var scope = NewDisposeScope())
            using (no_grad())
            {
                var hidden = encoder.Hidden(batch.InputIds, batch.AttentionMask).to(ScalarType.Float32).cpu();
                for (int r = 0; r < batch.Indices.Length; r++)
                {
                    int index = batch.Indices[r];
                    // The residues: every token between the start and end tokens the encoder framed the text with.
                    var values = hidden[r].narrow(0, 1, tokens[index].Length - 2).mean([0L]).contiguous().data<float>().ToArray();
                    results[index] = new Embedding(window[index].Record, values, 1, (int)hidden.shape[2]);
                }
            }
            progress?.Report(batch.Indices.Length);
        }
        foreach (var e in results) yield return e!;
    }
}
