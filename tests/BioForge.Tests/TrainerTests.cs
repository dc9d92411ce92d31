using BioForge.IO;
using BioForge.Models.Esm;
using BioForge.Models.Llama;
using BioForge.Tokenizers;
using BioForge.Training;

namespace BioForge.Tests;

/// <summary>Tiny corpora and run configurations for trainer tests (a few seconds each on two cores).</summary>
internal static class TinyRuns
{
    private static readonly Lazy<string> SmilesCorpus = new(() => Prepare("train/zinc2k.smi", CorpusKind.Smiles));
    private static readonly Lazy<string> ProteinCorpus = new(() => Prepare("train/cath200.fasta", CorpusKind.Protein));

    private static string Prepare(string file, CorpusKind kind)
    {
        string directory = Path.Combine(TestData.TempDirectory(), "corpus");
        DataPreparation.Prepare(TestData.Path(file), kind, directory, validationFraction: 0.05, seed: 0);
        return directory;
    }

    public static string Smiles => SmilesCorpus.Value;
    public static string Proteins => ProteinCorpus.Value;

    public static string LlamaYaml(string corpus, string output, long steps, string extra = "") => $"""
        seed: 3
        data:
          dir: {corpus}
          tokens_per_batch: 1024
          max_length: 64
        model:
          type: llama
          config:
            hidden_size: 32
            intermediate_size: 64
            num_hidden_layers: 2
            num_attention_heads: 4
            num_key_value_heads: 2
            tie_word_embeddings: true
        optimizer:
          lr: 3.0e-3
          weight_decay: 0.1
        schedule:
          warmup_steps: 3
          decay: cosine
        train:
          steps: {steps}
          threads: 2
          device: cpu
          output_dir: {output}
          log_every: 2
        validation:
          every: 4
          max_batches: 2
        checkpoint:
          every: 3
          keep: 2
        {extra}
        """;

    public static string EsmYaml(string corpus, string output, long steps) => $"""
        seed: 5
        data:
          dir: {corpus}
          tokens_per_batch: 1024
          max_length: 96
        model:
          type: esm
          config:
            hidden_size: 32
            intermediate_size: 64
            num_hidden_layers: 2
            num_attention_heads: 4
            hidden_dropout_prob: 0.1
            attention_probs_dropout_prob: 0.1
        optimizer:
          lr: 2.0e-3
        schedule:
          warmup_steps: 2
        train:
          steps: {steps}
          accumulation: 2
          threads: 2
          device: cpu
          output_dir: {output}
        validation:
          every: 0
        checkpoint:
          every: 2
        """;

    public static RunConfig Config(string yaml, params string[] overrides)
    {
        string path = Path.Combine(TestData.TempDirectory(), "run.yaml");
        File.WriteAllText(path, yaml);
        return RunConfig.Load(path, overrides);
    }

    /// <summary>The final models of two runs hold the same tensors, byte for byte.</summary>
    public static void AssertSameWeights(string runA, string runB)
    {
        var a = Weights(Path.Combine(runA, Trainer.ModelDirectory));
        var b = Weights(Path.Combine(runB, Trainer.ModelDirectory));
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, bytes) in a) Assert.True(bytes.AsSpan().SequenceEqual(b[name]), $"{name} differs after resume");
    }

    /// <summary>Every parameter of a saved model as raw bytes, keyed by name.</summary>
    public static Dictionary<string, byte[]> Weights(string modelDirectory)
    {
        using var file = SafetensorsFile.Open(Path.Combine(modelDirectory, "model.safetensors"));
        return file.Entries.ToDictionary(e => e.Name, e => file.GetBytes(e.Name).ToArray());
    }
}

/// <summary>
/// Dropout draws from LibTorch's process-wide generator, which the trainer reseeds every step; tests running in
/// parallel in the same process would draw from it too, so trainer tests run alone.
/// </summary>
[CollectionDefinition(nameof(TrainerTests), DisableParallelization = true)]
public sealed class TrainerTestsCollection;

[Collection(nameof(TrainerTests))]
public sealed class TrainerTests
{
    [Fact]
    public void TheEtaOfAResumedRunCountsOnlyTheStepsThisProcessMade()
    {
        // Resumed at 1410 (not a multiple of log_every): 10 steps in 10 s leave 580 steps, 580 s.
        var resumed = new StepReport(1420, 2000, 1.0, 1e-3, 1.0, 1000, TimeSpan.FromSeconds(10), 1000, StartStep: 1410);
        Assert.Equal(TimeSpan.FromSeconds(580), resumed.Remaining);
        Assert.Equal(TimeSpan.Zero, (resumed with { Step = 1410 }).Remaining);
        Assert.Equal(TimeSpan.FromSeconds(90), new StepReport(10, 100, 1.0, 1e-3, 1.0, 1000, TimeSpan.FromSeconds(10), 1000).Remaining);
    }

    /// <summary>A throughput run (<c>bench train</c>) writes neither model nor checkpoint, and still knows its exact size.</summary>
    [Fact]
    public void AThroughputRunWritesNoModelOrCheckpointAndKnowsItsSize()
    {
        string measured = TestData.TempDirectory(), written = TestData.TempDirectory();
        var run = Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, measured, 2), "checkpoint.every=0"), new TrainerOptions { WriteModel = false });
        Assert.False(run.Interrupted);
        Assert.Null(run.Checkpoint);
        Assert.False(Directory.Exists(run.ModelDirectory));
        Assert.False(Directory.Exists(Path.Combine(measured, "checkpoints")));
        var full = Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, written, 2), "checkpoint.every=0"), new TrainerOptions());
        Assert.NotNull(full.Checkpoint);
        using var weights = SafetensorsCheckpoint.Open(full.ModelDirectory);
        Assert.Equal(weights.Names.Sum(n => weights.Entry(n).Shape.Aggregate(1L, (x, y) => x * y)), run.Shape.Parameters);
    }

    [Fact]
    public void ResumingMidRunGivesBitIdenticalWeightsForTheCausalObjective()
    {
        string straight = TestData.TempDirectory(), resumed = TestData.TempDirectory();
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, straight, 10)), new TrainerOptions());
        var first = Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, resumed, 10)), new TrainerOptions { StopAt = 5 });
        Assert.True(first.Interrupted);
        Assert.Equal(5, first.Step);
        var second = Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, resumed, 10)), new TrainerOptions { Resume = true });
        Assert.Equal(5, second.StartStep);
        Assert.False(second.Interrupted);

        TinyRuns.AssertSameWeights(straight, resumed);

        // The metrics of the resumed run continue those of the first part without duplicated steps, and its clock
        // continues the run's: elapsed_seconds never goes back.
        var logged = File.ReadAllLines(Path.Combine(resumed, RunDirectory.MetricsFile))
            .Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!)
            .Where(n => n["loss"] is not null)
            .ToList();
        Assert.Equal([2, 4, 5, 6, 8, 10], logged.Select(n => n["step"]!.GetValue<long>()));
        var elapsed = logged.Select(n => n["elapsed_seconds"]!.GetValue<double>()).ToList();
        Assert.True(elapsed.Zip(elapsed.Skip(1)).All(p => p.Second >= p.First), $"elapsed_seconds went back: {string.Join(", ", elapsed)}");
    }

    /// <summary>A resumed run's checkpoints carry the last validation loss until it validates again, not null.</summary>
    [Fact]
    public void AResumedRunKeepsItsLastValidationLossInItsCheckpoints()
    {
        string output = TestData.TempDirectory();
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 8)), new TrainerOptions { StopAt = 5 }); // validated at step 4
        var before = TrainerState.Read(RunDirectory.Existing(output).Checkpoints(TrainerState.FileName)[^1].Path);
        Assert.NotNull(before.LastValidationLoss);
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 8)), new TrainerOptions { Resume = true, StopAt = 6 });
        var after = TrainerState.Read(RunDirectory.Existing(output).Checkpoints(TrainerState.FileName)[^1].Path);
        Assert.Equal(6, after.Step);
        Assert.Equal(before.LastValidationLoss, after.LastValidationLoss);
    }

    /// <summary>
    /// With clipping off the gradient norm is still measured and logged (it was null, so an overflowing gradient went
    /// unseen until the loss broke, after NaN weights could be checkpointed), and the log says it before clipping.
    /// </summary>
    [Fact]
    public void TheGradientNormIsLoggedWithClippingOffToo()
    {
        var norms = new Dictionary<string, List<double>>();
        foreach (string clip in new[] { "0", "0.001" })
        {
            string output = TestData.TempDirectory();
            Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 2), $"optimizer.grad_clip={clip}", "train.log_every=1", "validation.every=0"), new TrainerOptions());
            norms[clip] = [.. File.ReadAllLines(Path.Combine(output, RunDirectory.MetricsFile)).Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!)
                .Where(n => n["grad_norm"] is not null).Select(n => n["grad_norm"]!.GetValue<double>())];
        }
        Assert.Equal(2, norms["0"].Count);
        Assert.All(norms["0"], n => Assert.True(n > 0.001 && double.IsFinite(n), $"grad_norm {n}"));
        // The first step's gradients are the same either way: the norm logged is the one before clipping.
        Assert.Equal(norms["0"][0], norms["0.001"][0], 6);
    }

    /// <summary>A run that fails before anything worth keeping, in a folder it found empty, leaves it empty: a retry is not refused as "not empty".</summary>
    [Fact]
    public void ARunRefusedInAFolderItFoundEmptyLeavesItEmpty()
    {
        string output = TestData.TempDirectory();
        // lr 1e6 without clipping: the loss or the gradients stop being finite, whichever comes first (it depends on the thread count); nothing is applied.
        Assert.Matches("the (loss|gradient norm) is", Assert.Throws<BioForgeException>(() => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 6),
            "optimizer.lr=1e6", "optimizer.grad_clip=0", "train.log_every=100", "validation.every=0"), new TrainerOptions())).Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(output));
        // Parents made for the run directory go with it.
        Assert.Matches("the (loss|gradient norm) is", Assert.Throws<BioForgeException>(() => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, Path.Combine(output, "a", "b"), 6),
            "optimizer.lr=1e6", "optimizer.grad_clip=0", "train.log_every=100", "validation.every=0"), new TrainerOptions())).Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(output));
        // A stop before the first step is refused before the run directory is made (it used to write one that said "resume").
        string fresh = Path.Combine(output, "fresh");
        Assert.Contains("--stop-at 0: must be a step of the run", Assert.Throws<BioForgeException>(() => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, fresh, 6)),
            new TrainerOptions { StopAt = 0 })).Message);
        Assert.False(Directory.Exists(fresh));
    }

    /// <summary>Resuming from an earlier checkpoint abandons the later ones: <c>--resume</c> must not pick them up again,
    /// and retention must not keep them over the checkpoints the resumed run writes.</summary>
    [Fact]
    public void ResumingFromAnEarlierCheckpointRemovesTheLaterOnes()
    {
        string output = TestData.TempDirectory();
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 6)), new TrainerOptions());
        var store = RunDirectory.Existing(output);
        Assert.Equal([3L, 6], store.Checkpoints(TrainerState.FileName).Select(c => c.Step));

        // A resume refused after the checks of RunResume (here the tensor-parallel layout) or one that would train nothing keeps them.
        string early = store.Checkpoints(TrainerState.FileName)[0].Path;
        Assert.Contains("tensor parallel", Assert.Throws<BioForgeException>(() => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 6), "train.tensor_parallel=2"),
            new TrainerOptions { ResumeFrom = early })).Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("--stop-at 3: the checkpoint is at step 3 already", Assert.Throws<BioForgeException>(() => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 6)),
            new TrainerOptions { ResumeFrom = early, StopAt = 3 })).Message);
        Assert.Equal([3L, 6], store.Checkpoints(TrainerState.FileName).Select(c => c.Step));

        var info = new List<string>();
        var resumed = Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 6)),
            new TrainerOptions { ResumeFrom = early, StopAt = 4, OnInfo = info.Add });
        Assert.Equal([3L, 4], store.Checkpoints(TrainerState.FileName).Select(c => c.Step));
        Assert.True(Directory.Exists(resumed.Checkpoint), $"{resumed.Checkpoint} was retired");
        Assert.Contains(info, line => line.Contains("removed the later checkpoints of the abandoned continuation (steps 6) and the model/ it wrote", StringComparison.Ordinal));
        Assert.False(Directory.Exists(Path.Combine(output, Trainer.ModelDirectory)), "the abandoned continuation's model/ (trained to step 6) was kept");
        var again = Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 6)), new TrainerOptions { Resume = true });
        Assert.Equal(4, again.StartStep);
        Assert.True(Directory.Exists(again.ModelDirectory), "the new branch publishes its own model when it finishes");
    }

    [Fact]
    public void ResumingMidRunGivesBitIdenticalWeightsForTheMaskedObjectiveWithDropoutAndAccumulation()
    {
        string straight = TestData.TempDirectory(), resumed = TestData.TempDirectory();
        Trainer.Run(TinyRuns.Config(TinyRuns.EsmYaml(TinyRuns.Proteins, straight, 6)), new TrainerOptions());
        Trainer.Run(TinyRuns.Config(TinyRuns.EsmYaml(TinyRuns.Proteins, resumed, 6)), new TrainerOptions { StopAt = 3 });
        Trainer.Run(TinyRuns.Config(TinyRuns.EsmYaml(TinyRuns.Proteins, resumed, 6)), new TrainerOptions { Resume = true });
        TinyRuns.AssertSameWeights(straight, resumed);

        // The contact regression is no part of masked language modelling: weight decay leaves it where it was.
        var earlier = RunDirectory.Existing(resumed).Checkpoints(TrainerState.FileName).First(c => c.Step < 6);
        var checkpointed = TinyRuns.Weights(earlier.Path);
        var final = TinyRuns.Weights(Path.Combine(resumed, Trainer.ModelDirectory));
        Assert.Equal(checkpointed["esm.contact_head.regression.weight"], final["esm.contact_head.regression.weight"]);
        Assert.NotEqual(checkpointed["lm_head.dense.weight"], final["lm_head.dense.weight"]);

        // The result is an ordinary Hugging Face ESM-2 directory.
        using var loaded = EsmCheckpoint.Load(Path.Combine(straight, Trainer.ModelDirectory), TestData.Cpu.Device, TestData.Cpu.DType);
        Assert.Equal(0.1, loaded.Config.HiddenDropoutProb);
        Assert.Equal(1e-5, loaded.Config.LayerNormEps); // the run file leaves it out: ESM-2's value, written to config.json
    }

    [Fact]
    public void TrainingLowersTheValidationLossAndKeepsTheLastCheckpoints()
    {
        string output = TestData.TempDirectory();
        var reports = new List<ValidationReport>();
        var result = Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 12)), new TrainerOptions { OnValidation = reports.Add });
        Assert.Equal([4L, 8, 12], reports.Select(r => r.Step));
        Assert.True(reports[^1].Loss < reports[0].Loss - 0.2, $"validation loss {reports[0].Loss:F3} -> {reports[^1].Loss:F3}");
        Assert.Equal(reports[^1], result.Validation);

        var store = RunDirectory.Existing(output);
        Assert.Equal([9L, 12], store.Checkpoints(TrainerState.FileName).Select(c => c.Step));
        var state = TrainerState.Read(store.LatestCheckpoint(TrainerState.FileName)!);
        Assert.Equal(12, state.Step);
        using var model = LlamaCheckpoint.Load(Path.Combine(output, Trainer.ModelDirectory), TestData.Cpu.Device, TestData.Cpu.DType);
        Assert.NotNull(model.Vocabulary);
    }

    /// <summary>
    /// A corpus prepared with a model's vocabulary lets that model go on training on it (transfer learning, as REINVENT
    /// fine-tunes its prior on a focused set); a molecule the vocabulary cannot write is left out and counted.
    /// </summary>
    [Fact]
    public void AModelGoesOnTrainingOnACorpusPreparedWithItsVocabulary()
    {
        string model = Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small");
        string smi = Path.Combine(TestData.TempDirectory(), "focused.smi");
        File.WriteAllLines(smi, ["[Xe]", .. File.ReadLines(TestData.Path("train", "zinc2k.smi")).Take(200), "C[Se]C"]);
        string corpus = Path.Combine(TestData.TempDirectory(), "corpus");
        var prepared = DataPreparation.Prepare([smi], CorpusKind.Smiles, corpus, validationFraction: 0.1, seed: 0, vocabulary: model);
        Assert.Equal(2, prepared.Skipped);
        Assert.Equal(200, prepared.Train.Documents + prepared.Validation.Documents);
        Assert.Equal(File.ReadAllText(Path.Combine(model, SmilesVocabulary.FileName)), File.ReadAllText(Path.Combine(corpus, SmilesVocabulary.FileName)));

        string output = TestData.TempDirectory();
        var trained = Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(corpus, output, 2), "model.config=null", $"model.init={model}"), new TrainerOptions());
        Assert.Equal(2, trained.Step);
        using var continued = LlamaCheckpoint.Load(Path.Combine(output, Trainer.ModelDirectory), TestData.Cpu.Device, TestData.Cpu.DType);
        Assert.Equal(SmilesVocabulary.Load(Path.Combine(model, SmilesVocabulary.FileName)).Tokens, continued.Vocabulary!.Tokens);

        // Built from the corpus instead, the vocabulary differs and the model says how to prepare it.
        string own = Path.Combine(TestData.TempDirectory(), "own");
        DataPreparation.Prepare([smi], CorpusKind.Smiles, own, validationFraction: 0.1, seed: 0);
        // A molecule left out does not move the others between the splits.
        static List<string?> Molecules(string directory, string split)
        {
            var vocabulary = SmilesVocabulary.Load(Path.Combine(directory, SmilesVocabulary.FileName));
            using var reader = new TokenStore.Reader(Path.Combine(directory, split));
            return [.. Enumerable.Range(0, reader.Count).Select(i => vocabulary.Decode(reader.Document(i).Select(t => (long)t)))];
        }
        foreach (string split in new[] { "train", "valid" })
            Assert.Equal(Molecules(own, split).Where(m => m is not ("[Xe]" or "C[Se]C")), Molecules(corpus, split));
        var refused = Assert.Throws<BioForgeException>(() => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(own, TestData.TempDirectory(), 2), "model.config=null", $"model.init={model}"), new TrainerOptions()));
        Assert.Contains($"prepare the corpus with --vocab {model}", refused.Message);
        var none = Assert.Throws<BioForgeException>(() => DataPreparation.Prepare([smi], CorpusKind.Protein, Path.Combine(TestData.TempDirectory(), "p"), 0.1, 0, vocabulary: model));
        Assert.Contains("--vocab applies to SMILES corpora", none.Message);
    }

    [Fact]
    public void ACorpusWithoutValidationSplitTrainsWithoutValidating()
    {
        string corpus = Path.Combine(TestData.TempDirectory(), "corpus");
        DataPreparation.Prepare(TestData.Path("train", "zinc2k.smi"), CorpusKind.Smiles, corpus, validationFraction: 0, seed: 0);
        var reports = new List<ValidationReport>();
        var info = new List<string>();
        var result = Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(corpus, TestData.TempDirectory(), 4)), new TrainerOptions { OnValidation = reports.Add, OnInfo = info.Add });
        Assert.Equal(4, result.Step);
        Assert.Null(result.Validation);
        Assert.Empty(reports);
        Assert.Contains(info, m => m.StartsWith($"no validation: {corpus} has no validation documents", StringComparison.Ordinal)); // said, not skipped in silence
    }

    /// <summary>
    /// A validation split from another corpus (another vocabulary) is refused before training, not at the first
    /// validation; a warmup as long as the run is said (its rate never reaches optimizer.lr).
    /// </summary>
    [Fact]
    public void AValidationSplitOfAnotherVocabularyIsRefusedAndAWholeRunWarmupIsSaid()
    {
        string mixed = Path.Combine(TestData.TempDirectory(), "corpus");
        DataPreparation.Prepare(TestData.Path("train", "zinc2k.smi"), CorpusKind.Smiles, mixed, validationFraction: 0.05, seed: 0);
        foreach (string extension in new[] { ".bin", ".idx" })
            File.Copy(Path.Combine(TinyRuns.Proteins, "valid" + extension), Path.Combine(mixed, "valid" + extension), overwrite: true);
        var e = Assert.Throws<BioForgeException>(() => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(mixed, TestData.TempDirectory(), 2)), new TrainerOptions()));
        Assert.Contains("they were not prepared together", e.Message);

        var info = new List<string>();
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, TestData.TempDirectory(), 2), "schedule.warmup_steps=5", "checkpoint.every=0"), new TrainerOptions { OnInfo = info.Add, WriteModel = false });
        Assert.Contains(info, m => m.StartsWith("warning: schedule.warmup_steps 5 covers the whole run of 2 steps", StringComparison.Ordinal));
    }

    /// <summary>Packing fills the positions padding would leave empty (the whole token budget of every step is real
    /// tokens), and the model learns from the packed rows.</summary>
    [Fact]
    public void PackedCausalTrainingFillsTheBatchAndLearns()
    {
        long TokensPerStep(bool packing, List<ValidationReport> reports, long steps)
        {
            var seen = new List<StepReport>();
            Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, TestData.TempDirectory(), steps), $"data.packing={(packing ? "true" : "false")}"),
                new TrainerOptions { OnValidation = reports.Add, OnStep = seen.Add });
            return seen.Sum(r => r.Tokens) / steps;
        }
        var packed = new List<ValidationReport>();
        long packedTokens = TokensPerStep(true, packed, 12), paddedTokens = TokensPerStep(false, [], 2);
        Assert.Equal(1024, packedTokens); // data.tokens_per_batch, every position a real token
        Assert.True(paddedTokens < packedTokens, $"tokens per step: packed {packedTokens}, padded {paddedTokens}");
        Assert.True(packed[^1].Loss < packed[0].Loss - 0.2, $"validation loss {packed[0].Loss:F3} -> {packed[^1].Loss:F3}");
    }

    [Fact]
    public void MixedPrecisionKeepsFloat32MasterWeightsAndResumesExactly()
    {
        string straight = TestData.TempDirectory(), resumed = TestData.TempDirectory();
        string yaml(string output) => TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 6);
        Trainer.Run(TinyRuns.Config(yaml(straight), "train.precision=bf16-mixed"), new TrainerOptions());
        Trainer.Run(TinyRuns.Config(yaml(resumed), "train.precision=bf16-mixed"), new TrainerOptions { StopAt = 3 });
        using (var optimizerState = SafetensorsFile.Open(Path.Combine(resumed, "checkpoints", "step-000000003", CheckpointFiles.OptimizerFile)))
        {
            Assert.Contains(optimizerState.Entries, e => e.Name == "model.layers.0.mlp.up_proj.weight.master" && e.DType == SafetensorsDType.F32);
        }
        var resume = () => Trainer.Run(TinyRuns.Config(yaml(resumed)), new TrainerOptions { Resume = true });
        Assert.Contains("precision", Assert.Throws<BioForgeException>(resume).Message);
        Trainer.Run(TinyRuns.Config(yaml(resumed), "train.precision=bf16-mixed"), new TrainerOptions { Resume = true });
        TinyRuns.AssertSameWeights(straight, resumed);

        // The published model is what was learnt, the float32 masters, not their bf16 rounding the forward pass reads.
        const string name = "model.layers.0.mlp.up_proj.weight";
        using var published = SafetensorsFile.Open(Path.Combine(straight, Trainer.ModelDirectory, "model.safetensors"));
        using var last = SafetensorsFile.Open(Path.Combine(straight, "checkpoints", "step-000000006", CheckpointFiles.OptimizerFile));
        using var weight = published.ToTensor(name);
        using var master = last.ToTensor($"{name}.master");
        Assert.True(weight.eq(master).all().item<bool>(), "the published weight is not the master weight");
        using var rounded = weight.to(TorchSharp.torch.ScalarType.BFloat16).to(TorchSharp.torch.ScalarType.Float32);
        Assert.False(weight.eq(rounded).all().item<bool>(), "the published weight holds only bf16 values");
    }

    /// <summary>
    /// Mixed precision from a float32 <c>model.init</c> learns from its float32 weights, not from their bf16 rounding:
    /// at a learning rate too small to move a float32 weight, the masters, checkpointed and published, are the initial
    /// weights bit for bit.
    /// </summary>
    [Fact]
    public void MixedPrecisionStartsItsMasterWeightsFromTheFloat32Init()
    {
        string initRun = TestData.TempDirectory(), mixed = TestData.TempDirectory();
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, initRun, 2)), new TrainerOptions());
        string init = Path.Combine(initRun, Trainer.ModelDirectory);
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, mixed, 3), "model.config=null", $"model.init={init}",
            "train.precision=bf16-mixed", "optimizer.lr=1e-30", "optimizer.weight_decay=0"), new TrainerOptions());

        const string name = "model.layers.0.mlp.up_proj.weight";
        using var initial = SafetensorsFile.Open(Path.Combine(init, "model.safetensors"));
        using var published = SafetensorsFile.Open(Path.Combine(mixed, Trainer.ModelDirectory, "model.safetensors"));
        using var checkpoint = SafetensorsFile.Open(Path.Combine(mixed, "checkpoints", "step-000000003", CheckpointFiles.OptimizerFile));
        using var expected = initial.ToTensor(name);
        using var weight = published.ToTensor(name);
        using var master = checkpoint.ToTensor($"{name}.master");
        using var rounded = expected.to(TorchSharp.torch.ScalarType.BFloat16).to(TorchSharp.torch.ScalarType.Float32);
        Assert.False(expected.eq(rounded).all().item<bool>(), "the initial weight holds only bf16 values: the test cannot tell");
        Assert.True(master.eq(expected).all().item<bool>(), "the master weight is not the float32 initial weight");
        Assert.True(weight.eq(expected).all().item<bool>(), "the published weight is not the float32 initial weight");
    }

    /// <summary>
    /// A parameter no gradient reaches (ESM-2's contact head, left out of the optimizer) is written as it was read in
    /// mixed precision too: with no master weight of its own it was written from the bf16 network, rounded.
    /// </summary>
    [Fact]
    public void MixedPrecisionWritesAFrozenParameterUnrounded()
    {
        string initRun = TestData.TempDirectory(), mixed = TestData.TempDirectory();
        Trainer.Run(TinyRuns.Config(TinyRuns.EsmYaml(TinyRuns.Proteins, initRun, 1)), new TrainerOptions());
        string init = Path.Combine(initRun, Trainer.ModelDirectory);
        Trainer.Run(TinyRuns.Config(TinyRuns.EsmYaml(TinyRuns.Proteins, mixed, 2), "model.config=null", $"model.init={init}", "train.precision=bf16-mixed"),
            new TrainerOptions());

        const string name = "esm.contact_head.regression.weight";
        using var initial = SafetensorsFile.Open(Path.Combine(init, "model.safetensors"));
        using var published = SafetensorsFile.Open(Path.Combine(mixed, Trainer.ModelDirectory, "model.safetensors"));
        using var expected = initial.ToTensor(name);
        using var weight = published.ToTensor(name);
        using var rounded = expected.to(TorchSharp.torch.ScalarType.BFloat16).to(TorchSharp.torch.ScalarType.Float32);
        Assert.False(expected.eq(rounded).all().item<bool>(), "the initial contact head holds only bf16 values: the test cannot tell");
        Assert.True(weight.eq(expected).all().item<bool>(), "the published contact head is not the float32 one it started from");
    }

    /// <summary>A checkpoint's state with values no run writes (an edited step trained on with negative learning rates)
    /// is refused on resume, named, as is a step its folder does not say.</summary>
    [Fact]
    public void ADamagedTrainerStateIsRefusedOnResume()
    {
        string output = TestData.TempDirectory();
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 4)), new TrainerOptions { StopAt = 3 });
        string path = Path.Combine(output, "checkpoints", "step-000000003", TrainerState.FileName);
        string original = File.ReadAllText(path);
        var resume = () => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 4)), new TrainerOptions { Resume = true });
        File.WriteAllText(path, original.Replace("\"step\": 3", "\"step\": -5", StringComparison.Ordinal));
        Assert.Contains("step -5 is not a value a run writes", Assert.Throws<BioForgeException>(resume).Message);
        File.WriteAllText(path, original.Replace("\"step\": 3", "\"step\": 2", StringComparison.Ordinal));
        Assert.Contains("says step 2, but its folder is step-000000003", Assert.Throws<BioForgeException>(resume).Message);
        File.WriteAllText(path, original);

        // The optimizer's own update count (AdamW's bias correction) is checked too: t = −2 stepped against the gradient.
        string optimizerPath = Path.Combine(output, "checkpoints", "step-000000003", CheckpointFiles.OptimizerFile), saved = optimizerPath + ".saved";
        File.Copy(optimizerPath, saved);
        using (var file = SafetensorsFile.Open(saved))
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            SafetensorsWriter.Write(optimizerPath, [.. file.Entries.Select(e => new KeyValuePair<string, TorchSharp.torch.Tensor>(e.Name, file.ToTensor(e.Name)))],
                new Dictionary<string, string> { ["step"] = "-3" });
        }
        Assert.Contains("optimizer step '-3' is not a count of updates", Assert.Throws<BioForgeException>(resume).Message);
        File.Move(saved, optimizerPath, overwrite: true);
        Assert.Equal(4, resume().Step);
    }

    [Fact]
    public void ARunDirectoryWithCheckpointsIsNotOverwrittenWithoutResume()
    {
        string output = TestData.TempDirectory();
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 3)), new TrainerOptions());
        var again = () => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 3)), new TrainerOptions());
        Assert.Contains("--resume", Assert.Throws<BioForgeException>(again).Message);
        var nothing = () => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, TestData.TempDirectory(), 3)), new TrainerOptions { Resume = true });
        Assert.Contains("no complete checkpoint", Assert.Throws<BioForgeException>(nothing).Message);

        // A run that failed before its first checkpoint keeps its log to read; neither a new run nor --resume can use the
        // folder, and both say to remove it (they used to send the user from one to the other).
        string stopped = TestData.TempDirectory();
        File.Copy(Path.Combine(output, RunDirectory.ConfigFile), Path.Combine(stopped, RunDirectory.ConfigFile));
        File.WriteAllText(Path.Combine(stopped, RunDirectory.MetricsFile), "{\"step\": 1, \"loss\": 3.2}\n");
        var fresh = () => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, stopped, 3)), new TrainerOptions());
        var resumed = () => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, stopped, 3)), new TrainerOptions { Resume = true });
        Assert.Contains("stopped before its first checkpoint, so there is nothing to resume", Assert.Throws<BioForgeException>(fresh).Message);
        Assert.Contains($"nothing to resume: remove {stopped}", Assert.Throws<BioForgeException>(resumed).Message);
        Assert.True(File.Exists(Path.Combine(stopped, RunDirectory.MetricsFile)));
        // Results beside them (a finished fine-tuning run keeps a run_config.json and no checkpoint): not called a stopped run.
        File.WriteAllText(Path.Combine(stopped, "finetune.json"), "{}");
        var finished = Assert.Throws<BioForgeException>(fresh).Message;
        Assert.Contains("is not empty; remove it or choose another directory", finished);
        Assert.DoesNotContain("stopped before", finished);
    }

    [Fact]
    public void SmilesRandomizationRewritesMoleculesIntoEquivalentSmiles()
    {
        var vocabulary = Tokenizers.SmilesVocabulary.Load(Path.Combine(TinyRuns.Smiles, Tokenizers.SmilesVocabulary.FileName));
        var config = new LlamaConfig { VocabSize = vocabulary.Count, HiddenSize = 16, IntermediateSize = 32, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 2, HeadDim = 8 };
        using var task = new CausalLanguageModelTask(LlamaCheckpoint.Random(config, vocabulary, TestData.Cpu.Device, TestData.Cpu.DType, 1), randomizeSmiles: true);
        int changed = 0;
        foreach (string smiles in File.ReadLines(TestData.Path("train", "zinc2k.smi")).Take(50))
        {
            var sequence = new TokenSequence(7, vocabulary.Encode(smiles));
            Assert.Equal(sequence.Tokens[..^1], task.Example(sequence, 1, 0, augment: false).Inputs);
            var first = task.Example(sequence, 1, 0, augment: true);
            var again = task.Example(sequence, 1, 0, augment: true);
            var later = task.Example(sequence, 1, 1, augment: true);
            Assert.Equal(first.Inputs, again.Inputs);
            string randomized = vocabulary.Decode([.. first.Inputs.Select(t => (long)t), Tokenizers.SmilesVocabulary.EosId])!;
            using var original = Chem.Molecule.FromSmiles(smiles);
            using var rewritten = Chem.Molecule.FromSmiles(randomized);
            Assert.Equal(original.ToSmiles(), rewritten.ToSmiles());
            if (!first.Inputs.SequenceEqual(later.Inputs)) changed++;
        }
        Assert.True(changed > 30, $"only {changed} of 50 molecules were written differently in the next epoch");
        // A document cut to data.max_length (no <eos>) is a fragment: rewritten, it would be taught to end there.
        var cut = new TokenSequence(8, vocabulary.Encode("CCOc1ccccc1C(=O)NCC")[..^1]);
        Assert.Equal(cut.Tokens[..^1], task.Example(cut, 1, 0, augment: true).Inputs);
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, TestData.TempDirectory(), 2), "data.randomize_smiles=true"), new TrainerOptions());
    }

    [Fact]
    public void RandomInitialisationIsAFunctionOfTheSeed()
    {
        var config = new LlamaConfig { VocabSize = 40, HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, HeadDim = 8 };
        using var a = LlamaCheckpoint.Random(config, null, TestData.Cpu.Device, TestData.Cpu.DType, seed: 3);
        using var b = LlamaCheckpoint.Random(config, null, TestData.Cpu.Device, TestData.Cpu.DType, seed: 3);
        using var c = LlamaCheckpoint.Random(config, null, TestData.Cpu.Device, TestData.Cpu.DType, seed: 4);
        var same = b.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var other = c.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in a.Model.named_parameters())
        {
            Assert.True(p.eq(same[name]).all().item<bool>(), $"{name} differs for the same seed");
            if (p.dim() == 2) Assert.False(p.eq(other[name]).all().item<bool>(), $"{name} equal for different seeds");
        }
    }

    [Fact]
    public void AnEsmRunOnASmilesCorpusIsRefused()
    {
        var wrong = () => Trainer.Run(TinyRuns.Config(TinyRuns.EsmYaml(TinyRuns.Smiles, TestData.TempDirectory(), 2)), new TrainerOptions());
        Assert.Contains("vocab.txt", Assert.Throws<BioForgeException>(wrong).Message);
    }
}
