using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using BioForge.Chem.Oracles;
using BioForge.Imaging;
using BioForge.IO;
using static System.FormattableString;

namespace BioForge.Discovery.Pmo;

/// <summary>One finished benchmark run: a row of <c>pmo.csv</c>.</summary>
public sealed record PmoRunResult(string Task, int Seed, double AucTop10, double Top10Mean, int Calls, double Seconds);

public sealed record PmoBenchmarkOptions
{
    public required IReadOnlyList<string> Tasks { get; init; }
    public int Seeds { get; init; } = 3;
    public int Budget { get; init; } = 10_000;
    /// <summary>Runs side by side, each on <see cref="Threads"/> threads.</summary>
    public int Parallel { get; init; } = 1;
    public int Threads { get; init; } = 1;
    public string Device { get; init; } = "cpu";
    public string Prior { get; init; } = Shipped.Path("models/smiles-llama-small");
    /// <summary><c>learning.strategy</c> of every run (<c>reinvent</c>, <c>augmented_memory</c> or <c>ahc</c>); null: <see cref="OptimizeConfig"/>'s default.</summary>
    public string? Strategy { get; init; }
    /// <summary><c>learning.genetic_offspring</c> of every run; null: <see cref="OptimizeConfig"/>'s default.</summary>
    public int? GeneticOffspring { get; init; }
    /// <summary><c>learning.replay_updates</c> of every run; null: <see cref="OptimizeConfig"/>'s default.</summary>
    public int? ReplayUpdates { get; init; }
    /// <summary><c>learning.skip_repeats</c> of every run; null: <see cref="OptimizeConfig"/>'s default.</summary>
    public bool? SkipRepeats { get; init; }
    /// <summary><c>sampling.grammar</c> of every run (<c>none</c> or <c>smiles</c>); null: <see cref="OptimizeConfig"/>'s default.</summary>
    public string? Grammar { get; init; }
    /// <summary><c>section.key=value</c> settings of every run's configuration (as <c>optimize</c> takes them), applied last.</summary>
    public IReadOnlyList<string> Overrides { get; init; } = [];
    public required string Out { get; init; }
    public CancellationToken Cancellation { get; init; }
    /// <summary>A run starts (<c>resumed</c>: from its checkpoint), reports a step, or ends; called from the worker threads.</summary>
    public Action<string, int, bool>? OnStart { get; init; }
    public Action<string, int, OptimizeStepReport>? OnStep { get; init; }
    public Action<PmoRunResult>? OnFinish { get; init; }
}

/// <summary>
/// <c>bioforge bench pmo</c>: the PMO benchmark (Gao et al. 2022) — each task × seed one optimization run with a
/// single <c>pmo</c> component and an oracle budget, scored by AUC top-10 (<see cref="TopAuc"/>). The output
/// directory holds <c>runs/&lt;task&gt;-seed&lt;n&gt;/</c> (ordinary run directories), <c>pmo.csv</c> (one row per
/// finished run, appended as runs finish), <c>summary.md</c> and <c>curves.svg</c>. Running it again over the same
/// directory keeps the finished runs, resumes an interrupted one from its checkpoint and starts the rest, so a table
/// can be gathered a few runs at a time.
/// </summary>
public static class PmoBenchmark
{
    public const string ResultsFile = "pmo.csv";
    public const string SummaryFile = "summary.md";
    public const string CurvesFile = "curves.svg";
    public const string CurveFile = "top10_curve.csv";
    private const string Header = "task,seed,auc_top10,top10_mean,calls,seconds";

    /// <summary>
    /// One benchmark run: sampling, learning and the diversity filter are <see cref="OptimizeConfig"/>'s defaults —
    /// the best settings found, one place for both (today Augmented Hill-Climb with 32 genetic offspring per step and
    /// repeats left out of the updates, σ 1000, otherwise on the settings PMO ran REINVENT with: mol_opt's batch 64, lr 5e-4, 24 replayed from a
    /// memory of 100, no scaffold filter). The budget ends the run; it ends early and keeps its last top-10 up to the budget when, as in
    /// mol_opt, the 100 best scores stay the same for 5 steps after the first 1000 calls (a collapsed agent otherwise
    /// spends hours of steps finding one new molecule each), or when its batches stop bringing new molecules (under 1 %
    /// for 10 steps). <paramref name="strategy"/>, <paramref name="geneticOffspring"/>, <paramref name="grammar"/>,
    /// <paramref name="replayUpdates"/> and <paramref name="skipRepeats"/> replace the defaults (to compare them; REINVENT, the baseline, is <c>reinvent</c> with 0 offspring, repeats learned from and σ 500),
    /// and <paramref name="overrides"/> (<c>section.key=value</c>) any setting after them.
    /// </summary>
    public static OptimizeConfig RunFile(string task, int seed, int budget, string prior, string directory, string? strategy = null, int? geneticOffspring = null,
        string? grammar = null, int? replayUpdates = null, bool? skipRepeats = null, IReadOnlyList<string>? overrides = null) =>
        BaseRunFile(task, seed, budget, prior, directory, strategy, geneticOffspring, grammar, replayUpdates, skipRepeats)
            .WithOverrides(overrides ?? [], "bench pmo settings");

    private static OptimizeConfig BaseRunFile(string task, int seed, int budget, string prior, string directory, string? strategy, int? geneticOffspring,
        string? grammar, int? replayUpdates, bool? skipRepeats)
    {
        var defaults = new OptimizeConfig.LearningSection();
        var sampling = new OptimizeConfig.SamplingSection();
        return new()
        {
            Seed = (ulong)seed,
            Prior = new() { Model = prior },
            Sampling = sampling with { Grammar = grammar ?? sampling.Grammar },
            Learning = defaults with
            {
                Strategy = strategy ?? defaults.Strategy,
                GeneticOffspring = geneticOffspring ?? defaults.GeneticOffspring,
                ReplayUpdates = replayUpdates ?? defaults.ReplayUpdates,
                SkipRepeats = skipRepeats ?? defaults.SkipRepeats,
            },
            DiversityFilter = new(),
            Budget = new() { OracleCalls = budget },
            Output = new() { Dir = directory, CheckpointEvery = 10, Ranked = 100 },
            Stages =
        [
            new()
            {
                Name = task,
                MaxSteps = budget, // every step makes at least one call until the agent collapses, so the budget ends the run
                MinSteps = 1,
                MaxScore = 1,
                MinUnique = 0.01,
                CollapsePatience = 10,
                Patience = 5,
                Aggregate = "arithmetic",
                Components = [new ComponentSettings { Type = "pmo", Task = task }],
            },
        ],
        };
    }

    /// <summary><c>all</c> or a comma-separated list of task names, each checked.</summary>
    public static IReadOnlyList<string> ParseTasks(string text)
    {
        if (text.Trim() == "all") return PmoOracle.Tasks;
        var tasks = text.Split(',', StringSplitOptions.TrimEntries).ToList();
        if (tasks.Any(t => t.Length == 0)) throw new BioForgeException($"--tasks '{text}': an empty entry; give all or a comma-separated list of tasks");
        if (tasks.GroupBy(t => t).FirstOrDefault(g => g.Count() > 1) is { } twice) throw new BioForgeException($"--tasks: '{twice.Key}' is given twice");
        foreach (string t in tasks)
            if (!PmoOracle.Tasks.Contains(t)) throw new BioForgeException($"--tasks: unknown task '{t}' (tasks: {string.Join(", ", PmoOracle.Tasks)})");
        return tasks;
    }

    public static string RunDirectoryOf(string output, string task, int seed) => Path.Combine(output, "runs", $"{task}-seed{seed}");

    public static IReadOnlyList<PmoRunResult> Run(PmoBenchmarkOptions options)
    {
        if (options.Seeds < 1 || options.Budget < 1 || options.Parallel < 1 || options.Threads < 0)
            throw new BioForgeException("--seeds, --budget and --parallel must be positive");
        if (options.Strategy is { } strategy && strategy is not ("reinvent" or "augmented_memory" or "ahc"))
            throw new BioForgeException($"--strategy must be reinvent, augmented_memory or ahc (got '{strategy}')");
        if (options.GeneticOffspring is < 0 or > 1024) throw new BioForgeException($"--offspring must be in [0, 1024] (got {options.GeneticOffspring})");
        if (options.ReplayUpdates is < 0 or > 16) throw new BioForgeException($"--replay-updates must be in [0, 16] (got {options.ReplayUpdates})");
        if (options.Grammar is { } grammar && grammar is not ("none" or "smiles")) throw new BioForgeException($"--grammar must be none or smiles (got '{grammar}')");
        if (!Directory.Exists(options.Prior)) throw new BioForgeException($"--prior {options.Prior}: not a directory (a SMILES language model, e.g. models/smiles-llama-small)");
        foreach (string key in OverriddenKeys(options.Overrides))
            if (OwnedSetting(key) is { } owner)
                throw new BioForgeException($"{key}: bench pmo sets it for every run ({owner}); not a setting to override");
        // A bad override fails here, before any directory is made.
        string settings = Settings(options);
        Directory.CreateDirectory(options.Out);
        string resultsPath = Path.Combine(options.Out, ResultsFile);
        var results = ReadResults(resultsPath);
        var previous = results.Where(r => options.Tasks.Contains(r.Task) && r.Seed < options.Seeds).ToList();
        var earlier = JsonNode.Parse(OptimizeConfig.EarlierRunsDefaultsJson());
        foreach (var r in previous)
        {
            string config = Path.Combine(RunDirectoryOf(options.Out, r.Task, r.Seed), Training.RunDirectory.ConfigFile);
            if (!File.Exists(config)) throw new BioForgeException($"{resultsPath}: {r.Task} seed {r.Seed} is listed but its run directory is gone ({config})");
            var stored = JsonNode.Parse(File.ReadAllText(config));
            var wanted = JsonNode.Parse(ConfigOf(options, r.Task, r.Seed, RunDirectoryOf(options.Out, r.Task, r.Seed)).ToJsonText());
            // Every setting, so a default changed since (bench pmo's own, or OptimizeConfig's) is not mixed into a table either.
            foreach (var (setting, now) in Leaves(wanted, "").Where(l => !l.Key.StartsWith("output.", StringComparison.Ordinal)))
            {
                string was = Setting(stored, setting) ?? Setting(earlier, setting) ?? now;
                if (Comparable(setting, was) != Comparable(setting, now))
                    throw new BioForgeException($"{resultsPath}: {r.Task} seed {r.Seed} ran with {setting} = {was}, not {now}; use another --out for other settings");
            }
        }
        var pending = options.Tasks.SelectMany(t => Enumerable.Range(0, options.Seeds).Select(s => (Task: t, Seed: s)))
            .Where(run => !results.Any(r => r.Task == run.Task && r.Seed == run.Seed)).ToList();
        var gate = new object();
        int next = 0;
        var errors = new List<Exception>();
        // One failing run stops the others at their next step (they checkpoint), so the error is not buried under hours of work.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(options.Cancellation);
        void Worker()
        {
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    (string Task, int Seed) run;
                    lock (gate)
                    {
                        if (next >= pending.Count) return;
                        run = pending[next++];
                    }
                    var result = RunOne(options, run.Task, run.Seed, stop.Token);
                    if (result is null) return; // interrupted
                    lock (gate)
                    {
                        results.Add(result);
                        WriteResults(resultsPath, results);
                    }
                    options.OnFinish?.Invoke(result);
                }
            }
            catch (Exception e)
            {
                lock (gate) errors.Add(e);
                stop.Cancel();
            }
        }
        int count = Math.Min(options.Parallel, Math.Max(1, pending.Count));
        var threads = Enumerable.Range(1, count - 1).Select(_ => new Thread(Worker) { IsBackground = true }).ToList();
        threads.ForEach(t => t.Start());
        Worker(); // the first worker is this thread
        threads.ForEach(t => t.Join());
        if (errors.Count > 0) throw errors[0] is BioForgeException ? errors[0] : new AggregateException(errors);

        var selected = results.Where(r => options.Tasks.Contains(r.Task) && r.Seed < options.Seeds).OrderBy(r => Array.IndexOf([.. PmoOracle.Tasks], r.Task)).ThenBy(r => r.Seed).ToList();
        AtomicFile.WriteText(Path.Combine(options.Out, SummaryFile), Summary(selected, options.Budget, settings));
        AtomicFile.WriteText(Path.Combine(options.Out, CurvesFile), Curves(options.Out, selected));
        return selected;
    }

    /// <summary>
    /// The settings of every run, as <c>summary.md</c> names them: those of the benchmark's own options (the budget
    /// apart), then the overrides. Builds a run's configuration, so a bad override fails here.
    /// </summary>
    public static string Settings(PmoBenchmarkOptions options)
    {
        if (options.Tasks.Count == 0) throw new BioForgeException("--tasks: no task given");
        var config = JsonNode.Parse(ConfigOf(options, options.Tasks[0], 0, "(checked)").ToJsonText());
        // An override of a setting named anyway shows in its value; naming it again would say it twice.
        var others = options.Overrides.Where(o => !TableSettings.Contains(o.Split('=')[0].Trim()));
        return string.Join(", ", TableSettings.Select(key => $"{key} = {Setting(config, key)}").Concat(others));
    }

    private static OptimizeConfig ConfigOf(PmoBenchmarkOptions options, string task, int seed, string directory) =>
        RunFile(task, seed, options.Budget, options.Prior, directory, options.Strategy, options.GeneticOffspring, options.Grammar, options.ReplayUpdates,
            options.SkipRepeats, options.Overrides);

    /// <summary>What sets a setting that belongs to the benchmark's protocol (the option to use instead); null for the others.</summary>
    private static string? OwnedSetting(string key) =>
        key == "seed" ? "--seeds"
        : key.StartsWith("prior.", StringComparison.Ordinal) ? "--prior"
        : key.StartsWith("budget.", StringComparison.Ordinal) ? "--budget"
        : key.StartsWith("output.", StringComparison.Ordinal) ? "--out"
        : key.StartsWith("stages[0].components", StringComparison.Ordinal) || key == "stages[0].name" || key == "stages" ? "--tasks"
        : null;

    /// <summary>The settings of the benchmark's own options (the budget apart) and the stall rule, named in <c>summary.md</c>.</summary>
    private static readonly string[] TableSettings =
    [
        "learning.strategy", "learning.genetic_offspring", "learning.replay_updates", "learning.skip_repeats", "learning.sigma", "sampling.grammar", "stages[0].on_stall",
    ];

    /// <summary>Every value of a configuration's JSON with its dotted name (<c>stages[0].patience</c>), as <see cref="Setting"/> writes it.</summary>
    private static IEnumerable<(string Key, string Value)> Leaves(JsonNode? node, string name) => node switch
    {
        JsonObject section => section.SelectMany(p => Leaves(p.Value, name.Length == 0 ? p.Key : $"{name}.{p.Key}")),
        JsonArray list => list.SelectMany((item, i) => Leaves(item, $"{name}[{i}]")),
        _ => [(name, Text(node))],
    };

    /// <summary>A setting as compared between runs: the prior is a folder, named relative to where a run was started or
    /// in full (the shipped default from outside the checkout), so the folder it names is compared.</summary>
    private static string Comparable(string setting, string value) =>
        setting == "prior.model" ? Path.GetFullPath(Shipped.Path(value)).TrimEnd('/') : value;

    private static string Text(JsonNode? node) => node is JsonValue value && value.TryGetValue(out string? text) ? text : node?.ToJsonString() ?? "null";

    private static IEnumerable<string> OverriddenKeys(IEnumerable<string> overrides) =>
        overrides.Select(o => o.Split('=', 2)[0].Trim()).Distinct(StringComparer.Ordinal);

    /// <summary>A setting of a run configuration's JSON by its dotted name (<c>stages[0].patience</c> too): a string as
    /// it is, anything else as compact JSON; null when absent.</summary>
    private static string? Setting(JsonNode? config, string dotted)
    {
        var node = config;
        foreach (string key in dotted.Split('.'))
        {
            int bracket = key.IndexOf('[');
            node = bracket > 0 && key.EndsWith(']') && int.TryParse(key[(bracket + 1)..^1], CultureInfo.InvariantCulture, out int index)
                ? node?[key[..bracket]] is JsonArray list && index < list.Count ? list[index] : null
                : node is JsonObject section ? section[key] : null;
        }
        return node is null ? null : Text(node);
    }

    /// <summary>One run, resumed from its checkpoint when it has one; null when it was interrupted.</summary>
    private static PmoRunResult? RunOne(PmoBenchmarkOptions options, string task, int seed, CancellationToken cancellation)
    {
        string directory = RunDirectoryOf(options.Out, task, seed);
        var config = ConfigOf(options, task, seed, directory);
        bool resume = Training.RunDirectory.Existing(directory).LatestCheckpoint("optimizer_state.json") is not null;
        // A run killed before its first checkpoint left nothing worth keeping.
        if (!resume && Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        options.OnStart?.Invoke(task, seed, resume);
        var outcome = MoleculeOptimizer.Run(config, new OptimizeOptions
        {
            Resume = resume,
            Cancellation = cancellation,
            Device = options.Device,
            Threads = options.Threads,
            OnStep = report => options.OnStep?.Invoke(task, seed, report),
        });
        if (outcome.Interrupted) return null;
        var scores = MoleculeOptimizer.ReadCalls(directory).Select(c => c.Score).ToList();
        WriteCurve(directory, TopAuc.Curve(scores));
        return new PmoRunResult(task, seed, TopAuc.Compute(scores, options.Budget), TopAuc.TopMean(scores), scores.Count, ElapsedSeconds(directory));
    }

    /// <summary>
    /// The run's running top-10 every 100 calls, a few kilobytes: with <c>run_config.json</c>, all a finished run needs to
    /// stay in the table and its curves (a table gathered over several machines or sessions keeps just these files).
    /// </summary>
    private static void WriteCurve(string directory, IReadOnlyList<(int Calls, double TopMean)> curve) =>
        AtomicFile.WriteText(Path.Combine(directory, CurveFile),
            "calls,top10_mean\n" + string.Concat(curve.Select(p => Invariant($"{p.Calls},{p.TopMean:R}\n"))));

    private static IReadOnlyList<(int Calls, double TopMean)> ReadCurve(string directory)
    {
        string path = Path.Combine(directory, CurveFile);
        if (!File.Exists(path)) return TopAuc.Curve([.. MoleculeOptimizer.ReadCalls(directory).Select(c => c.Score)]);
        var curve = new List<(int, double)>();
        foreach (var (line, f) in Csv.ReadRows(path, out _))
        {
            if (f.Count != 2 || !int.TryParse(f[0], CultureInfo.InvariantCulture, out int calls) || !double.TryParse(f[1], CultureInfo.InvariantCulture, out double mean))
                throw new BioForgeException($"{path}:{line}: not a curve row (calls,top10_mean)");
            curve.Add((calls, mean));
        }
        return curve;
    }

    /// <summary>The run's wall time over all its sessions: the last metrics line's elapsed_seconds.</summary>
    private static double ElapsedSeconds(string directory)
    {
        string path = Path.Combine(directory, Training.RunDirectory.MetricsFile);
        if (!File.Exists(path)) return 0;
        string? last = File.ReadLines(path).LastOrDefault(l => l.Trim().Length > 0);
        return last is null ? 0 : JsonNode.Parse(last)?["elapsed_seconds"]?.GetValue<double>() ?? 0;
    }

    private static List<PmoRunResult> ReadResults(string path)
    {
        if (!File.Exists(path)) return [];
        var results = new List<PmoRunResult>();
        foreach (var (line, f) in Csv.ReadRows(path, out var header))
        {
            if (string.Join(",", header) != Header) throw new BioForgeException($"{path}: not a bench pmo results file (header '{string.Join(",", header)}')");
            try
            {
                results.Add(new PmoRunResult(f[0], int.Parse(f[1], CultureInfo.InvariantCulture), double.Parse(f[2], CultureInfo.InvariantCulture),
                    double.Parse(f[3], CultureInfo.InvariantCulture), int.Parse(f[4], CultureInfo.InvariantCulture), double.Parse(f[5], CultureInfo.InvariantCulture)));
            }
            catch (Exception e) when (e is FormatException or ArgumentOutOfRangeException)
            {
                throw new BioForgeException($"{path}:{line}: not a results row ({e.Message})");
            }
        }
        return results;
    }

    private static void WriteResults(string path, IReadOnlyList<PmoRunResult> results)
    {
        var text = new StringBuilder(Header).Append('\n');
        foreach (var r in results)
            text.Append(Invariant($"{r.Task},{r.Seed},{r.AucTop10:F4},{r.Top10Mean:F4},{r.Calls},{r.Seconds:F1}\n"));
        AtomicFile.WriteText(path, text.ToString());
    }

    /// <summary>summary.md: per task the mean ± sd over seeds, the sum over tasks, beside the published methods.</summary>
    /// <param name="settings">How BioForge's runs learned (the options that differ between tables).</param>
    public static string Summary(IReadOnlyList<PmoRunResult> results, int budget, string settings)
    {
        var text = new StringBuilder();
        text.Append(Invariant($"# PMO benchmark: AUC top-10, budget {budget} oracle calls\n\n"));
        text.Append("BioForge (").Append(settings).Append("): mean ± sd over seeds (n = seeds finished). Published: ").Append(PmoPublished.Source).Append("\n\n");
        text.Append("| task | BioForge | n | top-10 mean | seconds/run | ").Append(string.Join(" | ", PmoPublished.Methods)).Append(" |\n");
        text.Append("|---|---|---|---|---|").Append(string.Concat(PmoPublished.Methods.Select(_ => "---|"))).Append('\n');
        double sum = 0;
        var tasks = results.Select(r => r.Task).Distinct().ToList();
        foreach (string task in tasks)
        {
            var runs = results.Where(r => r.Task == task).ToList();
            var (mean, sd) = MeanSd([.. runs.Select(r => r.AucTop10)]);
            sum += mean;
            text.Append(Invariant($"| {task} | {mean:F3} ± {sd:F3} | {runs.Count} | {runs.Average(r => r.Top10Mean):F3} | {runs.Average(r => r.Seconds):F0} | "));
            text.Append(string.Join(" | ", PmoPublished.Methods.Select((_, m) => Invariant($"{PmoPublished.Auc[task][m]:F3}")))).Append(" |\n");
        }
        text.Append(Invariant($"| **sum ({tasks.Count} tasks)** | **{sum:F3}** | | | | "));
        text.Append(string.Join(" | ", PmoPublished.Methods.Select((_, m) => Invariant($"{tasks.Sum(t => PmoPublished.Auc[t][m]):F3}")))).Append(" |\n");
        if (tasks.Count < PmoOracle.Tasks.Count)
            text.Append(Invariant($"\nThe published sums over all {PmoOracle.Tasks.Count} offline tasks: ")).Append(string.Join(", ",
                PmoPublished.Methods.Select((name, m) => Invariant($"{name} {PmoOracle.Tasks.Sum(t => PmoPublished.Auc[t][m]):F3}")))).Append(".\n");
        return text.ToString();
    }

    private static (double Mean, double Sd) MeanSd(double[] values)
    {
        double mean = values.Average();
        double sd = values.Length < 2 ? 0 : Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1));
        return (mean, sd);
    }

    /// <summary>curves.svg: the running top-10 mean against oracle calls, one line per run.</summary>
    private static string Curves(string output, IReadOnlyList<PmoRunResult> results)
    {
        var series = results.Select(r =>
        {
            var curve = ReadCurve(RunDirectoryOf(output, r.Task, r.Seed));
            return ($"{r.Task} seed {r.Seed}", (IReadOnlyList<double>)[.. curve.Select(p => (double)p.Calls)], (IReadOnlyList<double>)[.. curve.Select(p => p.TopMean)]);
        }).ToList();
        return SvgChart.Lines(series, "PMO: running top-10 mean", "oracle calls", "top-10 mean score");
    }

}

/// <summary>
/// Published AUC top-10 on the 20 offline PMO tasks (5 seeds each), the yardstick <c>summary.md</c> sets BioForge beside.
/// </summary>
internal static class PmoPublished
{
    public const string Source = "REINVENT and Graph GA from the PMO paper (Gao et al. 2022, NeurIPS Datasets and Benchmarks); "
        + "Mol GA and Genetic GFN as collected in GenMol's comparison (Lee et al. 2025); copied from shared/REFERENCE.md §7.";

    public static readonly IReadOnlyList<string> Methods = ["REINVENT", "Graph GA", "Mol GA", "Genetic GFN"];

    public static readonly IReadOnlyDictionary<string, IReadOnlyList<double>> Auc = new Dictionary<string, IReadOnlyList<double>>(StringComparer.Ordinal)
    {
        ["albuterol_similarity"] = [0.882, 0.838, 0.896, 0.949],
        ["amlodipine_mpo"] = [0.635, 0.661, 0.688, 0.761],
        ["celecoxib_rediscovery"] = [0.713, 0.630, 0.567, 0.802],
        ["deco_hop"] = [0.666, 0.619, 0.649, 0.733],
        ["fexofenadine_mpo"] = [0.784, 0.760, 0.825, 0.856],
        ["isomers_c7h8n2o2"] = [0.852, 0.862, 0.878, 0.969],
        ["isomers_c9h10n2o2pf2cl"] = [0.642, 0.719, 0.865, 0.897],
        ["median1"] = [0.356, 0.294, 0.257, 0.379],
        ["median2"] = [0.276, 0.273, 0.301, 0.294],
        ["mestranol_similarity"] = [0.618, 0.579, 0.591, 0.708],
        ["osimertinib_mpo"] = [0.837, 0.831, 0.844, 0.860],
        ["perindopril_mpo"] = [0.537, 0.538, 0.547, 0.595],
        ["qed"] = [0.941, 0.940, 0.941, 0.942],
        ["ranolazine_mpo"] = [0.760, 0.728, 0.804, 0.819],
        ["scaffold_hop"] = [0.560, 0.517, 0.527, 0.615],
        ["sitagliptin_mpo"] = [0.021, 0.433, 0.582, 0.634],
        ["thiothixene_rediscovery"] = [0.534, 0.479, 0.519, 0.583],
        ["troglitazone_rediscovery"] = [0.441, 0.390, 0.427, 0.511],
        ["valsartan_smarts"] = [0.178, 0.000, 0.000, 0.135],
        ["zaleplon_mpo"] = [0.358, 0.346, 0.519, 0.552],
    };
}
