using BioForge.Models.Esm;
using BioForge.Runtime;
using BioForge.Tokenizers;
using static TorchSharp.torch;

namespace BioForge.Proteins;

public sealed record MaskCandidate(int Rank, string Token, double Probability)
{
    /// <summary>The <paramref name="topK"/> most probable residues of a site, ranked from 1.</summary>
    public static IReadOnlyList<MaskCandidate> Top(EsmTokenizer tokenizer, Func<int, double> probability, int topK) =>
        [.. tokenizer.ResidueIds.OrderByDescending(probability).Take(topK).Select((id, rank) => new MaskCandidate(rank + 1, tokenizer.Vocabulary[id], probability(id)))];
}

/// <summary>Predictions for one <c>&lt;mask&gt;</c>; <see cref="Position"/> is 1-based in the residue sequence.</summary>
public sealed record MaskPrediction(int Position, IReadOnlyList<MaskCandidate> Candidates);

public static class MaskFiller
{
    /// <summary>Tokens a forward pass holds: four 1,024-token windows of a long sequence.</summary>
    private const int BatchTokens = 4096;

    /// <summary>
    /// For each <c>&lt;mask&gt;</c> in the sequence, the most probable residues under the masked-LM head. Probabilities
    /// come from the softmax over the whole vocabulary; only residue letters are offered as candidates (not special
    /// tokens, gaps or insertions). A sequence longer than 1,022 residues has each mask read in the 1,024-token window
    /// centred on it (<see cref="ResidueWindows"/>, as variant scoring reads a site), the other masks in that window left masked.
    /// </summary>
    public static IReadOnlyList<MaskPrediction> Predict(EsmCheckpoint model, string sequence, int topK)
    {
        using var work = PredictStepwise(model, sequence, topK);
        return work.RunToEnd();
    }

    /// <summary>
    /// <see cref="Predict"/> as passes a server can interleave with other requests, and stop between: a long protein
    /// with many masks reads a window per mask (8,192 residues with 2,048 masks held the device for minutes in one piece).
    /// </summary>
    public static StepwiseWork<IReadOnlyList<MaskPrediction>> PredictStepwise(EsmCheckpoint model, string sequence, int topK)
    {
        if (topK < 1) throw new BioForgeException($"--top-k must be at least 1 (got {topK})");
        var tokens = SingleSequence.Encode(model, sequence, windowed: true);
        var sites = Enumerable.Range(0, tokens.Length).Where(i => tokens[i] == model.Tokenizer.MaskId).ToArray();
        if (sites.Length == 0) throw new BioForgeException("--seq has no <mask> token to fill");

        int width = ResidueWindows.ReadWidth(tokens.Length, model.Config.MaxPositionEmbeddings);
        // The masks each window is read for (one window, the sequence, when the model reads it whole).
        var byWindow = Enumerable.Range(0, sites.Length).GroupBy(k => ResidueWindows.Centred(tokens.Length, sites[k], width)).ToArray();
        var starts = byWindow.Select(g => g.Key).ToArray();
        var probabilities = new float[sites.Length][];
        return new StepwiseWork<IReadOnlyList<MaskPrediction>>(Passes(),
            () => [.. sites.Select((site, k) => new MaskPrediction(site, MaskCandidate.Top(model.Tokenizer, id => probabilities[k][id], topK)))], starts.Length);

        IEnumerable<int> Passes()
        {
            foreach (var batch in TokenBatches.ByLength([.. starts.Select(s => tokens[s..(s + width)])], BatchTokens, model.Tokenizer.PadId, model.Device))
            {
                using (batch)
                using (NewDisposeScope())
                using (no_grad())
                {
                    var logits = model.Model.Forward(batch.InputIds, batch.AttentionMask, new EsmForwardOptions { Logits = true }).Logits!;
                    for (int r = 0; r < batch.Indices.Length; r++)
                    {
                        int start = starts[batch.Indices[r]];
                        foreach (int k in byWindow[batch.Indices[r]])
                            probabilities[k] = logits[r, sites[k] - start].to(ScalarType.Float32).softmax(-1).cpu().data<float>().ToArray();
                    }
                }
                yield return batch.Indices.Length;
            }
        }
    }
}
