using BioForge.IO;
using BioForge.Models.Esm;
using static TorchSharp.torch;

namespace BioForge.Proteins;

public enum Pooling { Mean, Cls, None }

/// <summary>
/// What to do with a sequence longer than the model reads: refuse it, cut its end or its start (as NIM's and OpenAI's
/// <c>truncate</c>), or read it whole in overlapping windows (<see cref="ResidueWindows"/>), each residue's vector the mean
/// of the windows that read it.
/// </summary>
public enum Truncation { None, End, Start, Window }

/// <summary>One record's embedding: [hidden] when pooled, [residues, hidden] with <see cref="Pooling.None"/>; float32 on the CPU.</summary>
public sealed record Embedding(FastaRecord Record, float[] Values, int Rows, int Columns)
{
    /// <summary>Residues of the record before the first row (a sequence cut at its start: <see cref="Truncation.Start"/>).</summary>
    public int Offset { get; init; }

    /// <summary>Residues of the record the model read (fewer than its length where it was cut).</summary>
    public int Residues { get; init; } = Record.Sequence.Length;
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
        if (options.Truncate == Truncation.Window && options.Pooling == Pooling.Cls)
            throw new BioForgeException("--pool cls with --truncate window: a sequence read in windows has a <cls> vector per window; pool with mean or none");
        var forward = new EsmForwardOptions { HiddenStates = layer != layers, Kernel = options.Kernel };
        int max = model.Config.MaxResidues;
        IEnumerable<Embedding> Run(IEnumerable<FastaRecord> input, Pooling pooling, IProgress<int>? reporter) =>
            WindowedEmbedding.Run(input, Tokenize, options.WindowTokens, options.BatchTokens, model.Tokenizer.PadId, model.Device, batch =>
            {
                var output = model.Model.Forward(batch.InputIds, batch.AttentionMask, forward);
                return forward.HiddenStates ? output.HiddenStates![layer] : output.LastHiddenState;
            }, (row, tokens) => Pool(row, tokens, pooling), reporter);
        if (options.Truncate == Truncation.Window) return Stitch(records, pieces => Run(pieces, Pooling.None, null), progress);
        return Run(records, options.Pooling, progress).Select(e => e.Record.Sequence.Length <= max ? e
            : e with { Offset = options.Truncate == Truncation.Start ? e.Record.Sequence.Length - max : 0, Residues = max });
    }

    /// <summary>A record's row [&lt;cls&gt;, residues…, &lt;eos&gt;, padding…] pooled as asked.</summary>
    private static (Tensor Values, int Rows) Pool(Tensor row, int tokens, Pooling pooling)
    {
        int residues = tokens - 2;
        return pooling switch
        {
            Pooling.Mean => (row.narrow(0, 1, residues).mean([0L]), 1),
            Pooling.Cls => (row[0], 1),
            _ => (row.narrow(0, 1, residues), residues),
        };
    }

    /// <summary>
    /// Each record cut into overlapping windows, the windows embedded per residue by <paramref name="perResidue"/> (in
    /// order), and put back together: a residue's vector is the mean over the windows that read it, then pooled as asked.
    /// </summary>
    private IEnumerable<Embedding> Stitch(IEnumerable<FastaRecord> records, Func<IEnumerable<FastaRecord>, IEnumerable<Embedding>> perResidue, IProgress<int>? progress)
    {
        int width = model.Config.MaxResidues;
        var cut = new Queue<(FastaRecord Record, int[] Starts)>(); // filled as the embedder reads ahead, emptied in the same order
        IEnumerable<FastaRecord> Windows()
        {
            foreach (var record in records)
            {
                var starts = ResidueWindows.Tiling(record.Sequence.Length, width).ToArray();
                cut.Enqueue((record, starts));
                foreach (int start in starts)
                    yield return record with { Sequence = record.Sequence.Substring(start, Math.Min(width, record.Sequence.Length - start)) };
            }
        }
        using var windows = perResidue(Windows()).GetEnumerator();
        while (windows.MoveNext())
        {
            var (record, starts) = cut.Dequeue();
            int length = record.Sequence.Length, columns = windows.Current.Columns;
            var sum = new double[(long)length * columns];
            var reads = new int[length];
            for (int w = 0; w < starts.Length; w++)
            {
                if (w > 0 && !windows.MoveNext()) throw new InvalidOperationException($"record '{record.Id}': window {w + 1} of {starts.Length} was not embedded");
                var window = windows.Current;
                for (int r = 0; r < window.Rows; r++)
                {
                    int residue = starts[w] + r;
                    reads[residue]++;
                    for (int c = 0; c < columns; c++) sum[(long)residue * columns + c] += window.Values[(long)r * columns + c];
                }
            }
            var values = new float[options.Pooling == Pooling.Mean ? columns : (long)length * columns];
            var pooled = new double[columns];
            for (int residue = 0; residue < length; residue++)
                for (int c = 0; c < columns; c++)
                {
                    double mean = sum[(long)residue * columns + c] / reads[residue];
                    if (options.Pooling == Pooling.Mean) pooled[c] += mean;
                    else values[(long)residue * columns + c] = (float)mean;
                }
            if (options.Pooling == Pooling.Mean)
                for (int c = 0; c < columns; c++) values[c] = (float)(pooled[c] / length);
            progress?.Report(1);
            yield return new Embedding(record, values, options.Pooling == Pooling.Mean ? 1 : length, columns);
        }
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
                _ => throw new BioForgeException($"{record.Where}: record '{record.Id}' has {sequence.Length} residues; this model takes at most {max} (max_position_embeddings {model.Config.MaxPositionEmbeddings} minus <cls> and <eos>); read it in windows (--truncate window) or embed its first or last {max} (--truncate end or start)"),
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
