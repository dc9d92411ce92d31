using BioForge.Models.Esm;
using BioForge.Proteins;
using static TorchSharp.torch;

namespace BioForge.Tests;

/// <summary>
/// fill-mask and contacts on a sequence longer than the model reads: 1,100 residues (1,102 tokens framed) with the tiny
/// ESM-2's 1,026 positions. Checked against the windows' forward passes by hand.
/// </summary>
public sealed class LongProteinTests
{
    private static readonly string Body = string.Concat(Enumerable.Range(0, 1100).Select(i => "ACDEFGHIKLMNPQRSTVWY"[(i * 7 + i / 13) % 20]));

    /// <summary>
    /// Each mask is read in the 1,024 tokens centred on it (clamped: residues 11 and 20 in tokens 0…1023, residue 1,000 in
    /// 78…1101), the other masks of that window left masked.
    /// </summary>
    [Fact]
    public void EachMaskOfALongSequenceIsFilledInTheWindowCentredOnIt()
    {
        var cpu = TestData.Cpu;
        using var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        int[] sites = [11, 20, 1000];
        string masked = string.Concat(Body.Select((c, i) => sites.Contains(i + 1) ? "<mask>" : c.ToString()));
        var predictions = MaskFiller.Predict(model, masked, 3);
        Assert.Equal(sites, predictions.Select(p => p.Position));

        var framed = model.Tokenizer.Encode(masked).Select(t => (long)t).ToArray();
        using var noGrad = no_grad();
        foreach (var (site, start) in new[] { (11, 0), (20, 0), (1000, 78) })
        {
            using var scope = NewDisposeScope();
            var ids = tensor(framed[start..(start + 1024)], [1, 1024]);
            var probabilities = model.Model.Forward(ids, ones_like(ids), new EsmForwardOptions { Logits = true }).Logits![0, site - start].softmax(-1);
            foreach (var candidate in predictions.Single(p => p.Position == site).Candidates)
                Assert.Equal(probabilities[model.Tokenizer.IdOf(candidate.Token)].item<float>(), candidate.Probability, 5);
        }
    }

    /// <summary>
    /// A 1,023-residue wild type (1,025 tokens, which the checkpoint's 1,026 positions would hold) has its sites read in the
    /// 1,024-token window, as ProteinGym scores it: ESM-2 trained on 1,024 tokens. Residue 1,000's window starts at token 1.
    /// </summary>
    [Fact]
    public void AVariantOfAProteinJustPastTheTrainedLengthIsReadInAWindow()
    {
        var cpu = TestData.Cpu;
        // The shipped model: the tiny fixture reads the site alike either way (to 1e-5), which would test nothing.
        using var model = EsmCheckpoint.Load(Path.Combine(Repository.Root, "models", "esm2-small"), cpu.Device, cpu.DType);
        Assert.True(model.Config.MaxPositionEmbeddings >= 1025, "the model must hold 1,025 tokens for this test to mean anything");
        string wildType = Body[..1023];
        char wt = wildType[999], mutant = wt == 'A' ? 'G' : 'A';
        double score = new VariantScorer(model, 8192).Score(wildType, [Variant.Parse($"{wt}1000{mutant}", wildType)])[0];
        var framed = model.Tokenizer.Encode(wildType).Select(t => (long)t).ToArray();
        Assert.Equal(1025, framed.Length);
        framed[1000] = model.Tokenizer.MaskId;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = tensor(framed[1..1025], [1, 1024]);
        var logProbabilities = model.Model.Forward(ids, ones_like(ids), new EsmForwardOptions { Logits = true }).Logits![0, 999].log_softmax(-1);
        double expected = logProbabilities[model.Tokenizer.IdOf(mutant.ToString())].item<float>() - logProbabilities[model.Tokenizer.IdOf(wt.ToString())].item<float>();
        Assert.Equal(expected, score, 4);
    }

    /// <summary>The pseudo-log-likelihood reads those sites the same way: its masked copies were cut to the window while
    /// the batch was shaped for the whole 1,025 tokens, and the tensor could not be made.</summary>
    [Fact]
    public void APseudoLogLikelihoodOfAProteinJustPastTheTrainedLengthIsScored()
    {
        var cpu = TestData.Cpu;
        using var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        Assert.True(model.Config.MaxPositionEmbeddings >= 1025, "the fixture must hold 1,025 tokens for this test to mean anything");
        var scored = GenerationQuality.PseudoLogLikelihood(model, [Body[..1023]], positions: 3, maxResidues: int.MaxValue, seed: 1);
        Assert.Equal(3, scored.Scored[0]);
        Assert.True(double.IsFinite(scored.PerResidue[0]) && scored.PerResidue[0] < 0, $"{scored.PerResidue[0]}");
    }

    /// <summary>
    /// Masks read in many windows are filled a few windows a pass, so a server runs them in slices it can stop between
    /// (one request of 8,192 residues and 2,048 masks held the device for minutes): the passes give what one call gives.
    /// </summary>
    [Fact]
    public void MasksInManyWindowsAreFilledInPassesThatGiveTheSameAnswer()
    {
        var cpu = TestData.Cpu;
        using var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        int[] sites = [5, 530, 540, 550, 560, 570, 1090]; // seven windows, four to a pass
        string masked = string.Concat(Body.Select((c, i) => sites.Contains(i + 1) ? "<mask>" : c.ToString()));
        using var work = MaskFiller.PredictStepwise(model, masked, 3);
        Assert.False(work.Run(TimeSpan.Zero, CancellationToken.None), "all windows were read in one pass");
        Assert.InRange(work.Progress!.Value, 0.1, 0.9);
        var stepwise = work.RunToEnd();
        Assert.Equal(sites, stepwise.Select(p => p.Position));
        // Each site against its own centred window read by hand (the one call runs the same passes, so it is no check).
        var framed = model.Tokenizer.Encode(masked).Select(t => (long)t).ToArray();
        using var noGrad = no_grad();
        foreach (int site in sites)
        {
            using var scope = NewDisposeScope();
            int start = Math.Clamp(site - 512, 0, framed.Length - 1024);
            var ids = tensor(framed[start..(start + 1024)], [1, 1024]);
            var probabilities = model.Model.Forward(ids, ones_like(ids), new EsmForwardOptions { Logits = true }).Logits![0, site - start].softmax(-1);
            foreach (var candidate in stepwise.Single(p => p.Position == site).Candidates)
                Assert.Equal(probabilities[model.Tokenizer.IdOf(candidate.Token)].item<float>(), candidate.Probability, 5);
        }
    }

    /// <summary>
    /// Windows of 1,022 residues, each framed by &lt;cls&gt; and &lt;eos&gt;, at residues 0 and 78: a pair one window holds
    /// has that window's probability, a pair both hold their weighted mean, a pair neither holds NaN.
    /// </summary>
    [Fact]
    public void ALongSequencesContactMapAveragesItsWindowsAndLeavesUnreadPairsUnknown()
    {
        var cpu = TestData.Cpu;
        using var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        var map = ContactPredictor.Predict(model, Body);
        Assert.Equal(1100, map.GetLength(0));
        Assert.Equal(1022, ContactPredictor.WindowResidues(model));

        var residues = model.Tokenizer.Encode(Body)[1..^1];
        float[,] Window(int start)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            long[] tokens = [0, .. residues[start..(start + 1022)].Select(t => (long)t), 2];
            var ids = tensor(tokens, [1, 1024]);
            var contacts = model.Model.PredictContacts(ids, ones_like(ids))[0];
            var values = new float[1022, 1022];
            Buffer.BlockCopy(contacts.contiguous().data<float>().ToArray(), 0, values, 0, 1022 * 1022 * sizeof(float));
            return values;
        }
        var first = Window(0);
        var second = Window(78);
        Assert.Equal(first[5, 40], map[5, 40], 5);           // only the first window holds residue 5
        Assert.Equal(second[1000, 1021], map[1078, 1099], 5); // only the second holds residue 1,099
        float a = (float)(ResidueWindows.Weight(500, 1022) * ResidueWindows.Weight(600, 1022));
        float b = (float)(ResidueWindows.Weight(422, 1022) * ResidueWindows.Weight(522, 1022));
        Assert.Equal((a * first[500, 600] + b * second[422, 522]) / (a + b), map[500, 600], 5);
        Assert.True(float.IsNaN(map[0, 1099]) && float.IsNaN(map[1099, 0]));
        Assert.False(float.IsNaN(map[77, 1021]) || float.IsNaN(map[78, 1099]));
    }

    [Fact]
    public void TheContactsCommandReadsALongSequenceAndLeavesUnreadPairsEmpty()
    {
        string dir = TestData.TempDirectory();
        string csv = Path.Combine(dir, "map.csv"), png = Path.Combine(dir, "map.png");
        var result = CliTests.Run("contacts", "--model", TestData.EsmTiny, "--seq", Body, "--out", csv, "--png", png);
        Assert.True(result.Code == 0, result.Err);
        // Residues 1…78 and 1,023…1,100 share no window: 78 × 78 pairs.
        Assert.Contains("read in overlapping windows of 1022 residues; 6084 pairs no window holds", result.Out);
        var first = File.ReadLines(csv).Skip(1).First().Split(',');
        Assert.Equal(1101, first.Length);
        Assert.Equal("A1", first[0]);
        Assert.NotEmpty(first[1022]);
        Assert.Empty(first[1023]);
        Assert.True(File.Exists(png));
    }
}
