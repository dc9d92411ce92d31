using System.Globalization;
using BioForge.FineTuning;
using BioForge.IO;
using BioForge.Training;

namespace BioForge.Tests;

/// <summary>Fine-tuning runs on small slices of ESOL and CATH (seconds each); serial because dropout draws from the global generator.</summary>
[Collection(nameof(TrainerTests))]
public sealed class FineTuneTests
{
    private static string SmilesModel => Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small");
    private static string ProteinModel => Path.Combine(AppContext.BaseDirectory, "models", "esm2-small");

    /// <summary>The first <paramref name="rows"/> ESOL molecules as smiles,label.</summary>
    private static string Esol(string directory, int rows, Func<string, double, string>? relabel = null)
    {
        var lines = File.ReadLines(Path.Combine(AppContext.BaseDirectory, "moleculenet", "esol.csv")).Skip(1).Take(rows).Select(line =>
        {
            var fields = Csv.Split(line);
            string smiles = fields[^1].Trim();
            double solubility = double.Parse(fields[^2], CultureInfo.InvariantCulture);
            return $"{smiles},{(relabel is null ? solubility.ToString(CultureInfo.InvariantCulture) : relabel(smiles, solubility))}";
        });
        string path = Path.Combine(directory, "labelled.csv");
        File.WriteAllLines(path, ["smiles,label", .. lines]);
        return path;
    }

    private static string Yaml(string train, string model, string output, string task = "regression", string mode = "frozen", int epochs = 12, string extra = "") => $"""
        seed: 1
        data:
          train: {train}
          sequence_column: {(model.Contains("esm", StringComparison.Ordinal) ? "sequence" : "smiles")}
          label_column: label
          valid_fraction: 0.15
          test_fraction: 0.2
          max_length: 128
          batch_size: 32
        model:
          init: {model}
        task:
          type: {task}
          head_hidden: 64
        encoder:
          mode: {mode}
        optimizer:
          lr: 2.0e-3
        train:
          epochs: {epochs}
          threads: 2
          device: cpu
          output_dir: {output}
        {extra}
        """;

    private static FineTuneManifest Run(string directory, string yaml, params string[] overrides) =>
        FineTuner.Run(FineTuneConfig.Load(WriteYaml(directory, yaml), overrides), new FineTuneOptions());

    private static string WriteYaml(string directory, string yaml)
    {
        string path = Path.Combine(directory, $"ft-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    /// <summary>Re-predicts the test split with the saved run and compares with what training wrote.</summary>
    private static void AssertReloadedRunPredictsTheSame(string run)
    {
        var rows = Csv.ReadRows(Path.Combine(run, FineTuner.PredictionsFile), out var header).Select(r => r.Fields).ToList();
        int sequence = header.IndexOf("sequence"), prediction = header.IndexOf("prediction");
        using var model = FineTunedModel.Load(run, TestData.Cpu);
        var again = model.Predict([.. rows.Select(r => r[sequence])]);
        for (int i = 0; i < rows.Count; i++)
        {
            if (model.Manifest.TaskType == FineTuneTask.Regression)
                Assert.Equal(double.Parse(rows[i][prediction], CultureInfo.InvariantCulture), double.Parse(again[i].Text, CultureInfo.InvariantCulture), 3);
            else
                Assert.Equal(rows[i][prediction], again[i].Text);
        }
    }

    [Fact]
    public void FrozenSmilesRegressionBeatsTheTrainingMean()
    {
        string directory = TestData.TempDirectory(), run = Path.Combine(directory, "run");
        var manifest = Run(directory, Yaml(Esol(directory, 400), SmilesModel, run));
        Assert.Equal(new Dictionary<string, int> { ["train"] = 260, ["valid"] = 60, ["test"] = 80 }, manifest.Examples);
        Assert.True(manifest.Test["rmse"] < 0.75 * manifest.TestBaseline["rmse"], $"test RMSE {manifest.Test["rmse"]} vs baseline {manifest.TestBaseline["rmse"]}");
        Assert.True(manifest.Test["r2"] > 0.4, $"test R² {manifest.Test["r2"]}");
        Assert.True(File.Exists(Path.Combine(run, FineTuner.HeadFile)));
        Assert.False(Directory.Exists(Path.Combine(run, FineTuner.AdapterDirectory)));
        Assert.Equal(manifest.EpochsRun, File.ReadAllLines(Path.Combine(run, RunDirectory.MetricsFile)).Length);
        AssertReloadedRunPredictsTheSame(run);
    }

    [Fact]
    public void SmilesClassificationReportsAccuracyAndAuroc()
    {
        string directory = TestData.TempDirectory(), run = Path.Combine(directory, "run");
        // A label the SMILES spell out: does the molecule hold nitrogen?
        string data = Esol(directory, 400, (smiles, _) => smiles.Contains('N') || smiles.Contains('n') ? "yes" : "no");
        var manifest = Run(directory, Yaml(data, SmilesModel, run, task: "classification"));
        Assert.Equal(["no", "yes"], manifest.Classes);
        Assert.True(manifest.Test["accuracy"] > 0.85, $"accuracy {manifest.Test["accuracy"]}");
        Assert.True(manifest.Test["auroc"] > 0.9, $"AUROC {manifest.Test["auroc"]}");
        Assert.Equal(0.5, manifest.TestBaseline["auroc"]!.Value, 6);
        var header = File.ReadLines(Path.Combine(run, FineTuner.PredictionsFile)).First();
        Assert.Equal("source,line,sequence,label,prediction,p_no,p_yes", header);
        AssertReloadedRunPredictsTheSame(run);
    }

    [Fact]
    public void LoraRunSavesAdaptersThatMergeIntoThePredictions()
    {
        string directory = TestData.TempDirectory(), run = Path.Combine(directory, "run");
        var manifest = Run(directory, Yaml(Esol(directory, 160), SmilesModel, run, mode: "lora", epochs: 2),
            "encoder.lora.rank=4", "encoder.lora.target_modules=[q_proj, v_proj, down_proj]");
        Assert.Equal("lora", manifest.EncoderMode);
        // Per layer, rank 4: q_proj 256→256, v_proj 256→128, down_proj 688→256; plus the head 256→64→1.
        long perLayer = 4 * (256 + 256) + 4 * (256 + 128) + 4 * (688 + 256);
        Assert.Equal(4 * perLayer + (256 * 64 + 64) + (64 + 1), manifest.TrainableParameters);
        string adapter = Path.Combine(run, FineTuner.AdapterDirectory);
        Assert.True(File.Exists(Path.Combine(adapter, LoraAdapters.ConfigFile)));
        using (var weights = SafetensorsFile.Open(Path.Combine(adapter, LoraAdapters.WeightsFile)))
            Assert.Contains(weights.Entries, e => e.Name == "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" && e.Shape.SequenceEqual([4L, 256]));
        AssertReloadedRunPredictsTheSame(run);

        string merged = Path.Combine(directory, "merged");
        FineTunedModel.MergeEncoder(run, merged, TestData.Cpu);
        Assert.Equal([merged, run], Directory.GetDirectories(directory).Order()); // written under a hidden name, renamed: nothing else left
        using var baseWeights = SafetensorsFile.Open(Path.Combine(SmilesModel, "model.safetensors"));
        using var mergedWeights = SafetensorsFile.Open(Path.Combine(merged, "model.safetensors"));
        Assert.True(File.Exists(Path.Combine(merged, "vocab.json")));
        // Compared as float32 values: the shipped base stores float16, the merged model float32.
        Assert.NotEqual(Values(baseWeights, "model.layers.0.self_attn.q_proj.weight"), Values(mergedWeights, "model.layers.0.self_attn.q_proj.weight"));
        Assert.Equal(Values(baseWeights, "model.layers.0.self_attn.k_proj.weight"), Values(mergedWeights, "model.layers.0.self_attn.k_proj.weight"));
    }

    /// <summary>The first <paramref name="rows"/> CATH sequences labelled with their fraction of basic residues (K, R).</summary>
    private static string Charge(string directory, int rows)
    {
        string path = Path.Combine(directory, "charge.csv");
        File.WriteAllLines(path, ["sequence,label", .. FastaReader.Read(TestData.Path("train", "cath200.fasta")).Take(rows)
            .Select(r => r.Sequence.ToUpperInvariant())
            .Select(s => FormattableString.Invariant($"{s},{s.Count(c => c is 'K' or 'R') / (double)s.Length}"))]);
        return path;
    }

    private static float[] Values(SafetensorsFile file, string name)
    {
        using var tensor = file.ToTensor(name);
        using var single = tensor.to(TorchSharp.torch.ScalarType.Float32);
        return single.data<float>().ToArray();
    }

    /// <summary>Heads no gradient reaches (ESM-2's language-model head and contact regression) come out as they went in,
    /// however strong the weight decay; the layers beneath them are trained.</summary>
    [Fact]
    public void FullFineTuningLeavesTheOutputHeadsAsTheyWere()
    {
        string directory = TestData.TempDirectory(), run = Path.Combine(directory, "run");
        string data = Charge(directory, 40);
        Run(directory, Yaml(data, ProteinModel, run, mode: "full", epochs: 2), "optimizer.weight_decay=0.5", "data.batch_size=8");
        using var before = SafetensorsFile.Open(Path.Combine(ProteinModel, "model.safetensors"));
        using var after = SafetensorsFile.Open(Path.Combine(run, FineTuner.EncoderDirectory, "model.safetensors"));
        foreach (string head in new[] { "lm_head.dense.weight", "lm_head.bias", "esm.contact_head.regression.weight" })
            Assert.Equal(Values(before, head), Values(after, head));
        Assert.NotEqual(Values(before, "esm.encoder.layer.0.attention.self.query.weight"), Values(after, "esm.encoder.layer.0.attention.self.query.weight"));
    }

    [Fact]
    public void FullFineTuningWritesTheTrainedEncoder()
    {
        string directory = TestData.TempDirectory(), run = Path.Combine(directory, "run");
        var manifest = Run(directory, Yaml(Esol(directory, 120), SmilesModel, run, mode: "full", epochs: 1));
        Assert.True(File.Exists(Path.Combine(run, FineTuner.EncoderDirectory, "model.safetensors")));
        Assert.True(manifest.TrainableParameters > 2_800_000);
        AssertReloadedRunPredictsTheSame(run);
    }

    [Fact]
    public void PerResidueHeadLearnsHydrophobicity()
    {
        string directory = TestData.TempDirectory(), run = Path.Combine(directory, "run");
        string data = Path.Combine(directory, "residues.csv");
        File.WriteAllLines(data, ["sequence,label", .. FastaReader.Read(TestData.Path("train", "cath200.fasta")).Take(120)
            .Select(r => r.Sequence.ToUpperInvariant())
            .Where(s => !s.Contains('X'))
            .Select(s => $"{s},{new string([.. s.Select(c => "AVILMFWC".Contains(c) ? 'H' : 'P')])}")]);
        var manifest = Run(directory, Yaml(data, ProteinModel, run, task: "residue_classification", epochs: 10));
        Assert.Equal(["H", "P"], manifest.Classes);
        double accuracy = manifest.Test["accuracy"]!.Value, majority = manifest.TestBaseline["accuracy"]!.Value;
        Assert.True(accuracy > 0.85 && accuracy > majority + 0.2, $"per-residue accuracy {accuracy}, majority class {majority}");
        AssertReloadedRunPredictsTheSame(run);
    }

    /// <summary>A Llama decoder over amino acids reads proteins, not SMILES, when it predicts (its family alone says SMILES).</summary>
    [Fact]
    public void AFineTunedProteinDecoderPredictsProteins()
    {
        string directory = TestData.TempDirectory(), run = Path.Combine(directory, "run");
        string data = Charge(directory, 60);
        Run(directory, Yaml(data, TinyProteinModel.Directory, run, epochs: 1), "data.sequence_column=sequence");
        using var model = FineTunedModel.Load(run, TestData.Cpu);
        var predictions = model.Predict(["MKTAYIAKQRQISFVKSHFSRQ"]);
        Assert.Null(predictions[0].Error);
        Assert.True(double.IsFinite(double.Parse(predictions[0].Text, CultureInfo.InvariantCulture)));
        AssertReloadedRunPredictsTheSame(run);
    }

    [Theory]
    [InlineData("smiles,label\nCCO,\n", "labelled.csv:2: empty label")]
    [InlineData("smiles,label\nCCO,1.5\nCCN,high\n", "labelled.csv:3: label 'high' is not a number")]
    [InlineData("molecule,label\nCCO,1\n", "no column 'smiles' (data.sequence_column); the header has: molecule, label")]
    [InlineData("smiles,label\n", "labelled.csv: no data rows")]
    [InlineData("smiles,label\nCCO,1.5\nCC\"O,2.5\n", "labelled.csv:3: a quote inside an unquoted field at column 3")]
    [InlineData("smiles,label,smiles\nCCO,1.5,CCN\n", "the header names column 'smiles' (data.sequence_column) twice")]
    public void BadLabelledDataIsNamedWithFileAndLine(string csv, string expected)
    {
        string directory = TestData.TempDirectory();
        string data = Path.Combine(directory, "labelled.csv");
        File.WriteAllText(data, csv);
        var e = Assert.Throws<BioForgeException>(() => Run(directory, Yaml(data, SmilesModel, Path.Combine(directory, "run")), "data.valid_fraction=0", "data.test_fraction=0"));
        Assert.Contains(expected, e.Message);
        Assert.False(Directory.Exists(Path.Combine(directory, "run")));
    }

    /// <summary>Rows RDKit reads as no molecule stay in the data (the model reads text) and are counted, not passed over in silence.</summary>
    [Fact]
    public void RowsRDKitCannotReadAreCounted()
    {
        string directory = TestData.TempDirectory();
        string data = Esol(directory, 40);
        File.AppendAllText(data, "C1CC,2.5\nC(C,1.0\n");
        var info = new List<string>();
        FineTuner.Run(FineTuneConfig.Load(WriteYaml(directory, Yaml(data, SmilesModel, Path.Combine(directory, "run"))), ["train.epochs=1"]), new FineTuneOptions { OnInfo = info.Add });
        Assert.Contains(info, m => m.Contains("; 2 RDKit reads as no molecule (first ", StringComparison.Ordinal) && m.EndsWith("kept as text", StringComparison.Ordinal));
    }

    [Fact]
    public void ATestFileThatIsTheTrainingFileIsRefused()
    {
        string directory = TestData.TempDirectory();
        string data = Esol(directory, 40);
        var e = Assert.Throws<BioForgeException>(() => Run(directory, Yaml(data, SmilesModel, Path.Combine(directory, "run")), $"data.test={data}"));
        Assert.Contains($"data.test {data} is data.train", e.Message);
        Assert.False(Directory.Exists(Path.Combine(directory, "run")));
    }

    [Fact]
    public void OneClassNumberWrittenTwoWaysIsRefused()
    {
        string directory = TestData.TempDirectory(), data = Path.Combine(directory, "c.csv");
        File.WriteAllText(data, "smiles,label\nCCO,1\nCCN,0\nCCC,1.0\nCCCl,0\n");
        var e = Assert.Throws<BioForgeException>(() => Run(directory, Yaml(data, SmilesModel, Path.Combine(directory, "run"), task: "classification"), "data.valid_fraction=0", "data.test_fraction=0"));
        Assert.Contains("the class labels '1' and '1.0' are one number written differently", e.Message);
        Assert.False(Directory.Exists(Path.Combine(directory, "run")));
        File.WriteAllText(data, "smiles,label\nCCO,yes\nCCN,no\nCCC,Yes\nCCCl,no\n");
        e = Assert.Throws<BioForgeException>(() => Run(directory, Yaml(data, SmilesModel, Path.Combine(directory, "run"), task: "classification"), "data.valid_fraction=0", "data.test_fraction=0"));
        Assert.Contains("the class labels 'yes' and 'Yes' differ only in case or blanks", e.Message);
        // A missing measurement is no class: "NaN" sorted first and made a binary task three classes, silently.
        foreach (string missing in new[] { "NaN", "nan", "inf", "NA", "n/a" })
        {
            File.WriteAllText(data, $"smiles,label\nCCO,1\nCCN,0\nCCC,{missing}\nCCCl,0\n");
            e = Assert.Throws<BioForgeException>(() => Run(directory, Yaml(data, SmilesModel, Path.Combine(directory, "run"), task: "classification"), "data.valid_fraction=0", "data.test_fraction=0"));
            Assert.Contains($"c.csv:4: label '{missing}' is a missing value, not a class; remove the row", e.Message);
        }
        Assert.False(Directory.Exists(Path.Combine(directory, "run")));
    }

    [Fact]
    public void InvalidResiduesAndMismatchedResidueLabelsAreRefused()
    {
        string directory = TestData.TempDirectory(), data = Path.Combine(directory, "p.csv");
        File.WriteAllText(data, "sequence,label\nMKT,HPP\nMK1L,HPPH\n");
        var e = Assert.Throws<BioForgeException>(() => Run(directory, Yaml(data, ProteinModel, Path.Combine(directory, "run"), task: "residue_classification"), "data.valid_fraction=0", "data.test_fraction=0"));
        Assert.Contains("p.csv:3: invalid residue '1' at position 3", e.Message);
        Assert.DoesNotContain("SMILES", e.Message); // MK1L is no molecule: no hint
        // Molecules for a protein model: CCO reads as residues, so the first ring digit fails; the message says why.
        File.WriteAllText(data, "sequence,label\nCCO,1.5\nc1ccccc1O,2.0\n");
        e = Assert.Throws<BioForgeException>(() => Run(directory, Yaml(data, ProteinModel, Path.Combine(directory, "run")), "data.valid_fraction=0", "data.test_fraction=0"));
        Assert.Contains("p.csv:3: invalid residue '1' at position 2 (not in the model's alphabet) (the column holds SMILES, and model.init is a protein model", e.Message);
        File.WriteAllText(data, "sequence,label\nMKT,HPP\nMKL,HP\n");
        e = Assert.Throws<BioForgeException>(() => Run(directory, Yaml(data, ProteinModel, Path.Combine(directory, "run"), task: "residue_classification"), "data.valid_fraction=0", "data.test_fraction=0"));
        Assert.Contains("p.csv:3: 2 residue labels for 3 residues", e.Message);
    }

    /// <summary>
    /// Rows that would train on something else than they say: an unquoted comma shifts the label column (it became a
    /// third class), a lone stop '*' has no residues (its features were zeros), and a test label written 1.0 for the
    /// training split's 1 is named as such, not as a class that does not occur.
    /// </summary>
    [Fact]
    public void ShiftedEmptyAndDifferentlyWrittenRowsAreNamed()
    {
        string directory = TestData.TempDirectory(), data = Path.Combine(directory, "p.csv"), test = Path.Combine(directory, "t.csv");
        string[] rows = ["MKTAYIAK,0", "MKLLVAAG,1", "GSHMKTAY,0", "PLLVKAGE,1"];
        File.WriteAllText(data, "sequence,note,label\n" + string.Join("\n", rows.Select(r => r.Replace(",", ",n,", StringComparison.Ordinal))) + "\nMKTAYIAK,x, y,1\n");
        var e = Assert.Throws<BioForgeException>(() => Run(directory, Yaml(data, ProteinModel, Path.Combine(directory, "run"), task: "classification"), "data.valid_fraction=0", "data.test_fraction=0"));
        Assert.Contains("p.csv:6: 4 fields, the header has 3", e.Message);
        File.WriteAllText(data, "sequence,label\n" + string.Join("\n", rows) + "\n*,1\n");
        e = Assert.Throws<BioForgeException>(() => Run(directory, Yaml(data, ProteinModel, Path.Combine(directory, "run"), task: "classification"), "data.valid_fraction=0", "data.test_fraction=0"));
        Assert.Contains("p.csv:6: '*' holds no residues", e.Message);
        File.WriteAllText(data, "sequence,label\n" + string.Join("\n", rows) + "\n");
        File.WriteAllText(test, "sequence,label\nMKTAYIAK,1.0\n");
        e = Assert.Throws<BioForgeException>(() => Run(directory, Yaml(data, ProteinModel, Path.Combine(directory, "run"), task: "classification"), "data.valid_fraction=0", $"data.test={test}"));
        Assert.Contains("t.csv:2: label '1.0' is the training split's class '1' written differently", e.Message);
    }

    [Fact]
    public void ConfigurationMistakesAreRefusedBeforeTraining()
    {
        string directory = TestData.TempDirectory();
        string data = Esol(directory, 40), run = Path.Combine(directory, "run");
        var cases = new (string[] Overrides, string Expected)[]
        {
            (["task.pooling=cls"], "is a causal decoder whose first token sees nothing after it"),
            (["encoder.mode=adapter"], "encoder.mode must be frozen, full or lora (got 'adapter')"),
            (["task.head_size=3"], "unknown key 'task.head_size'"),
            (["data.valid_fraction=0.6", "data.test_fraction=0.5"], "sum below 1"),
            (["encoder.mode=lora", "encoder.lora.target_modules=[query]"], "'query' matches no linear layer"),
            (["task.type=classification"], "does not occur in the training split"),
            (["train.threads=-1"], "train.threads must be 0 (all cores) or positive (got -1)"),
        };
        foreach (var (overrides, expected) in cases)
        {
            var e = Assert.Throws<BioForgeException>(() => Run(directory, Yaml(data, SmilesModel, run), overrides));
            Assert.Contains(expected, e.Message);
        }
        // A GPT-2 checkpoint is read, never written or adapted: only frozen, said before the first epoch.
        foreach (string mode in new[] { "full", "lora" })
        {
            var epochs = 0;
            var e = Assert.Throws<BioForgeException>(() => FineTuner.Run(FineTuneConfig.Load(WriteYaml(directory, Yaml(data, TestData.Path("hf", "gpt2_tiny"), run)), [$"encoder.mode={mode}"]),
                new FineTuneOptions { OnEpoch = _ => epochs++ }));
            Assert.Contains($"encoder.mode {mode}: ", e.Message);
            Assert.Contains("use encoder.mode frozen", e.Message);
            Assert.Equal(0, epochs);
        }
        // Stopped (Ctrl+C) before the first epoch ended: no trained model, so nothing is written.
        using (var stopped = new CancellationTokenSource())
        {
            stopped.Cancel();
            Assert.Throws<OperationCanceledException>(() => FineTuner.Run(FineTuneConfig.Load(WriteYaml(directory, Yaml(data, SmilesModel, run))), new FineTuneOptions { Cancellation = stopped.Token }));
            Assert.False(Directory.Exists(run), "a run stopped before its first epoch was written");
        }
        // Diverged in its first epoch: an error saying so (not "stopped", as Ctrl+C is), and nothing written.
        Assert.Contains("epoch 1: the", Assert.Throws<BioForgeException>(() => Run(directory, Yaml(data, SmilesModel, run, epochs: 2), "optimizer.lr=1e30")).Message);
        Assert.False(Directory.Exists(run), "a diverged run was written");
        Directory.CreateDirectory(run);
        File.WriteAllText(Path.Combine(run, "keep.txt"), "x");
        var exists = Assert.Throws<BioForgeException>(() => Run(directory, Yaml(data, SmilesModel, run)));
        Assert.Contains("is not empty", exists.Message);
        Assert.Empty(Directory.GetDirectories(directory, "run.*.tmp"));
    }

    [Fact]
    public void FineTunePredictAndMergeFromTheCommandLine()
    {
        string directory = TestData.TempDirectory(), run = Path.Combine(directory, "run");
        string config = Path.Combine(directory, "ft.yaml");
        File.WriteAllText(config, Yaml(Esol(directory, 100), SmilesModel, run, epochs: 2));
        var (code, output, error) = Cli("finetune", "--config", config, "train.threads=1");
        Assert.True(code == 0, error);
        Assert.Contains("epoch 2/2", output);
        Assert.Contains("test (20): rmse", output);

        string smi = Path.Combine(directory, "in.smi"), predictions = Path.Combine(directory, "p.csv");
        File.WriteAllLines(smi, ["CCO ethanol", "c1ccccc1O phenol"]);
        (code, output, error) = Cli("finetune", "predict", "--run", run, "--in", smi, "--out", predictions, "--device", "cpu");
        Assert.True(code == 0, error);
        var lines = File.ReadAllLines(predictions);
        Assert.Equal("id,sequence,prediction,error", lines[0]);
        Assert.StartsWith("ethanol,CCO,", lines[1]);
        Assert.EndsWith(",", lines[1]);
        Assert.True(double.TryParse(lines[2].Split(',')[2], CultureInfo.InvariantCulture, out _));

        (code, _, error) = Cli("finetune", "merge", "--run", run, "--out", Path.Combine(directory, "merged"));
        Assert.Equal(2, code);
        Assert.Contains("the encoder was frozen", error);

        string csv = Path.Combine(directory, "in.csv");
        File.WriteAllLines(csv, ["name,smiles", "a,CCO", "b,C C", "c,C1CC", "d,c1ccccc1O"]);
        (code, output, error) = Cli("finetune", "predict", "--run", run, "--in", csv, "--out", predictions);
        Assert.True(code == 0, error); // as Chemprop: invalid rows are marked and the others predicted
        Assert.Contains("2 of 4 inputs invalid", error);
        lines = File.ReadAllLines(predictions);
        Assert.Equal(5, lines.Length);
        Assert.StartsWith("line 2,CCO,", lines[1]);
        Assert.StartsWith("line 3,C C,,", lines[2]);
        Assert.Contains("space at position 2", lines[2]);
        Assert.StartsWith("line 4,C1CC,,", lines[3]);
        Assert.Contains("unclosed ring", lines[3]);
        Assert.True(double.TryParse(lines[4].Split(',')[2], CultureInfo.InvariantCulture, out _));

        // An SDF is read as molecules (each of its lines was taken for a SMILES): a record RDKit refuses keeps its row.
        (code, _, error) = Cli("finetune", "predict", "--run", run, "--in", TestData.Path("chem", "small.sdf"), "--out", predictions);
        Assert.True(code == 0, error);
        Assert.Contains("1 of 4 inputs invalid", error);
        lines = File.ReadAllLines(predictions);
        Assert.Equal(5, lines.Length);
        Assert.StartsWith("aspirin,CC(=O)Oc1ccccc1C(=O)O,", lines[1]);
        Assert.StartsWith("pentavalent,,,\"invalid molecule: ", lines[4]);
        File.WriteAllLines(smi, ["CC(=O)Oc1ccccc1C(=O)O aspirin"]);
        Assert.Equal(0, Cli("finetune", "predict", "--run", run, "--in", smi, "--out", Path.Combine(directory, "one.csv")).Code);
        Assert.Equal(File.ReadAllLines(Path.Combine(directory, "one.csv"))[1], lines[1]);

        (code, _, error) = Cli("finetune", "--config", config, "train.epoch=3");
        Assert.Equal(2, code);
        Assert.Contains("unknown key 'train.epoch'", error);
        // Settings before a subcommand parse as training's: refused, not dropped without a word.
        (code, _, error) = Cli("finetune", "encoder.mode=lora", "predict", "--run", run, "--in", smi, "--out", Path.Combine(directory, "lora.csv"));
        Assert.Equal(2, code);
        Assert.Contains("finetune predict takes no settings (encoder.mode=lora): it reads the run's own (finetune.json)", error);
        Assert.False(File.Exists(Path.Combine(directory, "lora.csv")));
        (code, _, error) = Cli("finetune", "--config", config, "predict", "--run", run, "--in", smi, "--out", Path.Combine(directory, "lora.csv"));
        Assert.Equal(2, code);
        Assert.Contains($"finetune predict takes no --config ({config})", error);
    }

    private static (int Code, string Out, string Err) Cli(params string[] args)
    {
        _ = TestData.Cpu;
        var output = new StringWriter();
        var error = new StringWriter();
        int code = BioForge.Cli.Cli.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }
}
