using System.CommandLine;
using BioForge.Chem;
using BioForge.Discovery;

namespace BioForge.Cli;

/// <summary><c>bioforge optimize</c>: REINVENT-style goal-directed generation from a run file (TOML or YAML).</summary>
internal static class OptimizeCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var config = Options.Required("--config", "run file (TOML or YAML): prior, sampling, learning, diversity_filter, output, [[stages]] with [[stages.components]]; or a REINVENT 4 staged_learning TOML file");
        var overrides = new Argument<string[]>("overrides") { Description = "section.key=value settings that replace the file's (e.g. output.dir=runs/x)", Arity = ArgumentArity.ZeroOrMore };
        var resume = new Option<bool>("--resume") { Description = "continue from the run directory's checkpoint" };
        var compute = new ComputeOptionSet();
        var command = new Command("optimize", "Steer the SMILES model towards molecules that score well (reinforcement learning with a scoring function)") { config, overrides, resume };
        command.Options.Add(compute.Device);
        command.Options.Add(compute.Threads);
        command.SetAction(result => Cli.Guard(error, () =>
        {
            var run = OptimizeConfig.Load(result.GetValue(config)!, result.GetValue(overrides), note => output.WriteLine($"note: {note}"));
            return Cli.Stoppable("stopping after this step (a checkpoint will be written)", cancellation =>
            {
                var optimized = MoleculeOptimizer.Run(run, new OptimizeOptions
                {
                    Resume = result.GetValue(resume),
                    Cancellation = cancellation,
                    Device = result.GetValue(compute.Device)!,
                    Threads = result.GetValue(compute.Threads),
                    OnInfo = output.WriteLine,
                    OnStep = r => output.WriteLine($"step {r.Step} [{r.StageName} {r.StageStep}/{r.StageSteps}]  score {r.MeanScore:F3} (best {r.BestScore:F3})  "
                        + $"valid {r.ValidFraction:P0}  new {r.NewFraction:P0}  scaffolds {r.Scaffolds}  loss {r.Loss:F1}  {r.Elapsed.TotalSeconds:F0} s"),
                });
                if (optimized.Interrupted)
                {
                    output.WriteLine($"stopped at step {optimized.Steps}; continue with --resume");
                    return 130;
                }
                var top = optimized.Ranked.Take(100).ToList();
                if (top.Count > 0)
                {
                    using var moses = new MosesMetrics();
                    double diversity = moses.Compute([.. top.Select(m => m.Canonical)]).IntDiv1 ?? double.NaN;
                    output.WriteLine($"top {top.Count}: mean score {top.Average(m => m.Score):F3}, internal diversity {diversity:F3}; best {top[0].Canonical} ({top[0].Score:F3})");
                }
                output.WriteLine($"-> {optimized.Directory} (ranked.csv, scores_*.csv, metrics.jsonl, agent/)");
                return 0;
            });
        }));
        return command;
    }
}
