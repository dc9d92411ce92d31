using BioForge.Generation;
using BioForge.IO;
using BioForge.Models;
using BioForge.Models.Llama;
using BioForge.Proteins;
using BioForge.Training;

namespace BioForge.Tests;

/// <summary>A tiny Llama-style protein model trained a few steps on the CATH fixture, shared by the tests below.</summary>
internal static class TinyProteinModel
{
    private static readonly Lazy<string> Trained = new(() =>
    {
        string output = TestData.TempDirectory();
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Proteins, output, 4, "  model_dtype: float16\n").Replace("max_length: 64", "max_length: 64\n  packing: true")),
            new TrainerOptions());
        return Path.Combine(output, Trainer.ModelDirectory);
    });

    /// <summary>The trained model's directory (config.json, float16 model.safetensors, vocab.txt).</summary>
    public static string Directory => Trained.Value;
}

/// <summary>The GPT-like protein model: training over the ESM-2 alphabet, loading, sampling, FASTA output, gen-eval.</summary>
public sealed class ProteinLlamaTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliTests.Run(args);

    private static void AssertFails((int Code, string Out, string Err) result, string expected)
    {
        Assert.Equal(2, result.Code);
        Assert.StartsWith("error: ", result.Err);
        Assert.Contains(expected, result.Err, StringComparison.Ordinal);
        Assert.Single(result.Err.TrimEnd().Split('\n'));
    }

    private static string Write(string name, string text)
    {
        string path = Path.Combine(TestData.TempDirectory(), name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void ATinyProteinModelTrainsLoadsAsAProteinModelAndSamples()
    {
        string directory = TinyProteinModel.Directory;
        Assert.Equal("llama", ModelRegistry.Of(directory).ModelType);
        Assert.True(File.Exists(Path.Combine(directory, LlamaCheckpoint.ResidueFileName)));
        Assert.False(File.Exists(Path.Combine(directory, "vocab.json")));
        using (var weights = SafetensorsCheckpoint.Open(directory))
            Assert.All(weights.Names, name => Assert.Equal(SafetensorsDType.F16, weights.Entry(name).DType));
        Assert.Contains("\"dtype\": \"float16\"", File.ReadAllText(Path.Combine(directory, "config.json"))); // what Hugging Face reads as the weights' type
        using var model = LlamaCheckpoint.Load(directory, TestData.Cpu.Device, TestData.Cpu.DType);
        Assert.True(model.IsProtein);
        Assert.Null(model.Vocabulary);
        Assert.Equal(model.Residues!.ClsId, model.Config.BosTokenId);
        Assert.Equal(model.Residues.EosId, model.Config.EosTokenId);
        Assert.Equal(model.Residues.PadId, model.Config.PadTokenId);

        var generator = new ProteinGenerator(model);
        var options = new SamplingOptions { MaxNewTokens = 40, Grammar = generator.Grammar };
        var samples = generator.Generate(6, options, seed: 11, batchSize: 4, prompt: "m");
        Assert.Equal(6, samples.Count);
        Assert.All(samples, s =>
        {
            Assert.StartsWith("M", s.Text, StringComparison.Ordinal);
            Assert.True(s.Text.Length <= 41, s.Text);
            Assert.Matches("^[A-Z]+$", s.Text);
            Assert.True(s.LogLikelihood < 0);
        });
        // Sample i depends on the seed and its index only, not on the batch it shared.
        Assert.Equal(samples.Select(s => s.Text), generator.Generate(6, options, seed: 11, batchSize: 1, prompt: "M").Select(s => s.Text));
        Assert.Throws<BioForgeException>(() => generator.Generate(1, options, 0, 1, prompt: "M<cls>"));
        Assert.Throws<BioForgeException>(() => generator.Generate(1, options, 0, 1, prompt: "M9"));
        // A stop ends the protein: nothing to continue (it was dropped and the protein continued past it).
        Assert.Contains("ends with a stop", Assert.Throws<BioForgeException>(() => generator.Generate(1, options, 0, 1, prompt: "MK*")).Message);
    }

    [Fact]
    public void AProteinModelSavedByTransformersWithoutVocabTxtStillReadsAsOne()
    {
        // save_pretrained writes back tokenizer.json and its config, not BioForge's vocab.txt: the alphabet is read there.
        string saved = TestData.TempDirectory();
        foreach (string file in Directory.GetFiles(TinyProteinModel.Directory).Where(f => Path.GetFileName(f) != LlamaCheckpoint.ResidueFileName))
            File.Copy(file, Path.Combine(saved, Path.GetFileName(file)));
        using var original = LlamaCheckpoint.Load(TinyProteinModel.Directory, TestData.Cpu.Device, TestData.Cpu.DType);
        using var model = LlamaCheckpoint.Load(saved, TestData.Cpu.Device, TestData.Cpu.DType);
        Assert.True(model.IsProtein);
        Assert.Null(model.Vocabulary);
        Assert.Equal(original.Residues!.Vocabulary, model.Residues!.Vocabulary);
        var options = new SamplingOptions { MaxNewTokens = 20, Grammar = new ProteinGenerator(original).Grammar };
        Assert.Equal(new ProteinGenerator(original).Generate(3, options, seed: 5, batchSize: 3, prompt: "M").Select(s => s.Text),
            new ProteinGenerator(model).Generate(3, options with { Grammar = new ProteinGenerator(model).Grammar }, seed: 5, batchSize: 3, prompt: "M").Select(s => s.Text));
        // Floats as Python writes them (transformers 5's strict configs refuse an integer for a float field).
        string config = File.ReadAllText(Path.Combine(saved, "config.json"));
        Assert.Contains("\"rope_theta\": 10000.0,", config);
        Assert.Contains("\"attention_dropout\": 0.0,", config);
    }

    [Fact]
    public void GenerateWritesFastaAndRefusesTheSmilesOptions()
    {
        string output = Path.Combine(TestData.TempDirectory(), "gen.fasta");
        var result = Run("generate", "--model", TinyProteinModel.Directory, "--n", "3", "--out", output, "--seed", "5", "--max-length", "30", "--top-k", "10");
        Assert.True(result.Code == 0, result.Err);
        var records = FastaReader.Read(output).ToList();
        Assert.Equal(["gen-1", "gen-2", "gen-3"], records.Select(r => r.Id));
        Assert.All(records, r => Assert.Matches("^[ACDEFGHIKLMNPQRSTVWYXBUZO]+$", r.Sequence));
        Assert.Contains("3 proteins", result.Out, StringComparison.Ordinal);
        Assert.Equal(File.ReadAllText(output), File.ReadAllText(RunAgain()));

        string RunAgain()
        {
            string again = Path.Combine(TestData.TempDirectory(), "again.fasta");
            Assert.Equal(0, Run("generate", "--model", TinyProteinModel.Directory, "--n", "3", "--out", again, "--seed", "5", "--max-length", "30", "--top-k", "10", "--batch", "1").Code);
            return again;
        }

        // --min-length: no protein ends before it (the tiny model's own ends come sooner: the test shows something).
        string free = Path.Combine(TestData.TempDirectory(), "free.fasta"), longer = Path.Combine(TestData.TempDirectory(), "longer.fasta");
        Assert.Equal(0, Run("generate", "--model", TinyProteinModel.Directory, "--n", "6", "--out", free, "--seed", "5", "--max-length", "40").Code);
        Assert.Contains(FastaReader.Read(free), r => r.Sequence.Length < 20);
        Assert.Equal(0, Run("generate", "--model", TinyProteinModel.Directory, "--n", "6", "--out", longer, "--seed", "5", "--max-length", "40", "--min-length", "20").Code);
        Assert.All(FastaReader.Read(longer), r => Assert.True(r.Sequence.Length >= 20, r.Sequence));

        AssertFails(Run("generate", "--model", TinyProteinModel.Directory, "--n", "2", "--out", output, "--grammar", "smiles"), "--grammar smiles applies to SMILES models");
        Assert.Equal(0, Run("generate", "--model", TinyProteinModel.Directory, "--n", "2", "--out", output, "--grammar", "protein", "--max-length", "8").Code);
        AssertFails(Run("generate", "--model", Path.Combine(Repository.Root, "models", "smiles-llama-small"), "--n", "2", "--out", Path.ChangeExtension(output, ".smi"), "--grammar", "protein"),
            "--grammar protein applies to protein models");
        AssertFails(Run("generate", "--model", TinyProteinModel.Directory, "--n", "2", "--out", output, "--valid-only"), "--valid-only applies to SMILES models");
        AssertFails(Run("generate", "--model", TinyProteinModel.Directory, "--n", "2", "--out", output, "--prompt", "MK1"), "invalid residue '1'");
    }

    [Fact]
    public void CompositionAndDivergenceMatchHandComputedValues()
    {
        // Amino acids: {A: 3, C: 1} vs {A: 1, C: 1}: p = (3/4, 1/4), q = (1/2, 1/2), m = (5/8, 3/8).
        var p = GenerationQuality.AminoAcidComposition(["AAC", "A"])!;
        var q = GenerationQuality.AminoAcidComposition(["AC"])!;
        Assert.Equal(0.75, p[GenerationQuality.Canonical.IndexOf('A')], 12);
        double expected = 0.5 * (0.75 * Math.Log2(0.75 / 0.625) + 0.25 * Math.Log2(0.25 / 0.375))
            + 0.5 * (0.5 * Math.Log2(0.5 / 0.625) + 0.5 * Math.Log2(0.5 / 0.375));
        Assert.Equal(expected, GenerationQuality.JensenShannon(p, q), 12);
        Assert.Equal(0.0487949406954, expected, 12);
        // Disjoint distributions are 1 bit apart; X is not counted.
        Assert.Equal(1.0, GenerationQuality.JensenShannon(GenerationQuality.AminoAcidComposition(["AAXA"])!, GenerationQuality.AminoAcidComposition(["CC"])!), 12);
        // Dipeptides, overlapping within sequences only: "AAC" gives AA, AC; "CA" gives CA.
        var d = GenerationQuality.DipeptideComposition(["AAC", "CA"])!;
        Assert.Equal(1.0 / 3, d[0], 12); // AA
        Assert.Equal(1.0 / 3, d[1], 12); // AC
        Assert.Equal(1.0 / 3, d[20], 12); // CA
        Assert.Equal(1.0, d.Sum(), 12);
        // Nothing to count (single residues have no neighbours): undefined, not an error.
        Assert.Null(GenerationQuality.DipeptideComposition(["M", "K"]));
        Assert.Null(GenerationQuality.Divergence(GenerationQuality.DipeptideComposition(["M", "K"]), d));

        var lengths = GenerationQuality.Lengths(["A", "AAA", "AAAAAAAAAA", "AAAAAA"]);
        Assert.Equal(5.0, lengths.Mean, 12);
        Assert.Equal(4.5, lengths.Median, 12);
        Assert.Equal(Math.Sqrt((16 + 4 + 25 + 1) / 3.0), lengths.StandardDeviation, 12);
        Assert.Equal(1.6, lengths.P10, 12); // 1 + 0.3 × (3 − 1)
        Assert.Equal(0.5, GenerationQuality.LengthKolmogorovSmirnov(["A", "AA"], ["AA", "AAA"]), 12);

        // A 12-residue window with two letters, six each, holds 1 bit; twelve letters once each, log2 12.
        Assert.Equal(1.0, GenerationQuality.MinimumWindowEntropy("ACACACACACACDEFGHIKLMN"), 12);
        Assert.Equal(Math.Log2(12), GenerationQuality.MinimumWindowEntropy("ACDEFGHIKLMN"), 12);
        Assert.True(GenerationQuality.IsLowComplexity("MKTQQQQQQQQQQQQAV"));
        Assert.False(GenerationQuality.IsLowComplexity("MKTAYIAKQRQISFVKSHFSRQ"));
        Assert.False(GenerationQuality.IsLowComplexity("ACDE")); // shorter than SEG's window: not assessed (2 bits, yet all different)
        Assert.Equal(12, GenerationQuality.LongestPeriodicStretch("MGSGSGSGSGSGSK")); // GSGSGSGSGSGS, period 2
        Assert.True(GenerationQuality.IsRepetitive("MGSGSGSGSGSGSK"));
        Assert.Equal(2, GenerationQuality.LongestPeriodicStretch("MKKAV")); // KK
        Assert.Equal(1, GenerationQuality.LongestPeriodicStretch("MKTAYI"));
    }

    [Fact]
    public void GenEvalReportsTheMeasuresOfATinyFixture()
    {
        string generated = Write("gen.fasta", ">gen-1\nAAC\n>gen-2\nA\n");
        string natural = Write("nat.fasta", ">n1\nAC\n>n2\nCA\n");
        string report = Path.Combine(TestData.TempDirectory(), "report.json");
        var result = Run("protein", "gen-eval", "--generated", generated, "--reference", natural, "--esm", "none", "--out", report);
        Assert.True(result.Code == 0, result.Err);
        // Amino acids {A 3, C 1} vs {A 2, C 2}: JS 0.048795 bits (hand-computed above); dipeptides {AA, AC} vs {AC, CA}:
        // p = (1/2, 1/2, 0), q = (0, 1/2, 1/2): JS = 1/2 bit.
        Assert.Contains("amino-acid composition JS divergence (bits), generated vs natural: 0.0488", result.Out, StringComparison.Ordinal);
        Assert.Contains("dipeptide composition JS divergence (bits), generated vs natural: 0.5000", result.Out, StringComparison.Ordinal);
        Assert.Contains("| length, residues | 2 ± 1 (median 2, 10–90 % 1–3) | 2 ± 0 (median 2, 10–90 % 2–2) |", result.Out, StringComparison.Ordinal);
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(report))!;
        Assert.Equal(0.5, json["dipeptide_js"]!.GetValue<double>(), 12);
        Assert.Equal(0.5, json["length_ks"]!.GetValue<double>(), 12);

        // With the model, the natural sequences' perplexity; with ESM-2, pseudo-log-likelihoods of all three sets.
        var full = Run("protein", "gen-eval", "--generated", generated, "--reference", natural, "--model", TinyProteinModel.Directory,
            "--esm", TestData.EsmTiny, "--pll-positions", "2");
        Assert.True(full.Code == 0, full.Err);
        Assert.Contains("perplexity of the natural sequences under the model:", full.Out, StringComparison.Ordinal);
        Assert.Contains("(6 tokens)", full.Out.Replace("over ", "(", StringComparison.Ordinal), StringComparison.Ordinal); // 2 × (A, C, <eos>)

        // A generated sequence with nothing ESM-2 scores (only X) is counted and left out of the PLL, not the end of the report.
        var unscorable = Run("protein", "gen-eval", "--generated", Write("gen-x.fasta", ">gen-1\nAAC\n>gen-x\nXXXX\n"), "--reference", natural,
            "--esm", TestData.EsmTiny, "--pll-positions", "2");
        Assert.True(unscorable.Code == 0, unscorable.Err);
        Assert.Contains("(1 without a residue ESM-2 can score, left out) |", unscorable.Out, StringComparison.Ordinal);

        // One natural sequence has no halves to compare: null in the report, a dash in the table.
        var single = Run("protein", "gen-eval", "--generated", generated, "--reference", natural, "--esm", "none", "--max-sequences", "1", "--out", report);
        Assert.True(single.Code == 0, single.Err);
        Assert.Contains("natural half vs half: —", single.Out, StringComparison.Ordinal);
        Assert.Null(System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(report))!["natural_halves_amino_acid_js"]);

        AssertFails(Run("protein", "gen-eval", "--generated", Write("empty.fasta", ""), "--reference", natural, "--esm", "none"), "empty.fasta");
        AssertFails(Run("protein", "gen-eval", "--generated", generated, "--reference", natural, "--esm", "none", "--model", TestData.EsmTiny), "--model");
        AssertFails(Run("protein", "gen-eval", "--generated", generated, "--reference", TestData.TempDirectory(), "--esm", "none"), "not a protein corpus");
    }

    /// <summary>ESM-2's pseudo-log-likelihood equals masking each residue by hand and reading its log-probability.</summary>
    [Fact]
    public void PseudoLogLikelihoodIsTheMeanMaskedLogProbability()
    {
        using var esm = Models.Esm.EsmCheckpoint.Load(TestData.EsmTiny, TestData.Cpu.Device, TestData.Cpu.DType);
        const string sequence = "MKTAYIA";
        var computed = GenerationQuality.PseudoLogLikelihood(esm, [sequence], positions: 100, maxResidues: 100, seed: 0, batchTokens: 20);
        var (mean, per) = (computed.Mean, computed.PerResidue);
        Assert.Equal([sequence.Length], computed.Scored);
        var tokens = esm.Tokenizer.Encode(sequence);
        double total = 0;
        using var _ = TorchSharp.torch.no_grad();
        for (int i = 1; i <= sequence.Length; i++)
        {
            var masked = tokens.Select((t, j) => (long)(j == i ? esm.Tokenizer.MaskId : t)).ToArray();
            using var ids = TorchSharp.torch.tensor(masked, [1, masked.Length]);
            using var ones = TorchSharp.torch.ones_like(ids);
            using var logits = esm.Model.Forward(ids, ones, new Models.Esm.EsmForwardOptions { Logits = true }).Logits!;
            using var logProbs = TorchSharp.torch.nn.functional.log_softmax(logits[0, i], 0);
            total += logProbs[tokens[i]].item<float>();
        }
        Assert.Equal(total / sequence.Length, mean, 4);
        Assert.Equal(mean, per[0], 12);

        // `protein pll` writes the same per sequence, with the sum and the pseudo-perplexity; a sample of positions is an estimate of it.
        string fasta = Write("pll.fasta", $">a\n{sequence}\n>b\nMKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ\n>gapped\nMK-TAYXIA\n");
        string scores = Path.Combine(TestData.TempDirectory(), "pll.csv");
        var run = Run("protein", "pll", "--model", TestData.EsmTiny, "--in", fasta, "--out", scores);
        Assert.True(run.Code == 0, run.Err);
        var rows = BioForge.IO.Csv.ReadRows(scores, out var header).Select(r => header.Zip(r.Fields).ToDictionary(p => p.First, p => p.Second)).ToList();
        Assert.Equal(["id", "length", "positions", "pll", "pll_sum", "pseudo_perplexity"], header);
        double Value(int row, string column) => double.Parse(rows[row][column], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(("a", "7", "7"), (rows[0]["id"], rows[0]["length"], rows[0]["positions"]));
        Assert.Equal(total / sequence.Length, Value(0, "pll"), 3);
        Assert.Equal(total, Value(0, "pll_sum"), 3);
        Assert.Equal(Math.Exp(-total / sequence.Length), Value(0, "pseudo_perplexity"), 3);
        Assert.Equal(("9", "7"), (rows[2]["length"], rows[2]["positions"])); // the gap and the X are context, not scored
        run = Run("protein", "pll", "--model", TestData.EsmTiny, "--in", fasta, "--out", scores, "--positions", "5");
        Assert.True(run.Code == 0, run.Err);
        var sampled = BioForge.IO.Csv.ReadRows(scores, out var sampledHeader).ToList();
        Assert.Equal(["5", "5", "5"], sampled.Select(r => r.Fields[2]));
        // The sum is estimated over every canonical residue: the sampled mean × 33 for b.
        Assert.Equal(double.Parse(sampled[1].Fields[3], System.Globalization.CultureInfo.InvariantCulture) * 33, double.Parse(sampled[1].Fields[4], System.Globalization.CultureInfo.InvariantCulture), 2);
        // Lower case is the same protein (the tokenizer reads both): every residue scored, the same scores.
        run = Run("protein", "pll", "--model", TestData.EsmTiny, "--in", Write("lower.fasta", $">a\n{sequence.ToLowerInvariant()}\n"), "--out", scores);
        Assert.True(run.Code == 0, run.Err);
        var lower = BioForge.IO.Csv.ReadRows(scores, out var _).Single().Fields;
        Assert.Equal(("7", rows[0]["pll"]), (lower[2], lower[3]));
        var none = Run("protein", "pll", "--model", TestData.EsmTiny, "--in", Write("none.fasta", ">a\nMK\n>xs\nXXB\n"), "--out", scores);
        Assert.Equal(2, none.Code);
        Assert.Contains("none.fasta:3: record 'xs' has no residue ESM-2 can score", none.Err);
    }

    /// <summary>
    /// A residue of a sequence longer than the model reads is scored in the 1,024 tokens centred on it (moved inwards at
    /// the ends): a sample of sites, each masked by hand in its window, gives the same mean log-probability.
    /// </summary>
    [Fact]
    public void PseudoLogLikelihoodOfALongSequenceReadsEachSiteInItsWindow()
    {
        using var esm = Models.Esm.EsmCheckpoint.Load(TestData.EsmTiny, TestData.Cpu.Device, TestData.Cpu.DType);
        string body = string.Concat(Enumerable.Range(0, 1100).Select(i => "ACDEFGHIKLMNPQRSTVWY"[(i * 7 + i / 13) % 20]));
        // The documented sample: the sites ordered by their seeded hash, the first 6 (every residue here is canonical);
        // a seed whose sample has a site away from both ends, in a window of its own.
        int[] Sample(ulong seed) => [.. Enumerable.Range(1, body.Length).OrderBy(i => Runtime.StatelessRandom.Hash(seed, 0, i)).Take(6)];
        ulong seed = Enumerable.Range(0, 1000).Select(s => (ulong)s).First(s => Sample(s).Any(i => i > 512 && i < 590));
        var sites = Sample(seed);
        var computed = GenerationQuality.PseudoLogLikelihood(esm, [body], positions: 6, maxResidues: int.MaxValue, seed: seed);
        Assert.Equal([6], computed.Scored);
        double total = 0;
        using var noGrad = TorchSharp.torch.no_grad();
        var framed = esm.Tokenizer.Encode(body);
        foreach (int site in sites)
        {
            int start = Math.Clamp(site - 512, 0, framed.Length - 1024); // 1,024 tokens of [<cls>, residues…, <eos>] around the site
            var tokens = framed[start..(start + 1024)];
            int at = site - start;
            var masked = tokens.Select((t, j) => (long)(j == at ? esm.Tokenizer.MaskId : t)).ToArray();
            using var ids = TorchSharp.torch.tensor(masked, [1, masked.Length]);
            using var ones = TorchSharp.torch.ones_like(ids);
            using var logits = esm.Model.Forward(ids, ones, new Models.Esm.EsmForwardOptions { Logits = true }).Logits!;
            using var logProbs = TorchSharp.torch.nn.functional.log_softmax(logits[0, at], 0);
            total += logProbs[tokens[at]].item<float>();
        }
        Assert.Equal(total / 6, computed.Mean, 4);

        string scores = Path.Combine(TestData.TempDirectory(), "pll.csv");
        var run = Run("protein", "pll", "--model", TestData.EsmTiny, "--in", Write("long.fasta", $">long\n{body}\n"), "--out", scores, "--positions", "3");
        Assert.True(run.Code == 0, run.Err);
        Assert.Equal(["long", "1100", "3"], BioForge.IO.Csv.ReadRows(scores, out _).Single().Fields.Take(3));
    }
}
