using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using BioForge.IO;
using BioForge.Models.Llama;
using BioForge.Runtime;
using BioForge.Tokenizers;
using BioForge.Training;
using static TorchSharp.torch;

namespace BioForge.Discovery;

public sealed record OptimizeStepReport(int Stage, string StageName, int Step, int StageStep, int StageSteps, double MeanScore, double ValidFraction,
    double NewFraction, int Scaffolds, double Loss, double BestScore, TimeSpan Elapsed);

public sealed record RankedMolecule(int Rank, string Canonical, double Score, int Step, string Stage, string Scaffold, double[] Raw, double[] Transformed);

public sealed record OptimizeResult(string Directory, int Steps, IReadOnlyList<string> ComponentLabels, IReadOnlyList<RankedMolecule> Ranked,
    IReadOnlyList<string> StageEndings, bool Interrupted);

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
/// Goal-directed generation by reinforcement learning, as REINVENT (Olivecrona et al. 2017; Blaschke et al. 2020):
/// an agent, initialised from the SMILES prior, samples a batch; each molecule is scored; the agent's log-likelihood
/// is pulled towards the augmented likelihood log p_prior + σ · score, loss = (log p_prior + σ·S − log p_agent)², so
/// it learns to make high scorers while staying close to the chemistry the prior knows. The best molecules are
/// replayed; a scaffold diversity filter zeroes the score of over-visited chemotypes. Stages run one after another,
/// each with its own scoring function and termination; checkpoints allow resuming.
/// </summary>
public static class MoleculeOptimizer
{
    private const string StateFile = "optimizer_state.json";
    private const string AgentDirectory = "agent";
    private const string CheckpointDirectory = "checkpoint";

    private sealed record Replayed(string Canonical, long[] Tokens, bool Finished, double Score, double PriorLogLikelihood);

    private sealed record RunState
    {
        public int Stage { get; init; }
        public int StageStep { get; init; }
        public int Step { get; init; }
        public int CollapseCount { get; init; }
        public List<Replayed> Memory { get; init; } = [];
        public DiversityFilterState Filter { get; init; } = new([], []);
        public List<string> StageEndings { get; init; } = [];
    }

    public static OptimizeResult Run(OptimizeConfig config, OptimizeOptions options)
    {
        var compute = ComputeOptions.Resolve(options.Device, "fp32", options.Threads);
        string output = config.Output.Dir;
        string checkpoint = Path.Combine(output, CheckpointDirectory);
        RunState? resumed = null;
        if (options.Resume)
        {
            if (!File.Exists(Path.Combine(checkpoint, StateFile))) throw new BioForgeException($"--resume: {checkpoint} holds no checkpoint");
            resumed = JsonSerializer.Deserialize<RunState>(File.ReadAllText(Path.Combine(checkpoint, StateFile)), YamlConfig.Serializer);
        }
        else if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any())
            throw new BioForgeException($"output.dir {output} is not empty; pass --resume to continue that run, or choose another directory");

        using var prior = LlamaCheckpoint.Load(config.Prior.Model, compute.Device, ScalarType.Float32);
        var vocabulary = prior.Vocabulary ?? throw new BioForgeException($"prior.model {config.Prior.Model}: no {SmilesVocabulary.FileName}; the prior must be a SMILES language model");
        using var agent = LlamaCheckpoint.Load(resumed is null ? config.Prior.Model : Path.Combine(checkpoint, AgentDirectory), compute.Device, ScalarType.Float32);
        prior.Model.eval();
        foreach (var p in prior.Model.parameters()) p.requires_grad = false;
        using var optimizer = new FlatAdamW(agent.Model.named_parameters(), new AdamWOptions { Beta1 = 0.9, Beta2 = 0.999, WeightDecay = 0 });
        if (resumed is not null) LoadOptimizer(optimizer, checkpoint, resumed.Step);

        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "run_config.json"), config.ToJsonText() + "\n");
        var state = resumed ?? new RunState();
        var clock = Stopwatch.StartNew();
        var sampling = new SamplingOptions { Temperature = config.Sampling.Temperature, MaxNewTokens = config.Sampling.MaxLength };
        var best = new Dictionary<string, RankedMolecule>(StringComparer.Ordinal);
        bool interrupted = false;
        using var metrics = OpenAppending(Path.Combine(output, "metrics.jsonl"), state.Step);

        for (int stageIndex = state.Stage; stageIndex < config.Stages.Count && !interrupted; stageIndex++)
        {
            var stage = config.Stages[stageIndex];
            string stageName = stage.Name.Length > 0 ? stage.Name : $"stage{stageIndex + 1}";
            using var scoring = new ScoringFunction(stage.Components, stage.Aggregate, compute.Device);
            var labels = stage.Components.Select(c => c.Label).ToList();
            bool continuing = resumed is not null && stageIndex == resumed.Stage;
            var filter = new DiversityFilter(config.DiversityFilter);
            if (continuing) filter.Restore(state.Filter);
            var memory = continuing ? state.Memory : [];
            int stageStep = continuing ? state.StageStep : 0, collapse = continuing ? state.CollapseCount : 0;
            string scoresPath = Path.Combine(output, $"scores_{stageIndex + 1}_{Safe(stageName)}.csv");
            using var scores = OpenScores(scoresPath, labels, continuing ? state.Step : -1);
            if (stageIndex == config.Stages.Count - 1 && continuing) Reload(scoresPath, labels, stageName, best);
            options.OnInfo?.Invoke($"stage {stageIndex + 1}/{config.Stages.Count} '{stageName}': {string.Join(", ", labels)} ({stage.Aggregate} mean), up to {stage.MaxSteps} steps");
            string ending = $"{stageName}: reached max_steps ({stage.MaxSteps})";
            while (stageStep < stage.MaxSteps)
            {
                if (options.Cancellation.IsCancellationRequested)
                {
                    interrupted = true;
                    break;
                }
                int step = state.Step + 1;
                var (scored, learned, loss, newFraction) = Step(config, agent, prior, vocabulary, scoring, filter, memory, optimizer, sampling, step);
                stageStep++;
                state = state with { Step = step };
                int valid = scored.Count(m => m.Valid);
                double mean = scored.Average(m => m.Score);
                collapse = newFraction < stage.MinUnique ? collapse + 1 : 0;
                foreach (var m in scored.Where(m => m.Valid))
                {
                    if (stageIndex != config.Stages.Count - 1) continue;
                    if (!best.TryGetValue(m.Canonical!, out var known) || known.Score < m.Score)
                        best[m.Canonical!] = new RankedMolecule(0, m.Canonical!, m.Score, step, stageName, m.Scaffold ?? "", m.Raw, m.Transformed);
                }
                WriteScores(scores, step, scored, learned);
                var report = new OptimizeStepReport(stageIndex + 1, stageName, step, stageStep, stage.MaxSteps, mean, valid / (double)scored.Count,
                    newFraction, filter.Scaffolds, loss, scored.Max(m => m.Score), clock.Elapsed);
                metrics.WriteLine(new JsonObject
                {
                    ["step"] = step,
                    ["stage"] = stageIndex + 1,
                    ["mean_score"] = Math.Round(mean, 5),
                    ["valid"] = Math.Round(report.ValidFraction, 4),
                    ["unique"] = Math.Round(newFraction, 4),
                    ["scaffolds"] = filter.Scaffolds,
                    ["loss"] = Math.Round(loss, 4),
                    ["elapsed_seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 2),
                }.ToJsonString());
                options.OnStep?.Invoke(report);
                bool done = stageStep >= stage.MinSteps && mean >= stage.MaxScore;
                if (done) ending = $"{stageName}: mean score {mean:F3} reached max_score {stage.MaxScore} at step {stageStep}";
                if (collapse >= stage.CollapsePatience)
                {
                    done = true;
                    ending = $"{stageName}: mode collapse at step {stageStep} (under {stage.MinUnique:P0} distinct valid molecules for {collapse} steps)";
                }
                var stageEndings = done || stageStep >= stage.MaxSteps ? [.. state.StageEndings, ending] : state.StageEndings;
                int nextStage = done || stageStep >= stage.MaxSteps ? stageIndex + 1 : stageIndex;
                state = state with
                {
                    Stage = nextStage,
                    StageStep = nextStage == stageIndex ? stageStep : 0,
                    CollapseCount = nextStage == stageIndex ? collapse : 0,
                    Memory = nextStage == stageIndex ? memory : [],
                    Filter = nextStage == stageIndex ? filter.State() : new([], []),
                    StageEndings = stageEndings,
                };
                if (step % config.Output.CheckpointEvery == 0 || nextStage != stageIndex) SaveCheckpoint(checkpoint, agent, optimizer, state);
                if (done) break;
            }
            if (!interrupted) options.OnInfo?.Invoke(ending);
        }
        if (interrupted) SaveCheckpoint(checkpoint, agent, optimizer, state);

        var ranked = best.Values.OrderByDescending(m => m.Score).ThenBy(m => m.Canonical, StringComparer.Ordinal).Take(config.Output.Ranked)
            .Select((m, i) => m with { Rank = i + 1 }).ToList();
        var finalLabels = config.Stages[^1].Components.Select(c => c.Label).ToList();
        WriteRanked(Path.Combine(output, "ranked.csv"), ranked, finalLabels);
        if (!interrupted) SaveAgent(Path.Combine(output, AgentDirectory), agent);
        return new OptimizeResult(output, state.Step, finalLabels, ranked, state.StageEndings, interrupted);
    }

    /// <summary>One REINVENT step: sample, score, filter, augmented-likelihood loss with replay, Adam update.</summary>
    /// <returns>The scored batch, the scores learned from (after the diversity filter), the loss, and the fraction of the
    /// batch that are distinct valid molecules not seen in earlier steps (low: the agent is collapsing).</returns>
    private static (IReadOnlyList<ScoredMolecule> Scored, double[] Learned, double Loss, double NewFraction) Step(
        OptimizeConfig config, LlamaCheckpoint agent, LlamaCheckpoint prior, SmilesVocabulary vocabulary, ScoringFunction scoring, DiversityFilter filter,
        List<Replayed> memory, FlatAdamW optimizer, SamplingOptions sampling, int step)
    {
        agent.Model.eval(); // no dropout in sampling or in the likelihood the loss differentiates
        using var generator = new Generator(StatelessRandom.Hash(config.Seed, step, 0x5A3B1E), agent.Device);
        var batch = Sampling.Sample(agent.Model, config.Sampling.BatchSize, sampling, generator);
        var smiles = batch.Select(s => s.Finished ? vocabulary.DecodeRaw(s.Tokens) : "").ToList();
        var scored = scoring.Score(smiles);
        double newFraction = scored.Where(m => m.Valid && !filter.Seen(m.Canonical!)).Select(m => m.Canonical).Distinct().Count() / (double)scored.Count;
        var learned = filter.Apply(scored);

        // Experience replay: a few of the best earlier molecules join the loss with their stored scores.
        var random = new Random((int)(StatelessRandom.Hash(config.Seed, step, 0xE4) & int.MaxValue));
        var replay = memory.Count == 0 ? [] : memory.OrderBy(_ => random.Next()).Take(config.Learning.ReplaySamples).ToList();

        using var scope = NewDisposeScope();
        var sequences = batch.Concat(replay.Select(r => new SampledSequence(r.Tokens, r.Finished, 0))).ToList();
        Tensor priorLogLikelihood;
        using (no_grad()) priorLogLikelihood = Sampling.LogLikelihood(prior.Model, batch);
        var priorAll = cat([priorLogLikelihood, tensor(replay.Select(r => (float)r.PriorLogLikelihood).ToArray()).to(agent.Device)], 0);
        var scoresAll = tensor(learned.Select(s => (float)s).Concat(replay.Select(r => (float)r.Score)).ToArray()).to(agent.Device);
        var agentLogLikelihood = Sampling.LogLikelihood(agent.Model, sequences);
        var augmented = priorAll + scoresAll * config.Learning.Sigma;
        var loss = (augmented - agentLogLikelihood).square().mean();
        loss.backward();
        optimizer.Update(config.Learning.Lr);
        optimizer.ZeroGrad();

        var priorValues = priorLogLikelihood.cpu().data<float>().ToArray();
        for (int i = 0; i < batch.Count; i++)
        {
            if (learned[i] <= 0 || scored[i].Canonical is not { } canonical || memory.Any(r => r.Canonical == canonical)) continue;
            memory.Add(new Replayed(canonical, batch[i].Tokens, batch[i].Finished, learned[i], priorValues[i]));
        }
        if (memory.Count > config.Learning.ReplaySize)
        {
            var kept = memory.OrderByDescending(r => r.Score).Take(config.Learning.ReplaySize).ToList();
            memory.Clear();
            memory.AddRange(kept);
        }
        return (scored, learned, loss.item<float>(), newFraction);
    }

    private static string Safe(string name) => new([.. name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' ? c : '_')]);

    private static StreamWriter OpenAppending(string path, long keepUpToStep)
    {
        if (File.Exists(path))
        {
            var kept = File.ReadAllLines(path).Where(l => JsonNode.Parse(l)?["step"]?.GetValue<long>() <= keepUpToStep).ToList();
            AtomicFile.WriteText(path, kept.Count == 0 ? "" : string.Join("\n", kept) + "\n");
        }
        return new StreamWriter(path, append: true) { AutoFlush = true };
    }

    /// <summary>The stage's CSV, truncated to the resumed step (rows past it belong to a lost future).</summary>
    private static StreamWriter OpenScores(string path, IReadOnlyList<string> labels, long keepUpToStep)
    {
        string header = "step,smiles,canonical,valid,score,learned_score,scaffold," + string.Join(",", labels.SelectMany(l => new[] { Csv.Quote(l), Csv.Quote(l + "_raw") }));
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

    private static void WriteScores(StreamWriter writer, int step, IReadOnlyList<ScoredMolecule> scored, double[] learned)
    {
        var text = new StringBuilder();
        for (int i = 0; i < scored.Count; i++)
        {
            var m = scored[i];
            text.Append(step.ToString(CultureInfo.InvariantCulture)).Append(',').Append(Csv.Quote(m.Smiles)).Append(',').Append(Csv.Quote(m.Canonical ?? ""))
                .Append(',').Append(m.Valid ? '1' : '0').Append(',').Append(F(m.Score)).Append(',').Append(F(learned[i])).Append(',').Append(Csv.Quote(m.Scaffold ?? ""));
            for (int c = 0; c < m.Raw.Length; c++) text.Append(',').Append(F(m.Transformed[c])).Append(',').Append(F(m.Raw[c]));
            text.Append('\n');
        }
        writer.Write(text.ToString());
    }

    /// <summary>On resume, the final stage's best molecules so far come back from its CSV.</summary>
    private static void Reload(string path, IReadOnlyList<string> labels, string stage, Dictionary<string, RankedMolecule> best)
    {
        if (!File.Exists(path)) return;
        foreach (var (_, fields) in Csv.ReadRows(path, out _))
        {
            if (fields[3] != "1") continue;
            double score = double.Parse(fields[4], CultureInfo.InvariantCulture);
            if (best.TryGetValue(fields[2], out var known) && known.Score >= score) continue;
            var values = fields.Skip(7).Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
            best[fields[2]] = new RankedMolecule(0, fields[2], score, int.Parse(fields[0], CultureInfo.InvariantCulture), stage, fields[6],
                [.. Enumerable.Range(0, labels.Count).Select(c => values[2 * c + 1])], [.. Enumerable.Range(0, labels.Count).Select(c => values[2 * c])]);
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

    /// <summary>Agent weights, optimizer moments and the run state, written to a temporary directory and swapped in.</summary>
    private static void SaveCheckpoint(string directory, LlamaCheckpoint agent, FlatAdamW optimizer, RunState state)
    {
        string temp = directory + ".tmp";
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);
        agent.Save(Path.Combine(temp, AgentDirectory));
        using (var scope = NewDisposeScope())
            SafetensorsWriter.Write(Path.Combine(temp, CheckpointStore.OptimizerFile),
                [.. optimizer.State().Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.detach().cpu()))],
                new Dictionary<string, string> { ["step"] = optimizer.Step.ToString(CultureInfo.InvariantCulture) });
        File.WriteAllText(Path.Combine(temp, StateFile), JsonSerializer.Serialize(state, YamlConfig.Serializer));
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        Directory.Move(temp, directory);
    }

    private static void LoadOptimizer(FlatAdamW optimizer, string checkpoint, int step)
    {
        string path = Path.Combine(checkpoint, CheckpointStore.OptimizerFile);
        using var file = SafetensorsFile.Open(path);
        using var scope = NewDisposeScope();
        optimizer.LoadState(file.Entries.ToDictionary(e => e.Name, e => file.ToTensor(e.Name)), step, path);
    }

    private static void SaveAgent(string directory, LlamaCheckpoint agent)
    {
        string temp = directory + ".tmp";
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        agent.Save(temp);
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        Directory.Move(temp, directory);
    }
}
