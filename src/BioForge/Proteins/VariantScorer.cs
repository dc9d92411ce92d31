using BioForge.Models.Esm;
using BioForge.Runtime;
using static TorchSharp.torch;

namespace BioForge.Proteins;

/// <summary>One site of <see cref="VariantScorer.Profile"/>: 1-based position, the residue there and its masked probability, the likeliest residues.</summary>
public sealed record SiteProfile(int Position, string WildType, double WildTypeProbability, IReadOnlyList<MaskCandidate> Candidates);

/// <summary>
/// Zero-shot variant effects by the masked marginal of Meier et al. (2021): for each mutated site, mask it in the
/// wild type and compare log-probabilities, score = Σ_sites log p(mutant) − log p(wild type). Higher = more tolerated.
/// A multi-mutant's sites are masked one at a time and their terms added, as ESM's <c>predict.py</c> and ProteinGym
/// score them (the paper's equation masks all of them at once; the two agree for single substitutions).
/// A wild type longer than 1,022 residues has each site read in the 1,024-token window centred on it
/// (<see cref="ResidueWindows"/>, ProteinGym's "optimal" window).
/// </summary>
public sealed class VariantScorer(EsmCheckpoint model, int batchTokens)
{
    /// <param name="cancellation">Checked between forward passes, so a caller's deadline bounds the work to one more batch.</param>
    public double[] Score(string wildType, IReadOnlyList<Variant> variants, IProgress<int>? progress = null, CancellationToken cancellation = default)
    {
        using var work = ScoreStepwise(wildType, variants);
        return work.RunToEnd(progress, cancellation);
    }

    /// <summary><see cref="Score"/> as passes a server can interleave with other requests.</summary>
    public StepwiseWork<double[]> ScoreStepwise(string wildType, IReadOnlyList<Variant> variants)
    {
        var tokens = EncodeWildType(wildType);
        foreach (var v in variants)
            foreach (var s in v.Substitutions)
                if (!IsResidueToken(s.Mutant))
                    throw new BioForgeException($"mutation '{v.Name}': '{s.Mutant}' is not an amino-acid letter of the model's vocabulary");

        var sites = variants.SelectMany(v => v.Substitutions.Select(s => s.Position)).Distinct().Order().ToArray();
        var logProbs = new Dictionary<int, float[]>();
        return new StepwiseWork<double[]>(SiteLogProbabilities(tokens, sites, logProbs), () => [.. variants.Select(v => v.Substitutions.Sum(s =>
        {
            var lp = logProbs[s.Position];
            return (double)lp[model.Tokenizer.IdOf(s.Mutant.ToString())] - lp[model.Tokenizer.IdOf(s.WildType.ToString())];
        }))], sites.Length);
    }

    /// <summary>
    /// Every site masked in turn: the probability of the wild-type residue there and the <paramref name="topK"/> most
    /// probable residues (softmax over the whole vocabulary, residue letters offered), as fill-mask shows one site.
    /// </summary>
    public IReadOnlyList<SiteProfile> Profile(string wildType, int topK, IProgress<int>? progress = null, CancellationToken cancellation = default)
    {
        using var work = ProfileStepwise(wildType, topK);
        return work.RunToEnd(progress, cancellation);
    }

    /// <summary><see cref="Profile"/> as passes a server can interleave with other requests.</summary>
    public StepwiseWork<IReadOnlyList<SiteProfile>> ProfileStepwise(string wildType, int topK)
    {
        var tokens = EncodeWildType(wildType);
        var sites = Enumerable.Range(1, tokens.Length - 2).ToArray();
        var logProbs = new Dictionary<int, float[]>();
        var vocabulary = model.Tokenizer.Vocabulary;
        return new StepwiseWork<IReadOnlyList<SiteProfile>>(SiteLogProbabilities(tokens, sites, logProbs), () => [.. sites.Select(site =>
        {
            var lp = logProbs[site];
            return new SiteProfile(site, vocabulary[tokens[site]], Math.Exp(lp[tokens[site]]), MaskCandidate.Top(model.Tokenizer, id => Math.Exp(lp[id]), topK));
        })], sites.Length);
    }

    /// <summary>
    /// The wild type's tokens, one per residue letter: positions are letters of the text, so a special token written in
    /// it (<c>&lt;unk&gt;</c>, <c>&lt;mask&gt;</c>: several letters, one token) would shift every site after it.
    /// </summary>
    private int[] EncodeWildType(string wildType)
    {
        if (wildType.Contains('<'))
            throw new BioForgeException("the wild type must be residue letters only (special tokens such as <mask> or <unk> are not allowed)");
        return SingleSequence.Encode(model, wildType, windowed: true);
    }

    private bool IsResidueToken(char letter) =>
        model.Tokenizer.Vocabulary.Contains(letter.ToString()) && char.IsLetter(letter);

    /// <summary>
    /// log p(· | sequence with that site masked) into <paramref name="result"/>, one masked copy of the sequence (or of
    /// the site's window) per site, one forward pass per yield (the sites it finished).
    /// </summary>
    private IEnumerable<int> SiteLogProbabilities(int[] tokens, int[] sites, Dictionary<int, float[]> result)
    {
        if (batchTokens <= 0) throw new BioForgeException($"--batch-tokens must be positive (got {batchTokens})");
        // Every masked copy is as long as the others (the sequence, or a window of the model's width), so batches hold a
        // fixed number of sites, made a batch at a time: a long protein's copies are never all in memory at once.
        int width = ResidueWindows.ReadWidth(tokens.Length, model.Config.MaxPositionEmbeddings);
        int perBatch = Math.Max(1, batchTokens / width);
        for (int first = 0; first < sites.Length; first += perBatch)
        {
            // Token index = residue position, because <cls> sits at 0.
            var masked = sites[first..Math.Min(sites.Length, first + perBatch)]
                .Select(site => ResidueWindows.MaskedSite(tokens, site, model.Config.MaxPositionEmbeddings, model.Tokenizer.MaskId)).ToList();
            using (var batch = TokenBatches.Pad([.. Enumerable.Range(0, masked.Count)], [.. masked.Select(m => m.Tokens)], model.Tokenizer.PadId, model.Device))
            using (NewDisposeScope())
            using (no_grad())
            {
                var logits = model.Model.Forward(batch.InputIds, batch.AttentionMask, new EsmForwardOptions { Logits = true }).Logits!;
                for (int r = 0; r < masked.Count; r++)
                    result[sites[first + r]] = logits[r, masked[r].At].to(ScalarType.Float32).log_softmax(-1).cpu().data<float>().ToArray();
            }
            yield return masked.Count;
        }
    }
}
