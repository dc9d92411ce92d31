using BioForge.IO;
using BioForge.Models.Esm;
using static TorchSharp.torch;

namespace BioForge.Proteins;

public enum Pooling { Mean, Cls, None }

/// <summary>One record's embedding: [hidden] when pooled, [residues, hidden] with <see cref="Pooling.None"/>; float32 on the CPU.</summary>
public sealed record Embedding(FastaRecord Record, float[] Values, int Rows, int Columns);

public sealed record EmbedOptions
{
    public Pooling Pooling { get; init; } = Pooling.Mean;
    /// <summary>Representation to take: 0 = embedding output, N = after layer N; negative counts from the end (-1 = final, after the last LayerNorm).</summary>
    public int Layer { get; init; } = -1;
    public int BatchTokens { get; init; } = 4096;
    /// <summary>How many tokens of input are read ahead and sorted by length before batching.</summary>
    public int WindowTokens { get; init; } = 1 << 16;
    public bool UnknownAsUnk { get; init; }
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

        var window = new List<(FastaRecord Record, int[] Tokens)>();
        long windowTokens = 0;
        foreach (var record in records)
        {
            var tokens = Tokenize(record);
            window.Add((record, tokens));
            windowTokens += tokens.Length;
            if (windowTokens >= options.WindowTokens)
            {
                foreach (var e in EmbedWindow(window, layer, progress)) yield return e;
                window.Clear();
                windowTokens = 0;
            }
        }
        foreach (var e in EmbedWindow(window, layer, progress)) yield return e;
    }

    private int[] Tokenize(FastaRecord record)
    {
        if (record.Sequence.Length > model.Config.MaxResidues)
            throw new BioForgeException($"record '{record.Id}' (line {record.Line}) has {record.Sequence.Length} residues; this model takes at most {model.Config.MaxResidues} (max_position_embeddings {model.Config.MaxPositionEmbeddings} minus <cls> and <eos>)");
        try
        {
            return model.Tokenizer.Encode(record.Sequence, options.UnknownAsUnk);
        }
        catch (BioForgeException e)
        {
            throw new BioForgeException($"record '{record.Id}' (line {record.Line}): {e.Message}");
        }
    }

    private IEnumerable<Embedding> EmbedWindow(List<(FastaRecord Record, int[] Tokens)> window, int layer, IProgress<int>? progress)
    {
        if (window.Count == 0) yield break;
        var results = new Embedding?[window.Count];
        var tokens = window.Select(w => w.Tokens).ToList();
        foreach (var batch in TokenBatches.ByLength(tokens, options.BatchTokens, model.Tokenizer.PadId, model.Device))
        {
            using (batch) // also when the forward pass throws
            using (var scope = NewDisposeScope())
            using (no_grad())
            {
                var forward = new EsmForwardOptions { HiddenStates = layer != model.Config.NumHiddenLayers, Kernel = options.Kernel };
                var output = model.Model.Forward(batch.InputIds, batch.AttentionMask, forward);
                var hidden = (forward.HiddenStates ? output.HiddenStates![layer] : output.LastHiddenState).to(ScalarType.Float32).cpu();
                for (int r = 0; r < batch.Indices.Length; r++)
                {
                    int index = batch.Indices[r];
                    int residues = tokens[index].Length - 2;
                    var row = hidden[r];
                    var selected = options.Pooling switch
                    {
                        Pooling.Mean => row.narrow(0, 1, residues).mean([0L]),
                        Pooling.Cls => row[0],
                        _ => row.narrow(0, 1, residues),
                    };
                    var values = selected.contiguous().data<float>().ToArray();
                    results[index] = new Embedding(window[index].Record, values,
                        options.Pooling == Pooling.None ? residues : 1, (int)hidden.shape[2]);
                }
            }
            progress?.Report(batch.Indices.Length);
        }
        foreach (var e in results) yield return e!;
    }
}
