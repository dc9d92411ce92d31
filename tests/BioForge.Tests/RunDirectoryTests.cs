using System.Text.Json.Nodes;
using BioForge.Discovery;
using BioForge.Training;

namespace BioForge.Tests;

/// <summary>The one place runs keep themselves on disk: what a kill at a bad moment leaves, and what a resume may change.</summary>
public sealed class RunDirectoryTests
{
    private const string State = "state.json";

    private static string Save(RunDirectory run, long step, int keep = 2) =>
        run.SaveCheckpoint(step, keep, State, directory =>
        {
            File.WriteAllText(Path.Combine(directory, "weights.bin"), $"weights of {step}");
            File.WriteAllText(Path.Combine(directory, State), "{}");
        });

    /// <summary>
    /// A file's write killed by a signal leaves its hidden temporary file (named by its host and process): the next write
    /// of that file on that host removes it once that process is gone, and leaves a live process's alone.
    /// </summary>
    [Fact]
    public void AnAbandonedTemporaryFileGoesWithTheNextWriteOfItsFile()
    {
        string directory = TestData.TempDirectory(), target = Path.Combine(directory, "emb.csv");
        using var ended = System.Diagnostics.Process.Start("true")!;
        ended.WaitForExit();
        using var alive = System.Diagnostics.Process.Start("sleep", "60")!;
        try
        {
            string host = Environment.MachineName;
            string abandoned = Path.Combine(directory, $".emb.csv.{host}-{ended.Id}.tmp"), writing = Path.Combine(directory, $".emb.csv.{host}-{alive.Id}.tmp");
            // The same process id on another node of a cluster sharing the folder: not this machine's to judge.
            string otherNode = Path.Combine(directory, $".emb.csv.{host}x-{ended.Id}.tmp");
            string older = Path.Combine(directory, $".emb.csv.{ended.Id}.tmp"); // named before hosts were
            foreach (string file in new[] { abandoned, writing, otherNode, older }) File.WriteAllText(file, "half");
            BioForge.IO.AtomicFile.WriteText(target, "whole");
            Assert.Equal("whole", File.ReadAllText(target));
            Assert.False(File.Exists(abandoned), "the killed write's temporary file stayed");
            Assert.False(File.Exists(older), "a killed write's temporary file named by process alone stayed");
            Assert.True(File.Exists(writing), "a running process's temporary file was removed");
            Assert.True(File.Exists(otherNode), "another machine's temporary file was removed");
        }
        finally
        {
            alive.Kill();
        }
    }

    [Fact]
    public void RunsOpenedSideBySideInOneFolderAreAllFoundWritable()
    {
        // bench pmo --parallel opens its runs under one runs/ folder from several threads, and each open first checks
        // that the folder is writable with a probe file opened exclusively; the probes of two threads were once named
        // alike, so one thread's check failed on the other's probe ("being used by another process") and stopped the
        // benchmark. Thousands of checks from 8 threads made that happen every time.
        string parent = TestData.TempDirectory();
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, worker =>
        {
            for (int i = 0; i < 5000; i++)
                if (BioForge.IO.AtomicFile.WhyNotWritable(Path.Combine(parent, "runs", $"task-seed{worker}")) is { } reason) failures.Add(reason);
        });
        Assert.Empty(failures);
        Assert.Empty(Directory.EnumerateFileSystemEntries(parent)); // the check creates nothing
    }

    [Fact]
    public void KilledWritesAndPruningsLeaveNoPartialCheckpointAndAreCleanedOnOpen()
    {
        string path = TestData.TempDirectory();
        var run = RunDirectory.Open(path, "output.dir", isNew: true);
        Save(run, 3);
        Save(run, 6);
        Save(run, 9);
        Assert.Equal([6L, 9], run.Checkpoints(State).Select(c => c.Step));
        Assert.Equal(["step-000000006", "step-000000009"], Directory.EnumerateFileSystemEntries(run.CheckpointsDirectory).Select(Path.GetFileName).Order());

        // What a SIGKILL leaves: a checkpoint half written, and one half deleted while pruning (renamed out of sight first).
        Directory.CreateDirectory(Path.Combine(run.CheckpointsDirectory, ".step-000000012.4242.tmp"));
        File.WriteAllText(Path.Combine(run.CheckpointsDirectory, ".step-000000012.4242.tmp", "weights.bin"), "partial");
        Directory.CreateDirectory(Path.Combine(run.CheckpointsDirectory, ".trash-step-000000006.4242"));
        File.WriteAllText(Path.Combine(run.CheckpointsDirectory, ".trash-step-000000006.4242", "vocab.json"), "{}");
        File.WriteAllText(Path.Combine(path, ".metrics.jsonl.4242.tmp"), "");

        var reopened = RunDirectory.Open(path, "output.dir", isNew: false);
        Assert.Equal(["step-000000006", "step-000000009"], Directory.EnumerateFileSystemEntries(reopened.CheckpointsDirectory).Select(Path.GetFileName).Order());
        Assert.Empty(Directory.EnumerateFileSystemEntries(path, ".*"));
        Assert.EndsWith("step-000000009", reopened.LatestCheckpoint(State));
    }

    [Fact]
    public void RewritingACheckpointOrArtefactSwapsItInWhole()
    {
        string path = TestData.TempDirectory();
        var run = RunDirectory.Open(path, "output.dir", isNew: true);
        // A first checkpoint that fails takes the folder made for it along (an empty checkpoints/ stayed).
        Assert.Throws<IOException>(() => run.SaveCheckpoint(1, 1, State, d => throw new IOException("disk full")));
        Assert.False(Directory.Exists(run.CheckpointsDirectory));
        Save(run, 5, keep: 1);
        string again = run.SaveCheckpoint(5, 1, State, directory =>
        {
            File.WriteAllText(Path.Combine(directory, "weights.bin"), "second");
            File.WriteAllText(Path.Combine(directory, State), "{}");
        });
        Assert.Equal("second", File.ReadAllText(Path.Combine(again, "weights.bin")));

        // A write that fails leaves the previous artefact as it was, and no temporary directory.
        run.Publish("model", d => File.WriteAllText(Path.Combine(d, "a"), "1"));
        Assert.Throws<IOException>(() => run.Publish("model", d => throw new IOException("disk full")));
        Assert.Equal("1", File.ReadAllText(Path.Combine(path, "model", "a")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(path, ".*"));

        // Killed between moving the old version aside and the new one in: opening the run puts the old one back (it was
        // deleted as debris with the unfinished new one, losing the run's only resumable state); with its successor in
        // place, the old one is debris.
        Directory.Move(Path.Combine(path, "model"), Path.Combine(path, ".replaced-model.4242"));
        Directory.CreateDirectory(Path.Combine(path, ".model.4242.tmp"));
        Directory.Move(Path.Combine(run.CheckpointsDirectory, "step-000000005"), Path.Combine(run.CheckpointsDirectory, ".replaced-step-000000005.4242"));
        var reopened = RunDirectory.Open(path, "output.dir", isNew: false);
        Assert.Equal("1", File.ReadAllText(Path.Combine(path, "model", "a")));
        Assert.Equal("second", File.ReadAllText(Path.Combine(reopened.CheckpointsDirectory, "step-000000005", "weights.bin")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(path, ".*"));
        Directory.CreateDirectory(Path.Combine(path, ".replaced-model.4243"));
        RunDirectory.Open(path, "output.dir", isNew: false);
        Assert.Equal("1", File.ReadAllText(Path.Combine(path, "model", "a")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(path, ".*"));
    }

    [Fact]
    public void MetricsOnResumeDropLinesPastTheStepAndALineTornByAKill()
    {
        string path = TestData.TempDirectory();
        var run = RunDirectory.Open(path, "output.dir", isNew: true);
        File.WriteAllText(Path.Combine(path, RunDirectory.MetricsFile), "{\"step\":1,\"loss\":2}\n{\"step\":2,\"loss\":1.5}\n{\"step\":3,\"loss\":1}\n{\"step\":4,\"lo");
        using (var metrics = run.OpenMetrics(resumedStep: 2)) metrics.Write(new JsonObject { ["step"] = 3, ["loss"] = 0.9 });
        Assert.Equal(["{\"step\":1,\"loss\":2}", "{\"step\":2,\"loss\":1.5}", "{\"step\":3,\"loss\":0.9}"], File.ReadAllLines(Path.Combine(path, RunDirectory.MetricsFile)));
    }

    /// <summary>A run written whole at its end (fine-tuning, affinity training) finds an unwritable output before its work.</summary>
    [Fact]
    public void AnUnwritableOutputFolderIsRefusedBeforeTheWork()
    {
        var e = Assert.Throws<BioForgeException>(() => RunDirectory.RequireNew("/proc/bioforge-test/run", "train.output_dir"));
        Assert.StartsWith("train.output_dir /proc/bioforge-test/run: cannot write in /proc", e.Message);
    }

    /// <summary>An undefined metric (NaN: a CI over one affinity value) is null in the log; writing it failed the run after training.</summary>
    [Fact]
    public void MetricsThatAreNotFiniteAreWrittenAsNull()
    {
        string path = TestData.TempDirectory();
        var run = RunDirectory.Open(path, "output.dir", isNew: true);
        using (var metrics = run.OpenMetrics(resumedStep: -1))
            metrics.Write(new JsonObject { ["epoch"] = 1, ["validation_ci"] = double.NaN, ["loss"] = double.PositiveInfinity, ["mse"] = 0.5 });
        Assert.Equal(["{\"epoch\":1,\"validation_ci\":null,\"loss\":null,\"mse\":0.5}"], File.ReadAllLines(Path.Combine(path, RunDirectory.MetricsFile)));
    }

    [Fact]
    public void AResumeThatChangesADefiningSettingListsEveryDifference()
    {
        string path = TestData.TempDirectory();
        var run = RunDirectory.Open(path, "output.dir", isNew: true);
        run.WriteConfig("""{"seed": 1, "model": {"config": {"hidden_size": 64, "num_hidden_layers": 2}}, "train": {"steps": 10}, "stages": [{"max_steps": 5, "name": "a"}]}""");
        var changed = JsonNode.Parse("""{"seed": 2, "model": {"config": {"hidden_size": 128, "num_hidden_layers": 2}}, "train": {"steps": 20}, "stages": [{"max_steps": 9, "name": "b"}]}""")!.AsObject();
        var e = Assert.Throws<BioForgeException>(() => run.RefuseChanges(changed, ["seed", "model", "stages"], mayChange: path => path.EndsWith(".max_steps", StringComparison.Ordinal)));
        Assert.Contains("seed: 1 → 2", e.Message);
        Assert.Contains("model.config.hidden_size: 64 → 128", e.Message);
        Assert.Contains("stages[0].name: \"a\" → \"b\"", e.Message);
        Assert.DoesNotContain("max_steps", e.Message);
        Assert.DoesNotContain("train.steps", e.Message);
        Assert.DoesNotContain("num_hidden_layers", e.Message);
    }

    [Fact]
    public void ASettingAddedSinceTheRunStartedCountsAsItsDefault()
    {
        string path = TestData.TempDirectory();
        var run = RunDirectory.Open(path, "output.dir", isNew: true);
        run.WriteConfig("""{"learning": {"sigma": 128}, "stages": [{"name": "a"}]}""");
        var defaults = JsonNode.Parse("""{"learning": {"sigma": 128, "skip_repeats": false}, "stages": [{"name": "", "patience": 0}]}""")!.AsObject();
        var same = JsonNode.Parse("""{"learning": {"sigma": 128, "skip_repeats": false}, "stages": [{"name": "a", "patience": 0}]}""")!.AsObject();
        run.RefuseChanges(same, ["learning", "stages"], defaults);

        var changed = JsonNode.Parse("""{"learning": {"sigma": 128, "skip_repeats": true}, "stages": [{"name": "a", "patience": 3}]}""")!.AsObject();
        var e = Assert.Throws<BioForgeException>(() => run.RefuseChanges(changed, ["learning", "stages"], defaults));
        Assert.Contains("learning.skip_repeats: false → true", e.Message);
        Assert.Contains("stages[0].patience: 0 → 3", e.Message);
        // Without defaults, a setting the stored run does not name is a difference.
        Assert.Throws<BioForgeException>(() => run.RefuseChanges(same, ["learning"]));
    }

    [Fact]
    public void ANewRunRefusesADirectoryThatHoldsFiles()
    {
        string path = TestData.TempDirectory();
        File.WriteAllText(Path.Combine(path, "notes.txt"), "mine");
        var e = Assert.Throws<BioForgeException>(() => RunDirectory.Open(path, "train.output_dir", isNew: true));
        Assert.Contains("train.output_dir", e.Message);
        Assert.Throws<BioForgeException>(() => RunDirectory.WriteWhole(path, "train.output_dir", _ => { }));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(path, "notes.txt")));
    }
}

[Collection(nameof(TrainerTests))]
public sealed class RunResumeTests
{
    [Fact]
    public void ATrainingRunResumedWithAnotherShapeSeedOrCorpusIsRefusedWithTheDifferences()
    {
        string output = TestData.TempDirectory();
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 6)), new TrainerOptions { StopAt = 3 });
        var resume = new TrainerOptions { Resume = true };
        var shape = Assert.Throws<BioForgeException>(() => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 6), "model.config.hidden_size=64"), resume));
        Assert.Contains("model.config.hidden_size: 32 → 64", shape.Message);
        var seed = Assert.Throws<BioForgeException>(() => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 6), "seed=4"), resume));
        Assert.Contains("seed: 3 → 4", seed.Message);

        string otherCorpus = Path.Combine(TestData.TempDirectory(), "corpus");
        DataPreparation.Prepare(TestData.Path("train", "zinc2k.smi"), CorpusKind.Smiles, otherCorpus, validationFraction: 0.2, seed: 0);
        var corpus = Assert.Throws<BioForgeException>(() => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(otherCorpus, output, 6)), resume));
        Assert.Contains("same corpus", corpus.Message);

        // The stored configuration is the first run's still: the refused resumes did not rewrite it.
        Assert.Contains("\"hidden_size\": 32", File.ReadAllText(Path.Combine(output, RunDirectory.ConfigFile)));
        // Settings that do not define the run may change: a longer schedule continues.
        var longer = Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 6), "train.log_every=1"), resume);
        Assert.Equal(6, longer.Step);
    }

    /// <summary>The network is compared as resolved: a key the first run gave as its default value may be left out.</summary>
    [Fact]
    public void AResumeMayLeaveOutANetworkKeyThatHoldsItsDefaultAndSaysWhatChanged()
    {
        string output = TestData.TempDirectory();
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 6), "model.config.rope_theta=10000"), new TrainerOptions { StopAt = 3 });
        var info = new List<string>();
        var resumed = Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 6), "optimizer.lr=0.002"), new TrainerOptions { Resume = true, OnInfo = info.Add });
        Assert.Equal(6, resumed.Step);
        Assert.Contains(info, line => line.StartsWith("resuming from step 3 (", StringComparison.Ordinal));
        Assert.Contains(info, line => line.StartsWith("settings changed since that run: ", StringComparison.Ordinal) && line.Contains("optimizer.lr: 0.003 → 0.002", StringComparison.Ordinal));
        var other = Assert.Throws<BioForgeException>(() => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 8), "model.config.rope_theta=500"),
            new TrainerOptions { Resume = true }));
        Assert.Contains("model.config.rope_theta: 10000.0 → 500.0", other.Message); // as config.json writes them
    }

    /// <summary>
    /// <c>--resume-from</c> a checkpoint of another run branches into a new directory (the same weights as the run it
    /// branches from, which is left as it was); it never replaces the checkpoints of a run already in train.output_dir.
    /// </summary>
    [Fact]
    public void ResumingFromAnotherRunsCheckpointBranchesAndLeavesBothRunsAsTheyWere()
    {
        string source = TestData.TempDirectory(), branch = Path.Combine(TestData.TempDirectory(), "branch"), victim = TestData.TempDirectory();
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, source, 6)), new TrainerOptions());
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, victim, 6)), new TrainerOptions { StopAt = 5 });
        string early = RunDirectory.Existing(source).Checkpoints(TrainerState.FileName)[0].Path;

        var crossed = Assert.Throws<BioForgeException>(() => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, victim, 6)), new TrainerOptions { ResumeFrom = early }));
        Assert.Contains($"is not a checkpoint of train.output_dir {victim}, which holds a run of its own", crossed.Message);
        Assert.Equal([3L, 5], RunDirectory.Existing(victim).Checkpoints(TrainerState.FileName).Select(c => c.Step));
        var both = Assert.Throws<BioForgeException>(() => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, victim, 6)),
            new TrainerOptions { Resume = true, ResumeFrom = RunDirectory.Existing(victim).Checkpoints(TrainerState.FileName)[0].Path }));
        Assert.Contains("not both", both.Message);

        var info = new List<string>();
        var branched = Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, branch, 6)), new TrainerOptions { ResumeFrom = early, OnInfo = info.Add });
        Assert.Equal(3, branched.StartStep);
        Assert.Contains(info, line => line.StartsWith($"branching from step 3 ({early}) into a new run in {branch}", StringComparison.Ordinal));
        TinyRuns.AssertSameWeights(source, branch);
        Assert.Equal([3L, 6], RunDirectory.Existing(source).Checkpoints(TrainerState.FileName).Select(c => c.Step));
        // The run's own checkpoint named through a symbolic link to its folder is a resume, not a branch.
        string link = Path.Combine(TestData.TempDirectory(), "linked");
        Directory.CreateSymbolicLink(link, victim);
        var throughLink = Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, victim, 6)),
            new TrainerOptions { ResumeFrom = Path.Combine(link, "checkpoints", "step-000000005") });
        Assert.Equal(5, throughLink.StartStep);
        // A branch refused, or failing before its first checkpoint, leaves no folder (the copied history is not its own).
        string refusedBranch = Path.Combine(TestData.TempDirectory(), "refused");
        Assert.Contains("seed", Assert.Throws<BioForgeException>(() => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, refusedBranch, 6), "seed=4"),
            new TrainerOptions { ResumeFrom = early })).Message);
        Assert.False(Directory.Exists(refusedBranch), "a refused branch left its folder");
        string diverged = Path.Combine(TestData.TempDirectory(), "diverged");
        // lr 1e6 without clipping: the loss or the gradients stop being finite, whichever comes first (it depends on the thread count).
        Assert.Matches("the (loss|gradient norm) is", Assert.Throws<BioForgeException>(() => Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, diverged, 6), "optimizer.lr=1e6", "optimizer.grad_clip=0",
            "train.log_every=100", "validation.every=0"),
            new TrainerOptions { ResumeFrom = early })).Message);
        Assert.False(Directory.Exists(diverged), "a branch that failed before logging a step of its own left its folder, which a retry would refuse");
        // The branch's metrics hold the history it shares with its source, then its own steps.
        var steps = File.ReadAllLines(Path.Combine(branch, RunDirectory.MetricsFile))
            .Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!).Where(n => n["loss"] is not null).Select(n => n["step"]!.GetValue<long>());
        Assert.Equal([2L, 4, 6], steps);
    }

    [Fact]
    public void AResumeWithAnotherAccumulationKeepsTheGlobalBatchAndSaysSo()
    {
        string straight = TestData.TempDirectory(), resumed = TestData.TempDirectory();
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, straight, 6), "train.accumulation=2"), new TrainerOptions());
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, resumed, 6), "train.accumulation=2"), new TrainerOptions { StopAt = 3 });
        var info = new List<string>();
        Trainer.Run(TinyRuns.Config(TinyRuns.LlamaYaml(TinyRuns.Smiles, resumed, 6)), new TrainerOptions { Resume = true, OnInfo = info.Add });
        Assert.Contains(info, line => line.Contains("train.accumulation 1 → 2", StringComparison.Ordinal));
        TinyRuns.AssertSameWeights(straight, resumed);
    }

    [Fact]
    public void AnOptimizationKilledMidCheckpointResumesAndAFinishedOneSaysSo()
    {
        _ = TestData.Cpu;
        string output = TestData.TempDirectory();
        var config = OptimizeTests.Config(OptimizeTests.Run(output, 3));
        var options = new OptimizeOptions { Threads = 2 };
        int seen = 0;
        using var cancel = new CancellationTokenSource();
        MoleculeOptimizer.Run(config, options with { Cancellation = cancel.Token, OnStep = _ => { if (++seen == 3) cancel.Cancel(); } });

        // A kill while the next checkpoint was written and a metrics line was half out.
        string checkpoints = Path.Combine(output, RunDirectory.CheckpointsFolder);
        Assert.Single(Directory.EnumerateDirectories(checkpoints, "step-*"));
        Directory.CreateDirectory(Path.Combine(checkpoints, ".step-000000004.4242.tmp", "agent"));
        File.AppendAllText(Path.Combine(output, RunDirectory.MetricsFile), "{\"step\":4,\"mean_sc");

        var resumed = MoleculeOptimizer.Run(config, options with { Resume = true });
        Assert.Equal(5, resumed.Steps);
        var lines = File.ReadAllLines(Path.Combine(output, RunDirectory.MetricsFile)).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal([1L, 2, 3, 4, 5], lines.Select(l => l["step"]!.GetValue<long>()));
        // Time spent before the interruption counts: elapsed never goes back.
        var elapsed = lines.Select(l => l["elapsed_seconds"]!.GetValue<double>()).ToList();
        Assert.Equal(elapsed.Order(), elapsed);

        var info = new List<string>();
        var again = MoleculeOptimizer.Run(config, options with { Resume = true, OnInfo = info.Add });
        Assert.Equal(5, again.Steps);
        Assert.Contains(info, line => line.Contains("is finished at step 5", StringComparison.Ordinal));
        Assert.Equal(resumed.Ranked.Select(m => m.Canonical), again.Ranked.Select(m => m.Canonical));
    }
}
