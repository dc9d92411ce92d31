using BioForge.Models.Esm;
using static TorchSharp.torch;

namespace BioForge.Proteins;

/// <summary>
/// Zero-shot variant effects by the masked marginal of Meier et al. (2021): for each mutated site, mask it in the
/// wild type and compare log-probabilities, score = Σ_sites log p(mutant) − log p(wild type). Higher = more tolerated.
/// </summary>
public sealed class VariantScorer(EsmCheckpoint model, int batchTokens)
{
    public double[] Score(string wildType, IReadOnlyList<Variant> variants, IProgress<int>? progress = null)
    {
        var tokens = SingleSequence.Encode(model, wildType);
        foreach (var v in variants)
            foreach (var s in v.Substitutions)
                if (!IsResidueToken(s.Mutant))
                    throw new BioForgeException($"mutation '{v.Name}': '{s.Mutant}' is not an amino-acid letter of the model's vocabulary");

        var sites = variants.SelectMany(v => v.Substitutions.Select(s => s.Position)).Distinct().Order().ToArray();
        var logProbs = SiteLogProbabilities(tokens, sites, progress);
        return variants.Select(v => v.Substitutions.Sum(s =>
        {
            var lp = logProbs[s.Position];
            return (double)lp[model.Tokenizer.IdOf(s.Mutant.ToString())] - lp[model.Tokenizer.IdOf(s.WildType.ToString())];
        })).ToArray();
    }

    private bool IsResidueToken(char letter) =>
        model.Tokenizer.Vocabulary.Contains(letter.ToString()) && char.IsLetter(letter);

    /// <summary>log p(· | sequence with that site masked) at each site, one masked copy of the sequence per site.</summary>
    private Dictionary<int, float[]> SiteLogProbabilities(int[] tokens, int[] sites, IProgress<int>? progress)
    {
        var masked = sites.Select(site =>
        {
            var copy = (int[])tokens.Clone();
            copy[site] = model.Tokenizer.MaskId; // token index = residue position, because <cls> sits at 0
            return copy;
        }).ToList();
        var result = new Dictionary<int, float[]>();
        foreach (var batch in TokenBatches.ByLength(masked, batchTokens, model.Tokenizer.PadId, model.Device))
        {
            using (var scope = NewDisposeScope())
            using (no_grad())
            {
                var logits = model.Model.Forward(batch.InputIds, batch.AttentionMask, new EsmForwardOptions { Logits = true }).Logits!;
                for (int r = 0; r < batch.Indices.Length; r++)
                {
                    int site = sites[batch.Indices[r]];
                    result[site] = logits[r, site].to(ScalarType.Float32).log_softmax(-1).cpu().data<float>().ToArray();
                }
            }
            batch.InputIds.Dispose();
            batch.AttentionMask.Dispose();
            progress?.Report(batch.Indices.Length);
        }
        return result;
    }
}
