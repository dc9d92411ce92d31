using BioForge.Models.Esm;
using BioForge.Proteins;
using BioForge.Statistics;
using static TorchSharp.torch;

namespace BioForge.Tests;

public sealed class VariantScoringTests
{
    private const string WildType = "MKTAYIAKQRQISFVKSHFSRQ";

    [Fact]
    public void ParsesSingleAndMultipleSubstitutions()
    {
        var v = Variant.Parse("K2R:A4G", WildType);
        Assert.Equal([new Substitution('K', 2, 'R'), new Substitution('A', 4, 'G')], v.Substitutions);
        Assert.Equal(v.Substitutions, Variant.Parse("K1R,A3G", WildType, indexBase: 0).Substitutions);
        // A fragment numbered from its place in the whole protein (ESM's --offset-idx 24: BLAT_ECOLX's mature chain).
        Assert.Equal(v.Substitutions, Variant.Parse("K25R:A27G", WildType, indexBase: 24).Substitutions);
        Assert.Contains("position 23 is outside the 22-residue wild type (numbered from 24: 24–45)",
            Assert.Throws<BioForgeException>(() => Variant.Parse("M23A", WildType, indexBase: 24)).Message);
    }

    [Theory]
    [InlineData("A2G", "has K at position 2, not A")]
    [InlineData("K99R", "outside the 23-residue wild type")]
    [InlineData("K2", "expected wild-type letter")]
    [InlineData("K2R:K2A", "changes position 2 twice")]
    [InlineData("K2Z", "the mutant Z is not one of the 20 amino acids")]
    [InlineData("K2R:A4X", "mutation 'A4X' in 'K2R:A4X': the mutant X is not one of the 20 amino acids")]
    [InlineData("K2A:", "an empty substitution")]
    [InlineData("K2*", "a stop (nonsense) variant cannot be scored")]
    [InlineData("X23A", "the wild type's X at position 23 is not one of the 20 amino acids")]
    public void RejectsBadMutations(string text, string expected) =>
        Assert.Contains(expected, Assert.Throws<BioForgeException>(() => Variant.Parse(text, WildType + "X")).Message);

    [Fact]
    public void ScoreIsTheMaskedMarginalLogRatio()
    {
        var cpu = TestData.Cpu;
        using var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        var variants = new[] { Variant.Parse("K2R", WildType), Variant.Parse("A4G", WildType), Variant.Parse("K2R:A4G", WildType), Variant.Parse("K2K", WildType) };
        var scores = new VariantScorer(model, batchTokens: 30).Score(WildType, variants);

        double Manual(int position, char wt, char mut)
        {
            using var scope = NewDisposeScope();
            var tokens = model.Tokenizer.Encode(WildType);
            tokens[position] = model.Tokenizer.MaskId;
            var ids = tensor(tokens.Select(t => (long)t).ToArray(), [1, tokens.Length]);
            using var _ = no_grad();
            var logp = model.Model.Forward(ids, ones_like(ids), new EsmForwardOptions { Logits = true, Kernel = AttentionKernel.Explicit }).Logits![0, position].log_softmax(-1);
            return logp[model.Tokenizer.IdOf(mut.ToString())].item<float>() - logp[model.Tokenizer.IdOf(wt.ToString())].item<float>();
        }
        Assert.Equal(Manual(2, 'K', 'R'), scores[0], 5);
        Assert.Equal(Manual(4, 'A', 'G'), scores[1], 5);
        Assert.Equal(scores[0] + scores[1], scores[2], 5);
        Assert.Equal(0, scores[3]);
    }

    /// <summary>A caller's deadline stops a long profile between forward passes instead of after all of them.</summary>
    [Fact]
    public void ACancelledProfileStopsAfterTheBatchInFlight()
    {
        var cpu = TestData.Cpu;
        using var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        string sequence = string.Concat(Enumerable.Repeat("MKTAYIAKQR", 12));
        using var cancel = new CancellationTokenSource();
        int batches = 0;
        var progress = new SynchronousProgress(_ => { if (++batches == 2) cancel.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => new VariantScorer(model, 512).Profile(sequence, 3, progress, cancel.Token));
        Assert.Equal(2, batches); // 120 sites in batches of 4 sequences: 28 more were due
    }

    private sealed class SynchronousProgress(Action<int> report) : IProgress<int>
    {
        public void Report(int value) => report(value);
    }

    [Fact]
    public void SpearmanAveragesTiedRanks()
    {
        // ranks [1, 2.5, 2.5, 4, 5] and [2, 1, 3.5, 3.5, 5]; their Pearson correlation is 29/38
        Assert.Equal(29.0 / 38.0, Correlation.Spearman([1, 2, 2, 3, 5], [2, 1, 4, 4, 9]), 12);
        Assert.Equal(-1, Correlation.Spearman([1, 2, 3], [30, 20, 10]), 12);
    }
    /// <summary>
    /// A wild type of 1,100 residues (1,102 tokens framed) with the tiny model's 1,026 positions: each site is read in the
    /// 1,024 tokens of the framed sequence centred on it, moved inwards at the ends (ProteinGym's "optimal" window) — a
    /// window inside the protein has no &lt;cls&gt; or &lt;eos&gt;. Checked against masking and cutting by hand.
    /// </summary>
    [Fact]
    public void ASiteOfALongProteinIsScoredInTheWindowCentredOnIt()
    {
        var cpu = TestData.Cpu;
        using var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        string body = string.Concat(Enumerable.Range(0, 1100).Select(i => "ACDEFGHIKLMNPQRSTVWY"[(i * 7 + i / 13) % 20]));
        var scorer = new VariantScorer(model, batchTokens: 4096);
        char Mutant(int position) => body[position - 1] == 'A' ? 'G' : 'A';
        // 1-based sites (= token indices) and their windows' first tokens: clamp(site − 512, 0, 1102 − 1024).
        var sites = new[] { (Site: 11, Start: 0), (Site: 550, Start: 38), (Site: 1000, Start: 78) };
        var scores = scorer.Score(body, [.. sites.Select(s => Variant.Parse($"{body[s.Site - 1]}{s.Site}{Mutant(s.Site)}", body))]);
        var framed = model.Tokenizer.Encode(body);
        using var noGrad = no_grad();
        for (int i = 0; i < sites.Length; i++)
        {
            var (site, start) = sites[i];
            var window = framed.Select(t => (long)t).ToArray()[start..(start + 1024)];
            window[site - start] = model.Tokenizer.MaskId;
            using var scope = NewDisposeScope();
            var ids = tensor(window, [1, 1024]);
            var logp = model.Model.Forward(ids, ones_like(ids), new EsmForwardOptions { Logits = true }).Logits![0, site - start].log_softmax(-1);
            double manual = logp[model.Tokenizer.IdOf(Mutant(site).ToString())].item<float>() - logp[model.Tokenizer.IdOf(body[site - 1].ToString())].item<float>();
            Assert.Equal(manual, scores[i], 4);
        }
    }

    [Fact]
    public void WindowsAreCentredTiledEvenlyAndWeightedDownAtTheirEdges()
    {
        Assert.Equal(1024, ResidueWindows.Width(1026));
        Assert.Equal(514, ResidueWindows.Width(514));
        Assert.Equal(0, ResidueWindows.Centred(1102, 11, 1024));
        Assert.Equal(38, ResidueWindows.Centred(1102, 550, 1024));
        Assert.Equal(78, ResidueWindows.Centred(1102, 1000, 1024));
        Assert.Equal(0, ResidueWindows.Centred(500, 400, 1024));
        Assert.Equal([0], ResidueWindows.Tiling(1024, 1024));
        Assert.Equal([0, 78], ResidueWindows.Tiling(1102, 1024));
        Assert.Equal([0, 256, 513], ResidueWindows.Tiling(1537, 1024)); // evenly, not 0, 512, 513
        Assert.Equal([0, 4, 8, 12], ResidueWindows.Tiling(22, 10));
        Assert.Equal(1, ResidueWindows.Weight(512, 1024));
        Assert.Equal(1, ResidueWindows.Weight(256, 1024));
        Assert.Equal(0.5, ResidueWindows.Weight(128, 1024), 12);
        Assert.Equal(ResidueWindows.Weight(10, 1024), ResidueWindows.Weight(1013, 1024), 12);
        Assert.True(ResidueWindows.Weight(0, 1024) is > 0 and < 0.001);
        // A sequence the model reads whole keeps its frame; a longer one is cut around the site, its own tokens only.
        var (tokens, at) = ResidueWindows.MaskedSite([0, 1, 7, 3, 2], 2, 1026, 9);
        Assert.Equal([0, 1, 9, 3, 2], tokens);
        Assert.Equal(2, at);
        (tokens, at) = ResidueWindows.MaskedSite([0, 10, 11, 12, 13, 14, 15, 2], 5, 4, 9);
        Assert.Equal([12, 13, 9, 15], tokens);
        Assert.Equal(2, at);
    }
}
