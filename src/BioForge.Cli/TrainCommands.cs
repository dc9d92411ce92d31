using System.CommandLine;
using BioForge.Distributed;
using BioForge.Training;

namespace BioForge.Cli;

/// <summary><c>bioforge train</c>: pre-train a protein or SMILES language model from a YAML run configuration.</summary>
internal static class TrainCommands
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var config = Options.Required("--config", "run configuration (YAML): data, model, optimizer, schedule, precision, checkpoints");
        var overrides = new Argument<string[]>("overrides") { Description = "section.key=value settings that replace the file's (e.g. train.steps=100)", Arity = ArgumentArity.ZeroOrMore };
        var resume = new Option<bool>("--resume") { Description = "continue from the latest checkpoint in train.output_dir" };
        var resumeFrom = new Option<string?>("--resume-from") { Description = "continue from this checkpoint directory" };
        var stopAt = new Option<long?>("--stop-at") { Description = "stop after this step with a checkpoint (the schedule still spans train.steps)" };
        var tensorParallel = new Option<int?>("--tp") { Description = "tensor-parallel size under mpirun/srun: ranks that split every layer (same as train.tensor_parallel=N)" };
        var command = new Command("train", "Pre-train an ESM-2 (masked LM) or a Llama-style SMILES or protein (causal LM) model") { config, overrides, resume, resumeFrom, stopAt, tensorParallel };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            var settings = (result.GetValue(overrides) ?? []).ToList();
            if (result.GetValue(tensorParallel) is int tp) settings.Add(FormattableString.Invariant($"train.tensor_parallel={tp}"));
            var run = RunConfig.Load(result.GetValue(config)!, settings);
            return Cli.Stoppable("stopping after this step (a checkpoint will be written)", cancellation =>
            {
                // The step lines go to standard output; a live copy on the terminal helps only when they go to a file
                // (on a terminal both, the live line unended, would share rows with the next step's line).
                bool live = !Console.IsErrorRedirected && Console.IsOutputRedirected;
                var trained = Trainer.Run(run, new TrainerOptions
                {
                    Resume = result.GetValue(resume),
                    ResumeFrom = result.GetValue(resumeFrom),
                    StopAt = result.GetValue(stopAt),
                    Cancellation = cancellation,
                    OnInfo = ProcessGroup.World.Rank == 0 ? output.WriteLine : null,
                    OnStep = report =>
                    {
                        string line = $"step {report.Step}/{report.TotalSteps}  loss {report.Loss:F4}  lr {report.LearningRate.ToString("0.00e+00", System.Globalization.CultureInfo.InvariantCulture)}  "
                            + $"grad {report.GradNorm:F2}  {report.TokensPerSecond:N0} tok/s  ETA {Format(report.Remaining)}";
                        output.WriteLine(line);
                        if (live) error.Write($"\r{line}\u001b[K");
                    },
                    OnValidation = v => output.WriteLine($"step {v.Step}  validation loss {v.Loss:F4}  perplexity {v.Perplexity:F3}  ({v.Tokens:N0} tokens)"),
                    OnCheckpoint = path => output.WriteLine($"checkpoint -> {path}"),
                });
                if (live) error.WriteLine();
                var report = ProcessGroup.World.Rank == 0 ? output : TextWriter.Null; // one summary per job, not per rank
                if (trained.Interrupted)
                {
                    report.WriteLine($"stopped at step {trained.Step}; continue with --resume");
                    return cancellation.IsCancellationRequested ? 130 : 0;
                }
                if (trained.Step == trained.StartStep)
                {
                    report.WriteLine($"nothing to train: the run had already reached train.steps = {trained.Step}; its model, written again -> {trained.ModelDirectory} (raise train.steps to train on)");
                    return 0;
                }
                report.WriteLine($"trained {trained.Step - trained.StartStep} steps -> {trained.ModelDirectory}"
                    + (trained.Validation is { } v ? $" (validation loss {v.Loss:F4}, perplexity {v.Perplexity:F3})" : ""));
                return 0;
            });
        }));
        return command;
    }

    private static string Format(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t:mm\\:ss}" : t.ToString(@"mm\:ss");
}
