using System.CommandLine;
using BioForge.Discovery.Pmo;
using BioForge.IO;
using Spectre.Console;

namespace BioForge.Cli;

/// <summary><c>bioforge bench pmo</c>: the PMO benchmark, resumable run by run (<see cref="PmoBenchmark"/>).</summary>
internal static class PmoBenchCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var tasks = new Option<string>("--tasks") { Description = "all, or a comma-separated list of PMO tasks", DefaultValueFactory = _ => "all" };
        var seeds = Options.Int("--seeds", "seeds per task (0, 1, …)", 3);
        var budget = Options.Int("--budget", "oracle calls per run (unique valid molecules)", 10_000);
        var parallel = Options.Int("--parallel", "runs side by side", 2);
        var prior = new Option<string>("--prior") { Description = "the SMILES prior", DefaultValueFactory = _ => Shipped.Path("models/smiles-llama-small") };
        var outDir = Options.RequiredFolder("--out", "output directory: runs/, pmo.csv, summary.md, curves.svg (run again to continue)");
        var device = new Option<string>("--device") { Description = "cpu, cuda, cuda:N or auto", DefaultValueFactory = _ => "cpu" };
        var threads = Options.Int("--threads", "CPU threads per run (default: the cores divided among the parallel runs)", 0);
        var strategy = new Option<string>("--strategy")
        {
            Description = "learning strategy of every run: reinvent, augmented_memory or ahc (default: optimize's default, learning.strategy)",
            DefaultValueFactory = _ => new Discovery.OptimizeConfig.LearningSection().Strategy,
        };
        var offspring = Options.Int("--offspring", "children bred per step by the genetic exploration (learning.genetic_offspring; 0: off)",
            new Discovery.OptimizeConfig.LearningSection().GeneticOffspring);
        var replayUpdates = Options.Int("--replay-updates", "extra updates per step on the replay memory alone (learning.replay_updates; 0: off)",
            new Discovery.OptimizeConfig.LearningSection().ReplayUpdates);
        var skipRepeats = new Option<bool>("--skip-repeats")
        {
            Description = "leave molecules scored in an earlier step out of each update (learning.skip_repeats; --skip-repeats false learns from them too)",
            DefaultValueFactory = _ => new Discovery.OptimizeConfig.LearningSection().SkipRepeats,
        };
        var grammar = new Option<string>("--grammar")
        {
            Description = "sampling grammar of every run: none or smiles (sampling.grammar)",
            DefaultValueFactory = _ => new Discovery.OptimizeConfig.SamplingSection().Grammar,
        };
        var overrides = new Argument<string[]>("overrides")
        {
            Description = "section.key=value settings of every run, as optimize takes them (e.g. learning.mutation_rate=0.01)",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var command = new Command("pmo", "PMO goal-directed benchmark: AUC top-10 per task under an oracle budget, beside published methods")
        {
            overrides, tasks, seeds, budget, parallel, prior, outDir, device, threads, strategy, offspring, replayUpdates, skipRepeats, grammar,
        };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            var selected = PmoBenchmark.ParseTasks(result.GetValue(tasks)!);
            int n = result.GetValue(seeds), b = result.GetValue(budget), p = result.GetValue(parallel), t = result.GetValue(threads);
            if (n < 1 || b < 1 || p < 1 || t < 0) throw new BioForgeException("--seeds, --budget and --parallel must be positive, --threads 0 or positive");
            int perRun = t > 0 ? t : Math.Max(1, Environment.ProcessorCount / p);
            string dir = result.GetValue(outDir)!;
            string learning = result.GetValue(strategy)!;
            int bred = result.GetValue(offspring);
            int replayed = result.GetValue(replayUpdates);
            bool skipped = result.GetValue(skipRepeats);
            string sampledUnder = result.GetValue(grammar)!;
            string[] settings = result.GetValue(overrides) ?? [];
            return Cli.Stoppable("stopping the running runs after their current step (each writes a checkpoint); run the same command again to continue", cancellation =>
            {
                var options = new PmoBenchmarkOptions
                {
                    Tasks = selected,
                    Seeds = n,
                    Budget = b,
                    Parallel = p,
                    Threads = perRun,
                    Device = result.GetValue(device)!,
                    Prior = result.GetValue(prior)!,
                    Strategy = learning,
                    GeneticOffspring = bred,
                    ReplayUpdates = replayed,
                    SkipRepeats = skipped,
                    Grammar = sampledUnder,
                    Overrides = settings,
                    Out = dir,
                    Cancellation = cancellation,
                };
                output.WriteLine($"bench pmo: {selected.Count} task(s) × {n} seed(s), budget {b}, {PmoBenchmark.Settings(options)}, {p} run(s) side by side on {perRun} thread(s) each -> {dir}");
                var gate = new object();
                void Say(string line)
                {
                    lock (gate) output.WriteLine(line);
                }
                options = options with
                {
                    OnStart = (task, seed, resumed) => Say($"{task} seed {seed}: {(resumed ? "resumed from its checkpoint" : "started")}"),
                    OnFinish = r => Say($"{r.Task} seed {r.Seed}: AUC top-10 {r.AucTop10:F3}, top-10 mean {r.Top10Mean:F3}, {r.Calls} calls, {r.Seconds:F0} s"),
                };
                var results = Console.IsErrorRedirected ? PmoBenchmark.Run(options) : WithProgress(options, b);
                if (cancellation.IsCancellationRequested)
                {
                    output.WriteLine($"stopped; {results.Count} run(s) finished so far are in {Path.Combine(dir, PmoBenchmark.ResultsFile)}; run the same command again to continue");
                    return 130;
                }
                double sum = results.GroupBy(r => r.Task).Sum(g => g.Average(r => r.AucTop10));
                output.WriteLine($"sum of AUC top-10 over {results.Select(r => r.Task).Distinct().Count()} task(s): {sum:F3} -> {Path.Combine(dir, PmoBenchmark.SummaryFile)}, {PmoBenchmark.ResultsFile}, {PmoBenchmark.CurvesFile}");
                return 0;
            });
        }));
        return command;
    }

    /// <summary>A bar per running run (oracle calls used of the budget) on standard error.</summary>
    private static IReadOnlyList<PmoRunResult> WithProgress(PmoBenchmarkOptions options, int budget)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return console.Progress()
            .HideCompleted(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                var bars = new Dictionary<(string, int), ProgressTask>();
                ProgressTask Bar(string task, int seed)
                {
                    lock (bars)
                    {
                        if (!bars.TryGetValue((task, seed), out var bar)) bars[(task, seed)] = bar = context.AddTask(Markup.Escape($"{task} seed {seed}"), maxValue: budget);
                        return bar;
                    }
                }
                return PmoBenchmark.Run(options with
                {
                    OnStep = (task, seed, report) =>
                    {
                        var bar = Bar(task, seed);
                        bar.Value = report.OracleCalls;
                        bar.Description = Markup.Escape($"{task} seed {seed}: batch best {report.BestScore:F3}");
                    },
                    OnFinish = r =>
                    {
                        Bar(r.Task, r.Seed).StopTask();
                        options.OnFinish?.Invoke(r);
                    },
                });
            });
    }
}
