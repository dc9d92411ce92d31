using BioForge.IO;
using BioForge.Models.Esm;
using static TorchSharp.torch;

namespace BioForge.Proteins;

public enum Pooling { Mean, Cls, None }

/// <summary>What to do with a sequence longer than the model reads: refuse it, or cut its end or its start (as NIM's and OpenAI's <c>truncate</c>).</summary>
public enum Truncation { None, End, Start }

/// <summary>One record's embedding: [hidden] when pooled, [residues, hidden] with <see cref="Pooling.None"/>; float32 on the CPU.</summary>
public sealed record Embedding(FastaRecord Record, float[] Values, int Rows, int Columns)
{
    /// <summary>Residues of the record before the first row (a sequence cut at its start: <see cref="Truncation.Start"/>).</summary>
    public int Offset { get; init; }
}

public sealed record EmbedOptions
{
    public Pooling Pooling { get; init; } = Pooling.Mean;
    /// <summary>Representation to take: 0 = embedding output, N = after layer N; negative counts from the end (-1 = final, after the last LayerNorm).</summary>
    public int Layer { get; init; } = -1;
    public int BatchTokens { get; init; } = 4096;
    /// <summary>How many tokens of input are read ahead and sorted by length before batching.</summary>
    public int WindowTokens { get; init; } = 1 << 16;
    public bool UnknownAsUnk { get; init; }
    /// <summary>A sequence past the model's length is refused (None) or cut to its first (End) or last (Start) residues it can read.</summary>
    public Truncation Truncate { get; init; }
    public AttentionKernel Kernel { get; init; } = AttentionKernel.Fused;
}

/// <summary>
/// Streams FASTA records through ESM-2: reads a window of records, batches it by length under a token budget, and
/// yields embeddings in input order. Memory stays bounded by the window, whatever the file size.
/// </summary>
public sealed class EsmEmbedder(EsmCheckpoint model, EmbedOptions options)
{
    public IEnumerable<Embedding> Embed(IEnumerable<FastaRecord> records, IProgress<int>? progress = null)
    {
        int layers = model.Config.NumHiddenLayers;
        int layer = options.Layer < 0 ? layers + 1 + options.Layer : options.Layer;
        if (layer < 0 || layer > layers)
            throw new BioForgeException($"--layer {options.Layer}: this model has representations 0..{layers} (or -1..-{layers + 1} from the end)");
        var forward = new EsmForwardOptions { HiddenStates = layer != layers, Kernel = options.Kernel };
        int max = model.Config.MaxResidues;
        return WindowedEmbedding.Run(records, Tokenize, options.WindowTokens, options.BatchTokens, model.Tokenizer.PadId, model.Device, batch =>
        {
            var output = model.Model.Forward(batch.InputIds, batch.AttentionMask, forward);
            return forward.HiddenStates ? output.HiddenStates![layer] : output.LastHiddenState;
        }, Pool, progress).Select(e => options.Truncate == Truncation.Start && e.Record.Sequence.Length > max ? e with { Offset = e.Record.Sequence.Length - max } : e);
    }

    /// <summary>A record's row [&lt;cls&gt;, residues…, &lt;eos&gt;, padding…] pooled as asked.</summary>
    private (Tensor Values, int Rows) Pool(Tensor row, int tokens)
    {
        int residues = tokens - 2;
        return options.Pooling switch
        {
            Pooling.Mean => (row.narrow(0, 1, residues).mean([0L]), 1),
            Pooling.Cls => (row[0], 1),
            _ => (row.narrow(0, 1, residues), residues),
        };
    }

    private int[] Tokenize(FastaRecord record)
    {
        int max = model.Config.MaxResidues;
        string sequence = record.Sequence;
        if (sequence.Length > max)
            sequence = options.Truncate switch
            {
                Truncation.End => sequence[..max],
                Truncation.Start => sequence[^max..],
                _ => throw new BioForgeException($"{record.Where}: record '{record.Id}' has {sequence.Length} residues; this model takes at most {max} (max_position_embeddings {model.Config.MaxPositionEmbeddings} minus <cls> and <eos>); embed its first or last {max} by truncating it"),
            };
        try
        {
            return model.Tokenizer.Encode(sequence, options.UnknownAsUnk);
        }
        catch (BioForgeException e)
        {
            throw new BioForgeException($"{record.Where}: record '{record.Id}': {e.Message}");
        }
    }
}
