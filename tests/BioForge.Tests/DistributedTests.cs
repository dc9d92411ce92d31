using System.Diagnostics;
using System.Runtime.InteropServices;
using BioForge.Distributed;
using BioForge.Proteins;
using BioForge.Training;
using static TorchSharp.torch;

namespace BioForge.Tests;

public sealed class LaunchTests
{
    [Fact]
    public void RankAndSizeComeFromTheLauncher()
    {
        var mpirun = new Dictionary<string, string> { ["OMPI_COMM_WORLD_RANK"] = "3", ["OMPI_COMM_WORLD_SIZE"] = "4", ["OMPI_COMM_WORLD_LOCAL_RANK"] = "1" };
        Assert.Equal(new Launch(3, 4, 1, "mpirun"), Launch.FromEnvironment(mpirun.GetValueOrDefault));
        var slurm = new Dictionary<string, string> { ["SLURM_PROCID"] = "0", ["SLURM_NTASKS"] = "8", ["SLURM_STEP_NUM_TASKS"] = "8", ["SLURM_LOCALID"] = "0" };
        Assert.Equal(new Launch(0, 8, 0, "srun"), Launch.FromEnvironment(slurm.GetValueOrDefault));
        // The batch script of an 8-task allocation (sbatch) runs once, outside any job step: a world of one.
        var batch = new Dictionary<string, string> { ["SLURM_PROCID"] = "0", ["SLURM_NTASKS"] = "8", ["SLURM_LOCALID"] = "0" };
        Assert.Equal(new Launch(0, 1, 0, "none"), Launch.FromEnvironment(batch.GetValueOrDefault));
        Assert.Equal(new Launch(0, 1, 0, "none"), Launch.FromEnvironment(_ => null));
        var broken = new Dictionary<string, string> { ["OMPI_COMM_WORLD_RANK"] = "4", ["OMPI_COMM_WORLD_SIZE"] = "4" };
        Assert.Contains("outside OMPI_COMM_WORLD_SIZE=4", Assert.Throws<BioForgeException>(() => Launch.FromEnvironment(broken.GetValueOrDefault)).Message);
    }

    /// <summary>
    /// "cuda" under a launcher is the local rank's GPU; a numbered GPU stays where a rank sees one (one GPU per task) or
    /// runs alone on its machine, and is refused where a machine's second rank sees several: every rank there would take the same one.
    /// </summary>
    [Fact]
    public void EachRankTakesItsLocalGpuAndASharedNumberedGpuIsRefused()
    {
        var second = new Launch(3, 4, 1, "mpirun");
        Assert.Equal("cuda:1", ParallelGrid.LocalDevice(new Device("cuda"), second, visibleGpus: 2).ToString());
        Assert.Equal("cuda:0", ParallelGrid.LocalDevice(new Device("cuda:0"), second, visibleGpus: 1).ToString());
        Assert.Equal("cuda:0", ParallelGrid.LocalDevice(new Device("cuda:0"), new Launch(0, 1, 0, "none"), visibleGpus: 8).ToString());
        Assert.Equal("cuda:3", ParallelGrid.LocalDevice(new Device("cuda:3"), new Launch(2, 4, 0, "srun"), visibleGpus: 8).ToString()); // one rank a machine
        Assert.Equal("cpu", ParallelGrid.LocalDevice(new Device("cpu"), second, visibleGpus: 2).ToString());
        var error = Assert.Throws<BioForgeException>(() => ParallelGrid.LocalDevice(new Device("cuda:0"), second, visibleGpus: 2));
        Assert.Contains("device cuda:0 in a distributed run puts every rank of a machine on GPU 0 (rank 3 is local rank 1 of its machine and sees 2 GPUs): give 'cuda'", error.Message);
    }

    [Fact]
    public void ATensorParallelSplitThatDoesNotDivideIsRefusedWithTheNumbers()
    {
        _ = TestData.Cpu;
        using var pair = new ShapeOnlyGroup(2);
        var e = Assert.Throws<BioForgeException>(() => new ColumnParallelLinear(8, 15, hasBias: false, pair));
        Assert.Equal("tensor parallelism: output features (15) is not divisible by the tensor-parallel size (2)", e.Message);
    }

    [Fact]
    public void AWorldOfOneLeavesTensorsAsTheyAre()
    {
        _ = TestData.Cpu;
        using var world = new SingleProcessCommunicator();
        using var t = arange(6, ScalarType.Float32);
        world.AllReduce(t, ReduceOp.Average);
        world.Broadcast(t);
        using var gathered = world.AllGather(t);
        using var scattered = world.ReduceScatter(t);
        Assert.True(t.eq(arange(6, ScalarType.Float32)).all().item<bool>());
        Assert.True(gathered.eq(t).all().item<bool>() && scattered.eq(t).all().item<bool>());
    }
}

/// <summary>Collectives across real processes: <c>mpirun</c> (Open MPI, installed by scripts/setup.sh) runs the CLI.</summary>
[Collection(nameof(TrainerTests))]
public sealed class MpiTests
{
    internal static (int Code, string Out, string Err) MpiRun(int ranks, IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var start = new ProcessStartInfo("mpirun") { RedirectStandardOutput = true, RedirectStandardError = true };
        if (Environment.UserName == "root") start.ArgumentList.Add("--allow-run-as-root");
        foreach (string a in new[] { "--oversubscribe", "-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture) }) start.ArgumentList.Add(a);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.ArgumentList.Add("-x");
            start.ArgumentList.Add($"{key}={value}");
        }
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "BioForge.Cli"));
        foreach (string a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"mpirun {string.Join(' ', args)} did not finish in 3 minutes");
        }
        return (process.ExitCode, output.Result, error.Result);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void EveryCollectiveAgreesAcrossRanks(int ranks)
    {
        // --model adds the shipped SMILES decoder split across the ranks: logits and every gradient against the whole model.
        var (code, output, error) = MpiRun(ranks, null, "dist", "check", "--model", Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small"));
        Assert.True(code == 0, error);
        Assert.Contains($"collectives ok: {ranks} rank(s), backend mpi, launcher mpirun", output);
        Assert.Contains($"tensor-parallel model ok: {Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small")} split over {ranks} rank(s)", output);
    }

    [Theory]
    [InlineData(false, "rank 1 is alive but has not reached this collective")]
    [InlineData(true, "rank 1 does not answer")]
    public void AStuckOrFrozenRankIsNamedAndEndsTheJobWithinTheTimeout(bool freeze, string diagnosis)
    {
        // The stalled rank would sleep 10 minutes: only the watchdog's abort ends the job before MpiRun's 3-minute guard.
        var (code, _, error) = MpiRun(2, new Dictionary<string, string> { ["BIOFORGE_COLLECTIVE_TIMEOUT"] = "4" },
            ["dist", "check", "--stall-rank", "1", "--stall-seconds", "600", .. (freeze ? new[] { "--freeze" } : [])]);
        Assert.NotEqual(0, code);
        Assert.Contains($"rank 0 of 2: all-reduce did not complete within 4 s: {diagnosis}", error);
    }

    /// <summary>
    /// A data × tensor-parallel grid's collectives run in groups split from the world: a rank that holds one up is named
    /// there too, by its world rank (the groups' watchdogs said only "another rank has died or is stuck").
    /// </summary>
    [Fact]
    public void ARankHoldingUpAGroupsCollectiveIsNamedByItsWorldRank()
    {
        var (code, _, error) = MpiRun(2, new Dictionary<string, string> { ["BIOFORGE_COLLECTIVE_TIMEOUT"] = "4" },
            ["dist", "check", "--stall-rank", "1", "--stall-seconds", "600", "--stall-in-group"]);
        Assert.NotEqual(0, code);
        Assert.Contains("world rank 0 (rank 1 of 2 in its group): all-reduce did not complete within 4 s: world rank 1 is alive but has not reached this collective (it entered 0 of 1)", error);
    }

    [Fact]
    public void ASingleProcessCommandUnderMpirunIsRefused()
    {
        var (code, _, error) = MpiRun(2, null, "finetune", "--config", "x.yaml");
        Assert.NotEqual(0, code);
        Assert.Contains("error: 'finetune' runs on one process; launched as rank", error);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void TheProteinModelSplitAcrossRanksMatchesTheWholeModel(int ranks)
    {
        var (code, output, error) = MpiRun(ranks, null, "dist", "check", "--model", Path.Combine(AppContext.BaseDirectory, "models", "esm2-small"));
        Assert.True(code == 0, error);
        Assert.Contains($"collectives ok: {ranks} rank(s)", output);
    }

    [Fact]
    public void AModelThatThreeRanksCannotSplitIsRefusedWithTheNumbers()
    {
        var (code, _, error) = MpiRun(3, null, "dist", "check", "--model", Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small"));
        Assert.NotEqual(0, code);
        Assert.Contains("tensor parallelism: num_attention_heads (8) is not divisible by the tensor-parallel size (3)", error);
    }

    [Fact]
    public void AllReduceBandwidthIsReportedAsJson()
    {
        var (code, output, error) = MpiRun(2, null, "dist", "bench", "--sizes", "4K,1M", "--repeats", "3", "--warmup", "1");
        Assert.True(code == 0, error);
        var lines = output.Split('\n').Where(l => l.Contains("\"benchmark\":\"allreduce\"", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, lines.Count);
        Assert.Contains("\"ranks\":2", lines[1]);
        Assert.Contains("\"bytes\":1048576", lines[1]);
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("esm")] // with dropout: masks are seeded per micro-batch, whichever rank computes it
    public void DataParallelTrainingEqualsOneProcessWithTheSameGlobalBatch(string kind)
    {
        string single = TestData.TempDirectory(), parallel = TestData.TempDirectory();
        string Yaml(string output) => kind == "llama" ? TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 4) : TinyRuns.EsmYaml(TinyRuns.Proteins, output, 4);
        Trainer.Run(TinyRuns.Config(Yaml(single), "train.accumulation=2"), new TrainerOptions());
        string config = Path.Combine(TestData.TempDirectory(), "dp.yaml");
        File.WriteAllText(config, Yaml(parallel));
        var (code, output, error) = MpiRun(2, null, "train", "--config", config, "train.accumulation=1", "train.threads=1");
        Assert.True(code == 0, error);
        Assert.Contains("trained 4 steps", output);
        AssertClose(single, parallel);
    }

    [Theory]
    [InlineData("fp32")]
    [InlineData("bf16-mixed")]
    public void ZeroStageOneEqualsPlainAdamWAndHalvesTheOptimizerState(string precision)
    {
        string single = TestData.TempDirectory(), sharded = TestData.TempDirectory();
        string? info = null;
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, single, 6), "train.accumulation=2", $"train.precision={precision}"), new TrainerOptions { OnInfo = m => info = m });
        string config = Path.Combine(TestData.TempDirectory(), "zero.yaml");
        File.WriteAllText(config, TinyRuns.LlamaYaml(TinyRuns.Smiles, sharded, 6));
        var (code, output, error) = MpiRun(2, null, "train", "--config", config, "train.zero_stage=1", $"train.precision={precision}", "train.threads=1");
        Assert.True(code == 0, error);
        Assert.Contains("ZeRO-1", output);
        static long Bytes(string text) => long.Parse(System.Text.RegularExpressions.Regex.Match(text, @"optimizer state (\d+) bytes per rank").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        long whole = Bytes(info!), shard = Bytes(output);
        Assert.True(shard <= whole / 2 + 64, $"ZeRO-1 keeps {shard} bytes per rank, plain AdamW {whole}"); // + padding to an even split
        AssertClose(single, sharded, precision == "fp32" ? 1e-5 : 1e-2);
        // Its checkpoint holds whole optimizer tensors: one process resumes it.
        var resumed = TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, sharded, 8), "train.accumulation=2", $"train.precision={precision}");
        Assert.Equal(8, Trainer.Run(resumed, new TrainerOptions { Resume = true }).Step);
    }

    [Theory]
    [InlineData("llama", false)]
    [InlineData("llama", true)] // the embedding, tied output projection and cross-entropy split by vocabulary rows too
    [InlineData("esm", false)] // hidden dropout (replicated across the group) stays on; attention dropout would draw per head shard
    public void TensorParallelTrainingEqualsOneProcessAndItsCheckpointsCrossOver(string kind, bool vocabParallel)
    {
        string Yaml(string output, long steps) => kind == "llama"
            ? TinyRuns.LlamaYaml(TinyRuns.Smiles, output, steps)
            : TinyRuns.EsmYaml(TinyRuns.Proteins, output, steps).Replace("attention_probs_dropout_prob: 0.1", "attention_probs_dropout_prob: 0.0", StringComparison.Ordinal);
        string single = TestData.TempDirectory(), parallel = TestData.TempDirectory(), crossed = TestData.TempDirectory();
        Trainer.Run(TinyRuns.Config(Yaml(single, 4)), new TrainerOptions());
        string config = Path.Combine(TestData.TempDirectory(), "tp.yaml");
        File.WriteAllText(config, Yaml(parallel, 4));
        var (code, output, error) = MpiRun(2, null, "train", "--config", config, "--tp", "2", $"train.vocab_parallel={(vocabParallel ? "true" : "false")}", "train.threads=1");
        Assert.True(code == 0, error);
        Assert.Contains("1 data-parallel × 2 tensor-parallel", output);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(output, "trained 4 steps"));
        AssertClose(single, parallel); // the model directory is the ordinary unsharded Hugging Face layout

        // A checkpoint written by one process resumes split across two, and the result is the same again.
        Trainer.Run(TinyRuns.Config(Yaml(crossed, 4)), new TrainerOptions { StopAt = 2 });
        File.WriteAllText(config, Yaml(crossed, 4));
        (code, _, error) = MpiRun(2, null, "train", "--config", config, "--tp", "2", "--resume", $"train.vocab_parallel={(vocabParallel ? "true" : "false")}", "train.threads=1");
        Assert.True(code == 0, error);
        AssertClose(single, crossed);
    }

    [Fact]
    public void DataTimesTensorParallelTwoByTwoEqualsOneProcessAndResumesOnOne()
    {
        string single = TestData.TempDirectory(), grid = TestData.TempDirectory();
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, single, 6), "train.accumulation=2"), new TrainerOptions());
        string config = Path.Combine(TestData.TempDirectory(), "grid.yaml");
        File.WriteAllText(config, TinyRuns.LlamaYaml(TinyRuns.Smiles, grid, 6));
        var (code, output, error) = MpiRun(4, null, "train", "--config", config, "--tp", "2", "--stop-at", "4", "train.zero_stage=1", "train.threads=1");
        Assert.True(code == 0, error);
        Assert.Contains("2 data-parallel × 2 tensor-parallel rank(s), ZeRO-1", output);
        // Its checkpoint (whole weights, whole per-parameter optimizer state) finishes on one process.
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, grid, 6), "train.accumulation=2"), new TrainerOptions { Resume = true });
        AssertClose(single, grid);
    }

    [Theory]
    [InlineData(4, "train.vocab_parallel=false", "num_key_value_heads (2) is not divisible by the tensor-parallel size (4)")]
    [InlineData(2, "model.config.intermediate_size=65", "output features (65) is not divisible by the tensor-parallel size (2)")]
    [InlineData(3, "train.vocab_parallel=false", "the world of 3 rank(s) does not divide into tensor-parallel groups of 2")]
    public void ATensorParallelConfigurationThatDoesNotSplitIsRefusedBeforeTraining(int ranks, string setting, string message)
    {
        string output = TestData.TempDirectory();
        string config = Path.Combine(TestData.TempDirectory(), "tp.yaml");
        File.WriteAllText(config, TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 4));
        int tp = ranks == 4 ? 4 : 2;
        var (code, _, error) = MpiRun(ranks, null, "train", "--config", config, "--tp", tp.ToString(System.Globalization.CultureInfo.InvariantCulture), setting, "train.threads=1");
        Assert.NotEqual(0, code);
        Assert.Contains(message, error);
        Assert.Empty(Directory.EnumerateFileSystemEntries(output)); // nothing is written before the refusal
    }

    [Fact]
    public void AttentionDropoutOnHeadShardsIsRefused()
    {
        string output = TestData.TempDirectory();
        string config = Path.Combine(TestData.TempDirectory(), "tp.yaml");
        File.WriteAllText(config, TinyRuns.EsmYaml(TinyRuns.Proteins, output, 4));
        var (code, _, error) = MpiRun(2, null, "train", "--config", config, "--tp", "2", "train.threads=1");
        Assert.NotEqual(0, code);
        Assert.Contains("attention_probs_dropout_prob 0.1 with train.tensor_parallel 2", error);
        Assert.Empty(Directory.EnumerateFileSystemEntries(output)); // nothing is written before the refusal
    }

    [Fact]
    public void RanksWaitForTheFirstReplicasValidationAndWritesPastTheCollectiveTimeout()
    {
        // Nine tenths of the corpus held out and every batch of it validated by a 6-layer model: several times the
        // 4 s timeout on rank 0 alone, while rank 1 waits (it used to wait in a timed barrier, and the job was aborted).
        string corpus = Path.Combine(TestData.TempDirectory(), "corpus"), output = Path.Combine(TestData.TempDirectory(), "run");
        DataPreparation.Prepare(TestData.Path("train/zinc2k.smi"), CorpusKind.Smiles, corpus, validationFraction: 0.9, seed: 0);
        string config = Path.Combine(TestData.TempDirectory(), "long-validation.yaml");
        File.WriteAllText(config, TinyRuns.LlamaYaml(corpus, output, 2));
        var (code, _, error) = MpiRun(2, new Dictionary<string, string> { ["BIOFORGE_COLLECTIVE_TIMEOUT"] = "4" }, "train", "--config", config,
            "model.config.hidden_size=256", "model.config.intermediate_size=512", "model.config.num_hidden_layers=6", "validation.max_batches=0", "train.threads=1");
        Assert.True(code == 0, error);
        Assert.Contains("\"validation_tokens\":", File.ReadAllText(Path.Combine(output, "metrics.jsonl")));
        Assert.True(File.Exists(Path.Combine(output, "model", "model.safetensors")));
    }

    [Fact]
    public void ACheckpointFromTwoRanksResumesOnOne()
    {
        string single = TestData.TempDirectory(), mixed = TestData.TempDirectory();
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, single, 6), "train.accumulation=2"), new TrainerOptions());
        string config = Path.Combine(TestData.TempDirectory(), "dp.yaml");
        File.WriteAllText(config, TinyRuns.LlamaYaml(TinyRuns.Smiles, mixed, 6));
        var (code, _, error) = MpiRun(2, null, "train", "--config", config, "--stop-at", "3", "train.threads=1");
        Assert.True(code == 0, error);
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, mixed, 6), "train.accumulation=2"), new TrainerOptions { Resume = true });
        AssertClose(single, mixed);
    }

    [Theory]
    [InlineData("csv", "none")]
    [InlineData("safetensors", "mean")]
    [InlineData("npy", "cls")]
    public void EmbeddingUnderMpirunWritesOneFilePerRankAndTheMergedOne(string format, string pool)
    {
        string directory = TestData.TempDirectory(), fasta = TestData.Path("train", "cath200.fasta");
        string model = Path.Combine(AppContext.BaseDirectory, "models", "esm2-small");
        string single = Path.Combine(directory, $"single.{format}"), merged = Path.Combine(directory, $"merged.{format}");
        var output = new StringWriter();
        var error = new StringWriter();
        Assert.Equal(0, BioForge.Cli.Cli.Run(["embed", "--model", model, "--in", fasta, "--out", single, "--pool", pool, "--device", "cpu"], output, error));
        var (code, text, stderr) = MpiRun(2, null, "embed", "--model", model, "--in", fasta, "--out", merged, "--pool", pool, "--device", "cpu", "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("2 ranks", text);
        Assert.True(File.Exists(Path.Combine(directory, $"merged.rank0.{format}")) && File.Exists(Path.Combine(directory, $"merged.rank1.{format}")));
        var pooling = Enum.Parse<Pooling>(pool, ignoreCase: true);
        var expected = EmbeddingReaders.Read(single, pooling).ToList();
        var actual = EmbeddingReaders.Read(merged, pooling).ToList();
        Assert.Equal(200, expected.Count);
        Assert.Equal(expected.Select(e => (e.Record.Id, e.Rows)), actual.Select(e => (e.Record.Id, e.Rows)));
        // Other batch compositions change the last bits of a matrix product, not more.
        double worst = expected.Zip(actual).Max(p => p.First.Values.Zip(p.Second.Values).Max(v => Math.Abs(v.First - v.Second)));
        Assert.True(worst < 1e-4, $"largest difference {worst}");
    }

    /// <summary>One sequence on two ranks: rank 0's share is empty, and its empty CSV part still merges.</summary>
    [Fact]
    public void AnEmptyRankShareMergesIntoTheCsv()
    {
        string directory = TestData.TempDirectory(), fasta = Path.Combine(directory, "one.fasta"), merged = Path.Combine(directory, "merged.csv");
        File.WriteAllText(fasta, ">only\nMKTAYIAKQRQISFVKSHFSRQ\n");
        string model = Path.Combine(AppContext.BaseDirectory, "models", "esm2-small");
        var (code, _, stderr) = MpiRun(2, null, "embed", "--model", model, "--in", fasta, "--out", merged, "--pool", "mean", "--device", "cpu", "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Equal(["only"], EmbeddingReaders.Read(merged, Pooling.Mean).Select(e => e.Record.Id));
    }

    /// <summary>Several layers under mpirun: every rank passes every file's barrier (rank 1 once left after the first, and rank 0 waited for ever).</summary>
    [Fact]
    public void SeveralLayersUnderMpirunMergeEveryFile()
    {
        string directory = TestData.TempDirectory(), fasta = Path.Combine(directory, "three.fasta"), merged = Path.Combine(directory, "e.csv");
        File.WriteAllText(fasta, ">a\nMKTAYIAKQR\n>b\nGSHMLEDPV\n>c\nMALWMRLLPL\n");
        string model = Path.Combine(AppContext.BaseDirectory, "models", "esm2-small");
        var (code, _, stderr) = MpiRun(2, null, "embed", "--model", model, "--in", fasta, "--out", merged, "--layer", "1", "--layer", "-1", "--device", "cpu", "--threads", "1");
        Assert.True(code == 0, stderr);
        foreach (string name in new[] { "e.layer1.csv", "e.layer4.csv" })
            Assert.Equal(["a", "b", "c"], EmbeddingReaders.Read(Path.Combine(directory, name), Pooling.Mean).Select(e => e.Record.Id));
    }

    [Fact]
    public void ChemPropsUnderMpirunMergesToTheSingleProcessTable()
    {
        string directory = TestData.TempDirectory(), input = Path.Combine(directory, "in.smi");
        File.WriteAllLines(input, File.ReadLines(TestData.Path("train", "zinc2k.smi")).Take(60).Append("not_a_smiles"));
        string single = Path.Combine(directory, "single.csv"), merged = Path.Combine(directory, "merged.csv");
        Assert.Equal(0, BioForge.Cli.Cli.Run(["chem", "props", "--in", input, "--out", single], new StringWriter(), new StringWriter()));
        var (code, text, stderr) = MpiRun(2, null, "chem", "props", "--in", input, "--out", merged, "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("61 molecules on 2 ranks", text);
        Assert.Equal(File.ReadAllBytes(single), File.ReadAllBytes(merged));
        Assert.Equal(1 + 31, File.ReadAllLines(Path.Combine(directory, "merged.rank1.csv")).Length); // header + rows 31..61 of the 30/31 split
    }

    [Fact]
    public void KillingOneRankEndsTheJobAndTheRunResumesOnOneProcess()
    {
        string output = TestData.TempDirectory();
        string config = Path.Combine(TestData.TempDirectory(), "long.yaml");
        File.WriteAllText(config, TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 100_000));
        var start = new ProcessStartInfo("mpirun") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in (Environment.UserName == "root" ? new[] { "--allow-run-as-root" } : []).Concat(["--oversubscribe", "-np", "2",
            Path.Combine(AppContext.BaseDirectory, "BioForge.Cli"), "train", "--config", config, "train.threads=1"]))
            start.ArgumentList.Add(a);
        using var job = Process.Start(start)!;
        var error = new System.Text.StringBuilder();
        job.ErrorDataReceived += (_, e) => { lock (error) error.Append(e.Data).Append(' '); };
        job.OutputDataReceived += (_, _) => { };
        job.BeginErrorReadLine();
        job.BeginOutputReadLine();
        var store = RunDirectory.Existing(output);
        var clock = Stopwatch.StartNew();
        while (store.LatestCheckpoint(TrainerState.FileName) is null && clock.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(100);
        Assert.NotNull(store.LatestCheckpoint(TrainerState.FileName));
        int victim = RankProcess(job.Id, 1);
        Process.GetProcessById(victim).Kill();
        Assert.True(job.WaitForExit(TimeSpan.FromMinutes(3)), "mpirun kept running after a rank was killed"); // a hang guard, not a speed check
        Assert.NotEqual(0, job.ExitCode);
        job.WaitForExit(); // drains the redirected streams
        lock (error) Assert.Matches("rank 1 .*(signal 9|Killed)", error.ToString());

        // One process continues from the last complete checkpoint.
        long resumedFrom = TrainerState.Read(store.LatestCheckpoint(TrainerState.FileName)!).Step;
        var resumed = Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 100_000), "train.accumulation=2"),
            new TrainerOptions { Resume = true, StopAt = resumedFrom + 2 });
        Assert.Equal(resumedFrom + 2, resumed.Step);
    }

    /// <summary>
    /// SIGTERM to the ranks (as a scheduler sends it to every task) stops them all after the same step with a checkpoint,
    /// and the job ends like one process does: no MPI_Abort, and no terminal escape in the redirected output. (A signal to
    /// mpirun itself reaches the ranks only after Open MPI's odls_base_sigkill_timeout, while mpirun relays no output: a
    /// rank that logs fast then blocks and is killed, so that path is not the one tested.)
    /// </summary>
    [Fact]
    public void SigtermStopsEveryRankWithACheckpointAndNoAbort()
    {
        string output = TestData.TempDirectory();
        string config = Path.Combine(TestData.TempDirectory(), "long.yaml");
        File.WriteAllText(config, TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 100_000).Replace("every: 3\n", "every: 1000\n"));
        var start = new ProcessStartInfo("mpirun");
        foreach (string a in (Environment.UserName == "root" ? new[] { "--allow-run-as-root" } : []).Concat(["--oversubscribe",
            "-np", "2", Path.Combine(AppContext.BaseDirectory, "BioForge.Cli"), "train", "--config", config, "train.threads=1"]))
            start.ArgumentList.Add(a);
        using var job = LoggedProcess.Start(start, "step 4/");
        job.WaitForLine(TimeSpan.FromMinutes(2));
        foreach (int rank in new[] { 0, 1 }) job.Terminate(RankProcess(job.Process.Id, rank));
        Assert.True(job.WaitForExit(TimeSpan.FromMinutes(2)), "mpirun did not stop after SIGTERM"); // a hang guard, not a speed check
        string log = job.Log;
        Assert.NotEqual(0, job.Process.ExitCode);
        Assert.DoesNotContain("MPI_ABORT", log, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b", log, StringComparison.Ordinal);
        var stopped = System.Text.RegularExpressions.Regex.Match(log, @"stopped at step (\d+); continue with --resume");
        Assert.True(stopped.Success, log);
        long step = long.Parse(stopped.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(step, RunDirectory.Existing(output).Checkpoints(TrainerState.FileName)[^1].Step);
    }

    /// <summary>The process id of the rank (OMPI_COMM_WORLD_RANK) that <paramref name="mpirun"/> started, not another job's.</summary>
    private static int RankProcess(int mpirun, int rank)
    {
        static int? Parent(int pid)
        {
            try
            {
                string stat = File.ReadAllText($"/proc/{pid}/stat"); // "pid (name) state ppid …"; the name may hold spaces
                return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
                return null;
            }
        }
        bool Below(int pid)
        {
            for (int? p = Parent(pid), depth = 0; p is > 1 && depth < 8; p = Parent(p.Value), depth++)
                if (p == mpirun) return true;
            return false;
        }
        foreach (var directory in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out int pid) || pid == Environment.ProcessId) continue;
            try
            {
                var environment = File.ReadAllText(Path.Combine(directory, "environ")).Split('\0');
                string command = File.ReadAllText(Path.Combine(directory, "cmdline"));
                if (command.Contains("BioForge.Cli", StringComparison.Ordinal) && environment.Contains($"OMPI_COMM_WORLD_RANK={rank}") && Below(pid)) return pid;
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        throw new InvalidOperationException($"no process of rank {rank} found");
    }

    private static void AssertClose(string runA, string runB, double tolerance = 1e-5)
    {
        var a = TinyRuns.Weights(Path.Combine(runA, Trainer.ModelDirectory));
        var b = TinyRuns.Weights(Path.Combine(runB, Trainer.ModelDirectory));
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, bytes) in a)
        {
            var x = MemoryMarshal.Cast<byte, float>(bytes);
            var y = MemoryMarshal.Cast<byte, float>(b[name]);
            Assert.True(x.Length == y.Length, $"{name}: {x.Length} values against {y.Length}");
            double worst = 0;
            for (int i = 0; i < x.Length; i++) worst = Math.Max(worst, Math.Abs(x[i] - y[i]));
            Assert.True(worst <= tolerance, $"{name}: largest difference {worst}");
        }
    }
}
