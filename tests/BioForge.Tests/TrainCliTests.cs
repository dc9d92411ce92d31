using System.Diagnostics;
using BioForge.Chem;
using BioForge.Training;

namespace BioForge.Tests;

/// <summary><c>bioforge train</c> and <c>bioforge generate</c> end to end, and a training process killed mid-checkpoint.</summary>
[Collection(nameof(TrainerTests))]
public sealed class TrainCliTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        _ = TestData.Cpu;
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Cli.Cli.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static string ConfigFile(string yaml)
    {
        string path = Path.Combine(TestData.TempDirectory(), "run.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    private static string DefaultSmilesModel => Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small");

    [Fact]
    public void TrainStopResumeAndGenerateFromTheCommandLine()
    {
        string output = TestData.TempDirectory();
        string config = ConfigFile(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 6));
        var first = Run("train", "--config", config, "--stop-at", "3");
        Assert.Equal(0, first.Code);
        Assert.Contains("stopped at step 3", first.Out);
        Assert.Matches(@"step 2/6  loss \d+\.\d{4}  lr \d\.\d\de[-+]\d\d  ", first.Out); // as docs/training.md shows it (not 1.00E-003)
        var second = Run("train", "--config", config, "--resume");
        Assert.Equal(0, second.Code);
        Assert.Contains("trained 3 steps", second.Out);
        Assert.Contains("validation loss", second.Out);
        var third = Run("train", "--config", config, "--resume");
        Assert.Equal(0, third.Code);
        Assert.Contains("nothing to train: the run had already reached train.steps = 6", third.Out);

        string generated = Path.Combine(TestData.TempDirectory(), "gen.smi");
        var sampled = Run("generate", "--model", Path.Combine(output, Trainer.ModelDirectory), "--n", "20", "--out", generated, "--batch", "8",
            "--max-length", "40", "--seed", "4", "--device", "cpu");
        Assert.Equal(0, sampled.Code);
        Assert.Equal(20, File.ReadAllLines(generated).Length);
        Assert.Contains("20 molecules", sampled.Out);
    }

    /// <summary>A SMILES Llama saved with only the tokenizer.json BioForge writes (no vocab.json) samples as the original.</summary>
    [Fact]
    public void ASmilesModelWithOnlyItsHuggingFaceTokenizerSamplesAsTheOriginal()
    {
        string copy = TestData.TempDirectory();
        foreach (string file in Directory.GetFiles(DefaultSmilesModel).Where(f => Path.GetFileName(f) != "vocab.json"))
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        string dir = TestData.TempDirectory();
        string[] Generate(string model, string name)
        {
            var result = Run("generate", "--model", model, "--n", "8", "--seed", "5", "--out", Path.Combine(dir, name), "--device", "cpu");
            Assert.True(result.Code == 0, result.Err);
            return File.ReadAllLines(Path.Combine(dir, name));
        }
        Assert.Equal(Generate(DefaultSmilesModel, "original.smi"), Generate(copy, "copy.smi"));

        // Another tokenizer (GPT-2's byte-level BPE) is no SMILES vocabulary: named, not guessed.
        File.Copy(Path.Combine(TestData.Path("hf", "gpt2_tiny"), "tokenizer.json"), Path.Combine(copy, "tokenizer.json"), overwrite: true);
        var refused = Run("generate", "--model", copy, "--n", "2", "--out", Path.Combine(dir, "x.smi"), "--device", "cpu");
        Assert.Equal(2, refused.Code);
        Assert.Contains($"--model {copy}: no vocab.json, vocab.txt or BioForge tokenizer.json", refused.Err);
    }

    [Fact]
    public void BenchTrainReportsThroughputAndLeavesNothingBehind()
    {
        string output = TestData.TempDirectory();
        var result = Run("bench", "train", "--config", ConfigFile(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 2)), "--steps", "3", "--warmup", "1");
        Assert.Equal(0, result.Code);
        var report = System.Text.Json.Nodes.JsonNode.Parse(result.Out)!;
        Assert.True(report["tokens_per_s"]!.GetValue<double>() > 0);
        Assert.True(report["parameters"]!.GetValue<long>() > 10_000);
        Assert.Empty(Directory.GetFileSystemEntries(output));
    }

    [Fact]
    public void BadTrainingInputsGiveOneClearLine()
    {
        string output = TestData.TempDirectory();
        string config = ConfigFile(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 2));
        foreach (var (args, expected) in new (string[], string)[]
        {
            (["train", "--config", "/nonexistent.yaml"], "not found"),
            (["train", "--config", config, "train.stepz=3"], "unknown key 'train.stepz'"),
            (["train", "--config", config, "data.dir=/nonexistent"], "/nonexistent"),
            (["train", "--config", config, "--resume"], "no complete checkpoint"),
            (["train", "--config", config, "--resume-from", "/nonexistent"], "no such checkpoint"),
            (["train", "--config", config, "data.max_length=512", "model.config.max_position_embeddings=256"],
                "data.max_length 512 is longer than the network's max_position_embeddings 256"),
            (["generate", "--model", "/nonexistent", "--n", "3", "--out", Path.Combine(output, "g.smi")], "does not exist"),
            (["generate", "--model", TestData.EsmTiny, "--n", "3", "--out", Path.Combine(output, "g.smi")], "model_type"),
            (["generate", "--model", DefaultSmilesModel, "--n", "0", "--out", Path.Combine(output, "g.smi"), "--device", "cpu"], "--n must be positive"),
            (["generate", "--model", DefaultSmilesModel, "--n", "3", "--temperature", "-1", "--out", Path.Combine(output, "g.smi"), "--device", "cpu"], "--temperature must be 0 to 100"),
        })
        {
            var result = Run(args);
            Assert.True(result.Code == 2, $"{string.Join(' ', args)}: exit {result.Code}, {result.Err}");
            Assert.Contains(expected, result.Err);
            Assert.Single(result.Err.TrimEnd().Split('\n'));
        }
        Assert.False(File.Exists(Path.Combine(output, "g.smi")));

        // A run refused at its start leaves no folder where there was none, and --resume does not make one.
        string fresh = Path.Combine(TestData.TempDirectory(), "fresh");
        var refused = Run("train", "--config", config, $"train.output_dir={fresh}", "data.tokens_per_batch=1");
        Assert.Equal(2, refused.Code);
        Assert.False(Directory.Exists(fresh), $"{refused.Err}: the run folder was left behind");
        var resumed = Run("train", "--config", config, $"train.output_dir={fresh}", "--resume");
        Assert.Contains($"train.output_dir {fresh} does not exist; there is no run to continue", resumed.Err);
        Assert.False(Directory.Exists(fresh));
    }

    [Fact]
    public void TheDefaultSmilesModelGeneratesValidCanonicalMoleculesOnRequest()
    {
        string generated = Path.Combine(TestData.TempDirectory(), "gen.smi");
        var result = Run("generate", "--model", DefaultSmilesModel, "--n", "50", "--out", generated, "--valid-only", "--seed", "1", "--device", "cpu", "--threads", "2");
        Assert.Equal(0, result.Code);
        var lines = File.ReadAllLines(generated);
        Assert.Equal(50, lines.Length);
        foreach (string smiles in lines)
        {
            using var molecule = Molecule.FromSmiles(smiles);
            Assert.Equal(smiles, molecule.ToSmiles());
        }
    }

    /// <summary>
    /// SIGTERM — what kill, a batch scheduler's time limit and docker stop send — stops training as cleanly as Ctrl+C:
    /// the step finishes, a checkpoint is written, the process then ends by that SIGTERM (143), and the run resumes from that step.
    /// </summary>
    [Fact]
    public void SigtermStopsTrainingWithACheckpointToResumeFrom()
    {
        string output = TestData.TempDirectory();
        string config = ConfigFile(TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 100_000).Replace("every: 3\n", "every: 1000\n"));
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "BioForge.Cli"));
        foreach (string arg in new[] { "train", "--config", config }) start.ArgumentList.Add(arg);
        using var training = LoggedProcess.Start(start, "step 4/");
        training.WaitForLine(TimeSpan.FromMinutes(2));
        training.Terminate();
        Assert.True(training.WaitForExit(TimeSpan.FromMinutes(1)), "training did not stop after SIGTERM");
        string log = training.Log;
        Assert.Equal(143, training.Process.ExitCode); // ended by the SIGTERM once the checkpoint was written, as the shell convention asks
        Assert.Contains("stopping after this step (a checkpoint will be written); SIGTERM again to abort", log);
        var stopped = System.Text.RegularExpressions.Regex.Match(log, @"stopped at step (\d+); continue with --resume");
        Assert.True(stopped.Success, log);
        long step = long.Parse(stopped.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(step >= 4, log);
        Assert.Equal(step, RunDirectory.Existing(output).Checkpoints(TrainerState.FileName)[^1].Step); // the checkpoint every 1000 steps did not write it

        var resumed = Trainer.Run(RunConfig.Load(config), new TrainerOptions { Resume = true, StopAt = step + 1 });
        Assert.Equal(step + 1, resumed.Step);
    }

    /// <summary>
    /// Starts a real training process that writes a checkpoint every step, SIGKILLs it while a checkpoint is being
    /// written, and checks that every complete checkpoint still loads and the run resumes from the latest one.
    /// </summary>
    [Fact]
    public void ARunKilledWhileWritingACheckpointKeepsThePreviousOneAndResumes()
    {
        string output = TestData.TempDirectory();
        // Wide enough that writing a checkpoint (≈ 40 MB) takes far longer than noticing it started.
        string yaml = TinyRuns.LlamaYaml(TinyRuns.Smiles, output, 1000)
            .Replace("hidden_size: 32", "hidden_size: 256").Replace("intermediate_size: 64", "intermediate_size: 688")
            .Replace("tokens_per_batch: 1024", "tokens_per_batch: 128").Replace("every: 3", "every: 1");
        string config = ConfigFile(yaml);
        string checkpoints = Path.Combine(output, "checkpoints");
        string executable = Path.Combine(AppContext.BaseDirectory, "BioForge.Cli");
        bool killedMidWrite = false;
        for (int attempt = 0; attempt < 5 && !killedMidWrite; attempt++)
        {
            var start = new ProcessStartInfo(executable) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string arg in new[] { "train", "--config", config }.Concat(attempt > 0 ? ["--resume"] : [])) start.ArgumentList.Add(arg);
            using var process = Process.Start(start)!;
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < TimeSpan.FromMinutes(2) && !process.HasExited)
            {
                bool writing = Directory.Exists(checkpoints) && Directory.EnumerateDirectories(checkpoints, ".step-*").Any();
                if (writing && RunDirectory.Existing(Path.GetDirectoryName(checkpoints)!).Checkpoints(TrainerState.FileName).Count > 0)
                {
                    process.Kill(); // SIGKILL on Linux: no handler, no cleanup
                    process.WaitForExit();
                    killedMidWrite = Directory.EnumerateDirectories(checkpoints, ".step-*").Any();
                    break;
                }
                Thread.Sleep(1);
            }
            Assert.True(process.HasExited, "the training process did not reach a checkpoint in time");
            Assert.NotEqual(0, process.ExitCode);
        }
        Assert.True(killedMidWrite, "no kill landed inside a checkpoint write in five attempts");

        var complete = RunDirectory.Existing(Path.GetDirectoryName(checkpoints)!).Checkpoints(TrainerState.FileName);
        Assert.NotEmpty(complete);
        foreach (var (step, path) in complete)
        {
            Assert.Equal(step, TrainerState.Read(path).Step);
            using var model = Models.Llama.LlamaCheckpoint.Load(path, TestData.Cpu.Device, TestData.Cpu.DType);
        }
        long latest = complete[^1].Step;
        var resumed = Trainer.Run(RunConfig.Load(config), new TrainerOptions { Resume = true, StopAt = latest + 1 });
        Assert.Equal(latest + 1, resumed.Step);
        Assert.Empty(Directory.EnumerateDirectories(checkpoints, ".step-*"));
    }
}
