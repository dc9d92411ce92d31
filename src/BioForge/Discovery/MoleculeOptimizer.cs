using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using BioForge.IO;
using BioForge.Models.Llama;
using BioForge.Runtime;
using BioForge.Training;
using static TorchSharp.torch;

namespace BioForge.Discovery;

/// <summary>One step: <see cref="Scaffolds"/> counts the distinct Murcko scaffolds of the step's scored molecules (acyclic ones share the empty scaffold).</summary>
public sealed record OptimizeStepReport(int Stage, string StageName, int Step, int StageStep, int StageSteps, double MeanScore, double ValidFraction,
    double NewFraction, int Scaffolds, double Loss, double BestScore, TimeSpan Elapsed, int OracleCalls = 0, StepTimings? Timings = null);

public sealed record RankedMolecule(int Rank, string Canonical, double Score, int Step, string Stage, string Scaffold, double[] Raw, double[] Transformed);

/// <param name="Scored">Molecules scored over the whole run: the agent's samples and any bred children.</param>
public sealed record OptimizeResult(string Directory, int Steps, IReadOnlyList<string> ComponentLabels, IReadOnlyList<RankedMolecule> Ranked,
    IReadOnlyList<string> StageEndings, bool Interrupted, int Scored);

public sealed record OptimizeOptions
{
    public bool Resume { get; init; }
    public Action<string>? OnInfo { get; init; }
    public Action<OptimizeStepReport>? OnStep { get; init; }
    public CancellationToken Cancellation { get; init; }
    public string Device { get; init; } = "cpu";
    public int Threads { get; init; }
}

/// <summary>
/// <c>bioforge optimize</c>: an <see cref="OptimizationSession"/> run inside a <see cref="RunDirectory"/> — the
/// resolved configuration, metrics.jsonl, one scores CSV per stage, checkpoints (agent, optimizer moments, state) that
/// resume exactly, ranked.csv and the final agent.
/// </summary>
public static class MoleculeOptimizer
{
    private const string StateFile = "optimizer_state.json";
    private const string AgentDirectory = "agent";
    /// <summary>With a budget: one row per counted oracle call, in order (<c>call,step,smiles,score,error</c>).</summary>
    public const string OracleCallsFile = "oracle_calls.csv";
    // error last: files from before it (four columns) still read.
    private const string OracleCallsHeader = "call,step,smiles,score,error";

    /// <summary>What a resumed run must share with the run it continues; stage limits may change.</summary>
    private static readonly string[] DefiningSettings = ["seed", "prior", "sampling", "learning", "diversity_filter", "budget", "stages"];

    private static bool MayChange(string path) =>
        path.StartsWith("stages[", StringComparison.Ordinal)
        && (path[(path.IndexOf(']', StringComparison.Ordinal) + 1)..] is ".max_steps" or ".min_steps" or ".max_score" or ".min_unique" or ".collapse_patience" or ".patience"
            // derived values that run files stored before 2026-12-06 hold
            || path.EndsWith(".label", StringComparison.Ordinal) || path.EndsWith(".is_penalty", StringComparison.Ordinal));

    public static OptimizeResult Run(OptimizeConfig config, OptimizeOptions options)
    {
        var compute = ComputeOptions.Resolve(options.Device, "fp32", options.Threads);
        CheckScoring(config, compute.Device);
        var run = RunDirectory.Open(config.Output.Dir, "output.dir", isNew: !options.Resume);
        try
        {
            return Run(config, options, compute, run);
        }
        catch
        {
            run.RemoveIfUnused(StateFile);
            throw;
        }
    }

    /// <summary>
    /// Builds every stage's scoring function once before anything is written: a later stage's missing model, program or
    /// unknown alert rule fails the run now, not after the earlier stages' minutes.
    /// </summary>
    private static void CheckScoring(OptimizeConfig config, TorchSharp.torch.Device device)
    {
        for (int stage = 0; stage < config.Stages.Count; stage++)
        {
            try
            {
                using var _ = new ScoringFunction(config.Stages[stage].Components, config.Stages[stage].Aggregate, device);
            }
            catch (BioForgeException e)
            {
                throw new BioForgeException($"stages[{stage}] '{OptimizationSession.StageName(config, stage)}': {e.Message}", e);
            }
        }
    }

    private static OptimizeResult Run(OptimizeConfig config, OptimizeOptions options, ComputeOptions compute, RunDirectory run)
    {
        OptimizationState? resumed = null;
        string? checkpoint = null;
        if (options.Resume)
        {
            checkpoint = run.LatestCheckpoint(StateFile) ?? throw run.NothingToResume("output.dir");
            run.RefuseChanges(JsonNode.Parse(config.ToJsonText())!.AsObject(), DefiningSettings,
                JsonNode.Parse(OptimizeConfig.EarlierRunsDefaultsJson())!.AsObject(), MayChange);
            resumed = CheckpointFiles.ReadJson<OptimizationState>(Path.Combine(checkpoint, StateFile), YamlConfig.Serializer, "optimization checkpoint");
            if (resumed.Stage > config.Stages.Count)
                throw new BioForgeException($"{checkpoint}: the run was at stage {resumed.Stage + 1}, the configuration has {config.Stages.Count}");
        }

        using var prior = LlamaCheckpoint.Load(config.Prior.Model, compute.Device, ScalarType.Float32);
        var agent = checkpoint is null ? prior.Copy(ScalarType.Float32) : LlamaCheckpoint.Load(Path.Combine(checkpoint, AgentDirectory), compute.Device, ScalarType.Float32);
        using var session = new OptimizationSession(config, prior, agent, resumed);
        if (checkpoint is not null) CheckpointFiles.LoadOptimizer(checkpoint, session.Optimizer, session.State.Step);
        if (session.Finished)
            options.OnInfo?.Invoke($"{run.Path} is finished at step {session.State.Step} ({string.Join("; ", session.State.StageEndings)}); nothing to resume");

        run.WriteConfig(config.ToJsonText());
        using var metrics = run.OpenMetrics(session.State.Step);
        using var calls = config.Budget.OracleCalls > 0 ? OpenCalls(Path.Combine(run.Path, OracleCallsFile), resumed is null ? -1 : session.State.Step, session) : null;
        var clock = Stopwatch.StartNew();
        TimeSpan Elapsed() => TimeSpan.FromSeconds(session.State.ElapsedSeconds) + clock.Elapsed;
        var finalLabels = session.Labels(config.Stages.Count - 1);
        string ScoresPath(int stage) => Path.Combine(run.Path, $"scores_{stage + 1}_{Safe(OptimizationSession.StageName(config, stage))}.csv");
        // The final stage's best molecules so far come back from its CSV.
        if (resumed is not null && resumed.Stage >= config.Stages.Count - 1)
            Reload(ScoresPath(config.Stages.Count - 1), finalLabels, OptimizationSession.StageName(config, config.Stages.Count - 1), session.State.Step, session.Remember);

        bool interrupted = false;
        StreamWriter? scores = null;
        int scoresStage = -1;
        try
        {
            while (!session.Finished)
            {
                if (options.Cancellation.IsCancellationRequested)
                {
                    interrupted = true;
                    break;
                }
                int stage = session.State.Stage;
                if (scoresStage != stage)
                {
                    scores?.Dispose();
                    bool continuing = session.State.StageStep > 0;
                    scores = OpenScores(ScoresPath(stage), session.Labels(stage), continuing ? session.State.Step : -1);
                    scoresStage = stage;
                    var s = config.Stages[stage];
                    options.OnInfo?.Invoke($"stage {stage + 1}/{config.Stages.Count} '{OptimizationSession.StageName(config, stage)}': {string.Join(", ", session.Labels(stage))} ({s.Aggregate} mean), up to {s.MaxSteps} steps");
                }
                var result = session.Step(Elapsed());
                var report = result.Report;
                WriteScores(scores!, report.Step, result.Scored, result.Sampled, result.Learned);
                if (calls is not null) WriteCalls(calls, result.Calls);
                metrics.Write(new JsonObject
                {
                    ["step"] = report.Step,
                    ["stage"] = report.Stage,
                    ["mean_score"] = Math.Round(report.MeanScore, 5),
                    ["valid"] = Math.Round(report.ValidFraction, 4),
                    ["unique"] = Math.Round(report.NewFraction, 4),
                    ["scaffolds"] = report.Scaffolds,
                    ["loss"] = Math.Round(report.Loss, 4),
                    ["oracle_calls"] = session.Budget?.Used,
                    ["elapsed_seconds"] = Math.Round(report.Elapsed.TotalSeconds, 2),
                    ["seconds_sample"] = Math.Round(report.Timings?.Sample ?? 0, 3),
                    ["seconds_score"] = Math.Round(report.Timings?.Score ?? 0, 3),
                    ["seconds_prior"] = Math.Round(report.Timings?.Prior ?? 0, 3),
                    ["seconds_agent"] = Math.Round(report.Timings?.Agent ?? 0, 3),
                    ["seconds_augment"] = Math.Round(report.Timings?.Augment ?? 0, 3),
                    ["seconds_breed"] = Math.Round(report.Timings?.Breed ?? 0, 3),
                    ["restarts"] = session.State.Restarts,
                });
                options.OnStep?.Invoke(report);
                if (result.StageEnding is { } ending) options.OnInfo?.Invoke(ending);
                if (result.Restart is { } restart) options.OnInfo?.Invoke(restart);
                if (report.Step % config.Output.CheckpointEvery == 0 || result.StageEnding is not null) SaveCheckpoint(run, session, Elapsed());
            }
        }
        finally
        {
            scores?.Dispose();
        }
        if (interrupted) SaveCheckpoint(run, session, Elapsed());

        var ranked = session.Ranked(config.Output.Ranked);
        WriteRanked(Path.Combine(run.Path, "ranked.csv"), ranked, finalLabels);
        if (!interrupted) run.Publish(AgentDirectory, directory => session.Agent.Save(directory));
        var outcome = new OptimizeResult(run.Path, session.State.Step, finalLabels, ranked, session.State.StageEndings, interrupted, session.State.Scored);
        OptimizationReport.Write(Path.Combine(run.Path, OptimizationReport.FileName), config, outcome, OptimizationReport.ReadSteps(Path.Combine(run.Path, RunDirectory.MetricsFile)));
        return outcome;
    }

    /// <summary>Agent weights, optimizer moments and the run state (written last), committed as one checkpoint; the previous one stays until then.</summary>
    private static void SaveCheckpoint(RunDirectory run, OptimizationSession session, TimeSpan elapsed)
    {
        var state = session.State with { ElapsedSeconds = elapsed.TotalSeconds };
        using var scope = NewDisposeScope(); // the optimizer's moments are gathered into copies
        run.SaveCheckpoint(state.Step, keep: 1, StateFile, directory =>
        {
            session.Agent.Save(Path.Combine(directory, AgentDirectory));
            CheckpointFiles.SaveOptimizer(directory, session.Optimizer.State(), session.Optimizer.Step);
            CheckpointFiles.WriteJson(Path.Combine(directory, StateFile), state, YamlConfig.Serializer);
        });
    }

    private static string Safe(string name) => new([.. name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' ? c : '_')]);

    /// <summary>The stage's CSV, truncated to the resumed step (rows past it belong to a lost future).</summary>
    private static StreamWriter OpenScores(string path, IReadOnlyList<string> labels, long keepUpToStep)
    {
        // source last: rows written before it existed (a run resumed by a newer build) still read by position.
        string header = "step,smiles,canonical,valid,score,learned_score,scaffold," + string.Join(",", labels.SelectMany(l => new[] { Csv.Quote(l), Csv.Quote(l + "_raw") })) + ",source";
        if (keepUpToStep >= 0 && File.Exists(path))
        {
            var kept = File.ReadAllLines(path).Skip(1).Where(l => long.TryParse(l.AsSpan(0, Math.Max(0, l.IndexOf(','))), CultureInfo.InvariantCulture, out long s) && s <= keepUpToStep);
            AtomicFile.WriteText(path, string.Join("\n", kept.Prepend(header)) + "\n");
            return new StreamWriter(path, append: true) { AutoFlush = true };
        }
        var writer = new StreamWriter(path, append: false) { AutoFlush = true };
        writer.WriteLine(header);
        return writer;
    }

    /// <summary>
    /// oracle_calls.csv, kept up to the resumed step (later rows belong to a lost future; a row torn by a kill is dropped),
    /// and the session's budget rebuilt from it; a new run starts it with its header.
    /// </summary>
    private static StreamWriter OpenCalls(string path, long keepUpToStep, OptimizationSession session)
    {
        if (keepUpToStep < 0)
        {
            var fresh = new StreamWriter(path, append: false) { AutoFlush = true };
            fresh.WriteLine(OracleCallsHeader);
            return fresh;
        }
        if (!File.Exists(path)) throw new BioForgeException($"{path}: missing; a run with a budget cannot resume without its record of oracle calls");
        var kept = new List<OracleCall>();
        // Every row ends with a line break; text after the last one is a row cut short by a kill.
        string[] lines = File.ReadAllText(path).Split('\n');
        foreach (string line in lines.Skip(1).SkipLast(1))
        {
            if (ParseCall(Csv.Split(line)) is { } call && call.Step <= keepUpToStep) kept.Add(call);
        }
        session.RestoreCalls(kept);
        var text = new StringBuilder(OracleCallsHeader).Append('\n');
        foreach (var call in kept) AppendCall(text, call);
        AtomicFile.WriteText(path, text.ToString());
        return new StreamWriter(path, append: true) { AutoFlush = true };
    }

    private static void WriteCalls(StreamWriter writer, IReadOnlyList<OracleCall> calls)
    {
        if (calls.Count == 0) return;
        var text = new StringBuilder();
        foreach (var call in calls) AppendCall(text, call);
        writer.Write(text.ToString());
    }

    private static void AppendCall(StringBuilder text, OracleCall call) =>
        text.Append(call.Call.ToString(CultureInfo.InvariantCulture)).Append(',').Append(call.Step.ToString(CultureInfo.InvariantCulture)).Append(',')
            .Append(Csv.Quote(call.Smiles)).Append(',').Append(call.Score.ToString("R", CultureInfo.InvariantCulture)).Append(',')
            .Append(Csv.Quote(call.Error ?? "")).Append('\n');

    /// <summary>One row of oracle_calls.csv, or null for a row that is not one (a torn last row).</summary>
    private static OracleCall? ParseCall(List<string> fields) =>
        fields.Count is 4 or 5
        && int.TryParse(fields[0], CultureInfo.InvariantCulture, out int call)
        && int.TryParse(fields[1], CultureInfo.InvariantCulture, out int step)
        && double.TryParse(fields[3], CultureInfo.InvariantCulture, out double score)
            ? new OracleCall(call, step, fields[2], score, fields.Count == 5 && fields[4].Length > 0 ? fields[4] : null)
            : null;

    /// <summary>Reads a run's oracle_calls.csv (for <c>bench pmo</c> and tools).</summary>
    public static IReadOnlyList<OracleCall> ReadCalls(string runDirectory)
    {
        string path = Path.Combine(runDirectory, OracleCallsFile);
        if (!File.Exists(path)) throw new BioForgeException($"{path}: not found (the run has no budget, or has not started)");
        var calls = new List<OracleCall>();
        foreach (var (_, fields) in Csv.ReadRows(path, out _, checkQuoting: false)) // a row torn by a kill is dropped, not an error
            if (ParseCall(fields) is { } call) calls.Add(call);
        return calls;
    }

    /// <summary>One row per molecule: the agent's <paramref name="sampled"/> samples (source <c>sampled</c>), then bred children (<c>bred</c>).</summary>
    private static void WriteScores(StreamWriter writer, int step, IReadOnlyList<ScoredMolecule> scored, int sampled, double[] learned)
    {
        var text = new StringBuilder();
        for (int i = 0; i < scored.Count; i++)
        {
            var m = scored[i];
            text.Append(step.ToString(CultureInfo.InvariantCulture)).Append(',').Append(Csv.Quote(m.Smiles)).Append(',').Append(Csv.Quote(m.Canonical ?? ""))
                .Append(',').Append(m.Valid ? '1' : '0').Append(',').Append(Exact(m.Score)).Append(',').Append(F(learned[i])).Append(',').Append(Csv.Quote(m.Scaffold ?? ""));
            for (int c = 0; c < m.Raw.Length; c++) text.Append(',').Append(F(m.Transformed[c])).Append(',').Append(F(m.Raw[c]));
            text.Append(',').Append(i < sampled ? "sampled" : "bred").Append('\n');
        }
        writer.Write(text.ToString());
    }

    /// <summary>
    /// On resume, the final stage's best molecules so far come back from its CSV: its rows up to the checkpoint's step
    /// (rows after it belong to a lost future and are truncated when the CSV is reopened; a row torn by a kill is one).
    /// </summary>
    private static void Reload(string path, IReadOnlyList<string> labels, string stage, long upToStep, Action<RankedMolecule> remember)
    {
        if (!File.Exists(path)) return;
        foreach (string line in File.ReadLines(path).Skip(1))
        {
            // The step first, read before the rest: a torn row may hold an unclosed quote.
            if (!long.TryParse(line.AsSpan(0, Math.Max(0, line.IndexOf(','))), CultureInfo.InvariantCulture, out long step) || step > upToStep) continue;
            var fields = Csv.Split(line);
            if (fields.Count < 7 + 2 * labels.Count || fields[3] != "1") continue;
            double score = double.Parse(fields[4], CultureInfo.InvariantCulture);
            // Empty parts: a repeat answered from a budget's cache rebuilt on an earlier resume (its score is exact).
            var values = fields.Skip(7).Take(2 * labels.Count).Select(v => v.Length == 0 ? double.NaN : double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
            remember(new RankedMolecule(0, fields[2], score, (int)step, stage, fields[6],
                [.. Enumerable.Range(0, labels.Count).Select(c => values[2 * c + 1])], [.. Enumerable.Range(0, labels.Count).Select(c => values[2 * c])]));
        }
    }

    private static void WriteRanked(string path, IReadOnlyList<RankedMolecule> ranked, IReadOnlyList<string> labels)
    {
        var text = new StringBuilder("rank,smiles,score,step,stage,scaffold," + string.Join(",", labels.Select(Csv.Quote)) + "\n");
        foreach (var m in ranked)
        {
            text.Append(m.Rank.ToString(CultureInfo.InvariantCulture)).Append(',').Append(Csv.Quote(m.Canonical)).Append(',').Append(F(m.Score)).Append(',')
                .Append(m.Step.ToString(CultureInfo.InvariantCulture)).Append(',').Append(Csv.Quote(m.Stage)).Append(',').Append(Csv.Quote(m.Scaffold));
            foreach (double raw in m.Raw) text.Append(',').Append(F(raw));
            text.Append('\n');
        }
        AtomicFile.WriteText(path, text.ToString());
    }

    private static string F(double value) => double.IsNaN(value) ? "" : value.ToString("G6", CultureInfo.InvariantCulture);

    // The score a resumed run reloads: rounded, positional isomers that tie exactly (same QED and weight, as genetic
    // mutations often make) would rank differently after a resume than in an uninterrupted run.
    private static string Exact(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
