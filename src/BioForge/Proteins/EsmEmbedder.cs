using BioForge.IO;
using BioForge.Models.Esm;
using static TorchSharp.torch;

namespace BioForge.Proteins;

public enum Pooling { Mean, Cls, None }

/// <summary>
/// What to do with a sequence longer than the model reads: refuse it, cut its end or its start (as NIM's and OpenAI's
/// <c>truncate</c>), or read it whole in overlapping windows (<see cref="ResidueWindows"/>), each residue's vector the
/// weighted mean of the windows that read it.
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
    /// <summary>
    /// Representations to take: 0 = embedding output, N = after layer N; negative counts from the end (-1 = final, after
    /// the last LayerNorm). Several are side by side in each vector, hidden_size columns each, in this order.
    /// </summary>
    public IReadOnlyList<int> Layers { get; init; } = [-1];
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
internal sealed class EsmEmbedder(EsmCheckpoint model, EmbedOptions options)
{
    public IEnumerable<Embedding> Embed(IEnumerable<FastaRecord> records, IProgress<int>? progress = null)
    {
        var chosen = ResolveLayers(model.Config.NumHiddenLayers, options.Layers);
        if (options.Truncate == Truncation.Window && options.Pooling == Pooling.Cls)
            throw new BioForgeException("--pool cls with --truncate window: a sequence read in windows has a <cls> vector per window; pool with mean or none");
        int last = model.Config.NumHiddenLayers;
        var forward = new EsmForwardOptions { HiddenStates = chosen.Any(l => l != last), Kernel = options.Kernel };
        Tensor Hidden(TokenBatch batch)
        {
            var output = model.Model.Forward(batch.InputIds, batch.AttentionMask, forward);
            var states = chosen.Select(l => l == last ? output.LastHiddenState : output.HiddenStates![l]).ToArray();
            return states.Length == 1 ? states[0] : cat(states, -1);
        }
        if (options.Truncate == Truncation.Window) return Stitch(records, Hidden, progress);
        int max = model.Config.MaxResidues;
        return WindowedEmbedding.Run(records, Tokenize, options.WindowTokens, options.BatchTokens, model.Tokenizer.PadId, model.Device, Hidden,
            (row, tokens) => Pool(row, tokens, options.Pooling), progress).Select(e => e.Record.Sequence.Length <= max ? e
                : e with { Offset = options.Truncate == Truncation.Start ? e.Record.Sequence.Length - max : 0, Residues = max });
    }

    /// <summary>
    /// The representations asked for as indices 0 … <paramref name="layers"/> (negative ones counted from the end);
    /// refuses one the model does not have and the same one twice.
    /// </summary>
    public static int[] ResolveLayers(int layers, IReadOnlyList<int> asked)
    {
        if (asked.Count == 0) throw new BioForgeException("--layer: name at least one representation");
        var resolved = asked.Select(l =>
        {
            int index = l < 0 ? layers + 1 + l : l;
            return index >= 0 && index <= layers ? index
                : throw new BioForgeException($"--layer {l}: this model has representations 0..{layers} (or -1..-{layers + 1} from the end)");
        }).ToArray();
        if (resolved.Distinct().Count() < resolved.Length)
            throw new BioForgeException($"--layer {string.Join(" --layer ", asked)}: a representation is named twice ({string.Join(", ", resolved)} counted from 0)");
        return resolved;
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

    /// <summary>A record read whole (<see cref="Start"/> &lt; 0), or one window of it from token <see cref="Start"/> of [&lt;cls&gt;, residues…, &lt;eos&gt;].</summary>
    private sealed record Piece(FastaRecord Record, int[] Tokens, int Start, int Windows);

    /// <summary>
    /// Records the model reads whole are embedded as without windows; a longer one is cut into windows
    /// (<see cref="ResidueWindows"/>), each window's positions embedded, and put back together: a residue's vector is the
    /// weighted mean over the windows that read it (weights falling towards each window's edges), then pooled as asked.
    /// </summary>
    private IEnumerable<Embedding> Stitch(IEnumerable<FastaRecord> records, Func<TokenBatch, Tensor> hidden, IProgress<int>? progress)
    {
        int maxTokens = model.Config.MaxPositionEmbeddings, width = ResidueWindows.Width(maxTokens);
        IEnumerable<Piece> Pieces()
        {
            foreach (var record in records)
            {
                var tokens = Encode(record);
                if (tokens.Length <= maxTokens)
                {
                    yield return new Piece(record, tokens, -1, 1);
                    continue;
                }
                var starts = ResidueWindows.Tiling(tokens.Length, width);
                foreach (int start in starts) yield return new Piece(record, tokens[start..(start + width)], start, starts.Length);
            }
        }
        using var pieces = WindowedEmbedding.Run(Pieces(), piece => piece.Tokens, options.WindowTokens, options.BatchTokens, model.Tokenizer.PadId, model.Device, hidden,
            (piece, row, tokens) => piece.Start < 0 ? Pool(row, tokens, options.Pooling) : (row.narrow(0, 0, tokens), tokens), null).GetEnumerator();
        while (pieces.MoveNext())
        {
            var (first, values, rows, columns) = pieces.Current;
            if (first.Start < 0)
            {
                progress?.Report(1);
                yield return new Embedding(first.Record, values, rows, columns);
                continue;
            }
            int length = first.Record.Sequence.Length;
            var sum = new double[(long)length * columns];
            var weights = new double[length];
            for (int w = 0; w < first.Windows; w++)
            {
                if (w > 0 && !pieces.MoveNext()) throw new InvalidOperationException($"record '{first.Record.Id}': window {w + 1} of {first.Windows} was not embedded");
                var (piece, window, _, _) = pieces.Current;
                for (int p = 0; p < width; p++)
                {
                    int residue = piece.Start + p - 1; // token 0 is <cls>
                    if (residue < 0 || residue >= length) continue;
                    double weight = ResidueWindows.Weight(p, width);
                    weights[residue] += weight;
                    for (int c = 0; c < columns; c++) sum[(long)residue * columns + c] += weight * window[(long)p * columns + c];
                }
            }
            var pooled = new float[options.Pooling == Pooling.Mean ? columns : (long)length * columns];
            var mean = new double[columns];
            for (int residue = 0; residue < length; residue++)
                for (int c = 0; c < columns; c++)
                {
                    double value = sum[(long)residue * columns + c] / weights[residue];
                    if (options.Pooling == Pooling.Mean) mean[c] += value;
                    else pooled[(long)residue * columns + c] = (float)value;
                }
            if (options.Pooling == Pooling.Mean)
                for (int c = 0; c < columns; c++) pooled[c] = (float)(mean[c] / length);
            progress?.Report(1);
            yield return new Embedding(first.Record, pooled, options.Pooling == Pooling.Mean ? 1 : length, columns);
        }
    }

    private int[] Tokenize(FastaRecord record)
    {
        int max = model.Config.MaxResidues;
        if (record.Sequence.Length > max)
            record = options.Truncate switch
            {
                Truncation.End => record with { Sequence = record.Sequence[..max] },
                Truncation.Start => record with { Sequence = record.Sequence[^max..] },
                _ => throw TooLong(record, model.Config),
            };
        return Encode(record);
    }

    /// <summary>The first record of <paramref name="records"/> longer than a model of <paramref name="config"/> reads, refused by name (before any work, where the file can be read twice).</summary>
    public static void RefuseTooLong(IEnumerable<FastaRecord> records, EsmConfig config)
    {
        if (records.FirstOrDefault(r => r.Sequence.Length > config.MaxResidues) is { } record) throw TooLong(record, config);
    }

    private static BioForgeException TooLong(FastaRecord record, EsmConfig config) =>
        new($"{record.Where}: record '{record.Id}' has {record.Sequence.Length} residues; this model takes at most {config.MaxResidues} (max_position_embeddings {config.MaxPositionEmbeddings} minus <cls> and <eos>); "
            + $"read it in windows (--truncate window) or embed its first or last {config.MaxResidues} (--truncate end or start)");

    /// <summary>The record's tokens [&lt;cls&gt;, residues…, &lt;eos&gt;], whatever its length.</summary>
    private int[] Encode(FastaRecord record)
    {
        try
        {
            return model.Tokenizer.Encode(record.Sequence, options.UnknownAsUnk, stopCodon: false);
        }
        catch (BioForgeException e)
        {
            throw new BioForgeException($"{record.Where}: record '{record.Id}': {e.Message}");
        }
    }
}
