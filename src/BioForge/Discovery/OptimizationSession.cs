using System.Diagnostics;
using BioForge.Chem;
using BioForge.Generation;
using BioForge.Models.Llama;
using BioForge.Runtime;
using BioForge.Tokenizers;
using BioForge.Training;
using static TorchSharp.torch;

namespace BioForge.Discovery;

/// <summary>Where a run stands between steps: with the agent's weights and the optimizer's moments, the whole state.</summary>
public sealed record OptimizationState
{
    public int Stage { get; init; }
    public int StageStep { get; init; }
    public int Step { get; init; }
    public int CollapseCount { get; init; }
    /// <summary>Steps in a row that left the 100 best scores unchanged (a stage's <c>patience</c>).</summary>
    public int StallCount { get; init; }
    public List<ReplayedMolecule> Memory { get; init; } = [];
    public DiversityFilterState Filter { get; init; } = new([], []);
    public List<string> StageEndings { get; init; } = [];
    /// <summary>Molecules scored so far, all stages: the agent's samples and any bred children.</summary>
    public int Scored { get; init; }
    /// <summary>Seconds spent in earlier sessions of this run (resumes add to it).</summary>
    public double ElapsedSeconds { get; init; }
    /// <summary>Searches restarted from the prior (<c>on_stall = "restart"</c>), and the oracle calls made when the current one began.</summary>
    public int Restarts { get; init; }
    public int SearchStartCall { get; init; }
}

/// <summary>
/// Where one step's time went, in seconds: sampling the batch, scoring it (with the diversity filter), the prior's
/// likelihood pass, the agent's pass with its backward pass and update, the extra updates (<c>replay_updates</c> and
/// Augmented Memory's rounds; 0 without them), and the genetic exploration's breeding and scoring of children (0 without it). Measured on the host: on a GPU the passes run asynchronously and part of their time shows up in the next
/// phase that waits for a result.
/// </summary>
public sealed record StepTimings(double Sample, double Score, double Prior, double Agent, double Augment = 0, double Breed = 0);

/// <param name="Bucket">Its diversity-filter bucket (null without a filter, and in checkpoints written before it was kept):
/// Augmented Memory purges the memory of molecules whose bucket is full.</param>
public sealed record ReplayedMolecule(string Canonical, long[] Tokens, bool Finished, double Score, double PriorLogLikelihood, string? Bucket = null);

/// <summary>One step's outcome: what was sampled and scored, what was learned from, and whether its stage ended.</summary>
/// <remarks><paramref name="Calls"/> are the oracle calls the step made when the run has a budget (empty otherwise).
/// The first <paramref name="Sampled"/> of <paramref name="Scored"/> are the agent's samples, the rest bred children.
/// <paramref name="Restart"/> says why the search started again from the prior after this step (null when it did not).</remarks>
public sealed record OptimizationStep(int StageIndex, string StageName, IReadOnlyList<string> Labels, IReadOnlyList<ScoredMolecule> Scored,
    int Sampled, double[] Learned, OptimizeStepReport Report, string? StageEnding, IReadOnlyList<OracleCall> Calls, string? Restart = null);

/// <summary>
/// Goal-directed generation by reinforcement learning, as REINVENT (Olivecrona et al. 2017; Blaschke et al. 2020),
/// entirely in memory: an agent, initialised from the SMILES prior, samples a batch; each molecule is scored; the
/// agent's log-likelihood is pulled towards the augmented likelihood log p_prior + σ · score, loss =
/// (log p_prior + σ·S − log p_agent)², so it learns to make high scorers while staying close to the chemistry the prior
/// knows. The best molecules are replayed; a scaffold diversity filter zeroes the score of over-visited chemotypes.
/// With <c>strategy = "augmented_memory"</c> (Guo &amp; Schwaller, JACS Au 2024) each step then makes
/// <c>augmentation_rounds</c> more updates on the batch and the whole memory, every molecule re-written as a random
/// SMILES of itself with its prior likelihood recomputed for that spelling: the scores already paid for teach the agent
/// again without new oracle calls, and the many spellings keep it from memorising one string. Memory molecules whose
/// scaffold the diversity filter has filled are purged first, so the replay does not pull the agent back to them.
/// With <c>genetic_offspring</c> &gt; 0 each step also breeds that many children of the best molecules so far by graph
/// crossover and mutation (<see cref="GraphGeneticOperators"/>; the genetic exploration of Genetic GFN, Kim et al. 2024):
/// they are scored like samples and the agent learns from them in the same update, off-policy like replayed molecules.
/// With <c>completion_offspring</c> &gt; 0 the agent also writes children itself: the continuation of a cut random
/// spelling of one of the best molecules.
/// Stages run one after another, each with its own scoring function and termination. Files are the business of
/// <see cref="MoleculeOptimizer"/>; a server drives a session directly from the models it holds.
/// </summary>
public sealed class OptimizationSession : IDisposable
{
    private readonly OptimizeConfig config;
    private readonly LlamaCheckpoint prior;
    private readonly SmilesVocabulary vocabulary;
    private readonly SamplingOptions sampling;
    private readonly SmilesGrammar? grammar;
    private readonly Dictionary<string, RankedMolecule> best = new(StringComparer.Ordinal);
    private readonly Device device;
    private ScoringFunction? scoring;
    private DiversityFilter? filter;
    private int scoringStage = -1;
    private readonly OracleBudget? budget;
    private readonly GraphGeneticOperators? genetics;
    private readonly List<(string Canonical, SampledSequence Tokens)> inception = [];
    private readonly HashSet<string> inputs = new(StringComparer.Ordinal); // the inception molecules' canonical SMILES

    /// <summary>The agent (owned by the session) and its optimizer, for checkpoints.</summary>
    public LlamaCheckpoint Agent { get; }
    public FlatAdamW Optimizer { get; }
    public OptimizationState State { get; private set; }
    public bool Finished => State.Stage >= config.Stages.Count;
    /// <summary>The oracle budget (<c>[budget] oracle_calls</c>), or null when the run has none.</summary>
    public OracleBudget? Budget => budget;

    /// <param name="prior">Not owned and not changed: only read, under no_grad (the server passes the model it serves).</param>
    /// <param name="agent">Owned: a copy of the prior, or the agent of a checkpoint; disposed also when the constructor throws.</param>
    /// <param name="resumed">The state of a checkpoint, with <paramref name="agent"/> and the optimizer moments loaded by the caller.</param>
    public OptimizationSession(OptimizeConfig config, LlamaCheckpoint prior, LlamaCheckpoint agent, OptimizationState? resumed = null)
    {
        this.config = config;
        this.prior = prior;
        Agent = agent;
        device = agent.Device;
        try
        {
            vocabulary = prior.Vocabulary ?? throw new BioForgeException($"prior.model {config.Prior.Model}: no {SmilesVocabulary.FileName}; the prior must be a SMILES language model");
            // A molecule is its begin token and up to max_length more, each at a position the prior was trained for.
            if (config.Sampling.MaxLength > prior.Config.MaxPositionEmbeddings - 1)
                throw new BioForgeException($"sampling.max_length {config.Sampling.MaxLength}: the prior takes {prior.Config.MaxPositionEmbeddings} positions, "
                    + $"so at most {prior.Config.MaxPositionEmbeddings - 1} tokens after its begin token");
            for (int i = 0; i < config.Learning.Inception.Count; i++)
            {
                string smiles = config.Learning.Inception[i];
                if (!Molecule.TryFromSmiles(smiles, out var molecule, out string? error))
                    throw new BioForgeException($"learning.inception[{i}]: '{smiles}' is not a valid SMILES: {error}");
                string canonical;
                using (molecule) canonical = molecule!.ToSmiles();
                if (!inputs.Add(canonical)) continue;
                var tokens = Spelled(canonical, vocabulary, config.Sampling.MaxLength)
                    ?? throw new BioForgeException($"learning.inception[{i}]: '{smiles}' cannot be written in the prior's tokens within sampling.max_length ({config.Sampling.MaxLength})");
                inception.Add((canonical, tokens));
            }
            // The server's prior is the served model, which the device thread runs meanwhile: it is changed only if it
            // must be (loaded models are in eval mode), and its likelihoods are computed under no_grad, so its
            // parameters need no freezing.
            if (prior.Model.training) prior.Model.eval();
            // Last: its moments are four copies of the agent's parameters (a refused seed molecule must not leave them).
            Optimizer = new FlatAdamW(agent.Model.named_parameters(), new AdamWOptions { Beta1 = 0.9, Beta2 = 0.999, WeightDecay = 0 });
        }
        catch
        {
            agent.Dispose();
            throw;
        }
        grammar = config.Sampling.Grammar == "smiles" ? new SmilesGrammar(vocabulary) : null;
        sampling = new SamplingOptions { Temperature = config.Sampling.Temperature, MaxNewTokens = config.Sampling.MaxLength, Grammar = grammar };
        State = resumed ?? new OptimizationState();
        if (config.Budget.OracleCalls > 0) budget = new OracleBudget(config.Budget.OracleCalls);
        if (config.Learning.GeneticOffspring > 0) genetics = new GraphGeneticOperators();
    }

    /// <summary>A resumed run's oracle calls up to its checkpoint (from the run's files): the count goes on from them.</summary>
    public void RestoreCalls(IReadOnlyList<OracleCall> calls)
    {
        if (budget is null) return;
        int stage = Math.Min(State.Stage, config.Stages.Count - 1);
        budget.Restore(calls, stage, State.Step - State.StageStep + 1, config.Stages[stage].Components.Count);
    }

    /// <summary>The final stage's best molecules so far, one per canonical SMILES, best first.</summary>
    public IReadOnlyList<RankedMolecule> Ranked(int count) =>
        [.. best.Values.OrderByDescending(m => m.Score).ThenBy(m => m.Canonical, StringComparer.Ordinal).Take(count).Select((m, i) => m with { Rank = i + 1 })];

    /// <summary>Adds molecules found before a resume (from the run's files) to the ranking.</summary>
    public void Remember(RankedMolecule molecule)
    {
        // The run's inputs are no finds when sampled or bred again: a user's own active came back ranked as "optimized".
        if (inputs.Contains(molecule.Canonical)) return;
        if (!best.TryGetValue(molecule.Canonical, out var known) || known.Score < molecule.Score) best[molecule.Canonical] = molecule;
    }

    public IReadOnlyList<string> Labels(int stage) => [.. config.Stages[stage].Components.Select(c => c.Label)];

    public static string StageName(OptimizeConfig config, int stage) => config.Stages[stage].Name.Length > 0 ? config.Stages[stage].Name : $"stage{stage + 1}";

    /// <summary>One REINVENT step of the current stage; advances to the next stage when this one ends.</summary>
    public OptimizationStep Step(TimeSpan elapsed)
    {
        if (Finished) throw new InvalidOperationException("every stage has ended");
        int stageIndex = State.Stage;
        var stage = config.Stages[stageIndex];
        string stageName = StageName(config, stageIndex);
        EnterStage(stageIndex);
        int step = State.Step + 1, stageStep = State.StageStep + 1;
        var (scored, sampled, learned, loss, newFraction, calls, timings) = Learn(step, stageIndex);
        int collapse = newFraction < stage.MinUnique ? State.CollapseCount + 1 : 0;
        // mol_opt counts only after its first 1000 calls. A top 100 that still holds zeros has not converged: the search
        // has barely begun (valsartan_smarts scores 0 until a molecule has its substructure, and a first find may score
        // 1e-7: stopping five steps later cut a run at 3,607 calls), so the search goes on.
        int since = State.SearchStartCall;
        int stall = budget is not null && budget.Found(100) && budget.Used - since > 1000 && !budget.TopChanged(calls.Count, since: since) ? State.StallCount + 1 : 0;
        var agentSamples = scored.Take(sampled).ToList(); // the agent's own batch, without bred children
        // Empty only when a stage's inception molecules spent the rest of the budget: the run ends at this step.
        double mean = agentSamples.Count == 0 ? 0 : agentSamples.Average(m => m.Score);
        if (stageIndex == config.Stages.Count - 1)
            foreach (var m in scored.Where(m => m.Valid))
                Remember(new RankedMolecule(0, m.Canonical!, m.Score, step, stageName, m.Scaffold ?? "", m.Raw, m.Transformed));

        string? ending = null, restart = null;
        bool endsRun = false;
        bool stalled = stage.Patience > 0 && stall >= stage.Patience;
        if (collapse >= stage.CollapsePatience)
            ending = $"{stageName}: mode collapse at step {stageStep} (under {stage.MinUnique:P0} distinct valid molecules for {collapse} steps)";
        // A top 10 of perfect scores cannot rise, so another search there would spend calls for nothing.
        else if (stalled && stage.OnStall == "restart" && budget is { Exhausted: false } && !budget.AtCeiling())
            restart = $"{stageName}: the search's 100 best scores did not change for {stall} steps; it starts again from the prior at {budget.Used} calls";
        else if (stalled)
            ending = $"{stageName}: the 100 best scores did not change for {stall} steps after {budget!.Used} calls (early stop, as mol_opt)";
        else if (stageStep >= stage.MinSteps && mean >= stage.MaxScore) ending = $"{stageName}: mean score {mean:F3} reached max_score {stage.MaxScore} at step {stageStep}";
        else if (stageStep >= stage.MaxSteps)
        {
            endsRun = stage.MaxStepsEndsRun;
            ending = $"{stageName}: reached max_steps ({stage.MaxSteps})" + (endsRun ? "; the run ends" : "");
        }
        // The budget ends the whole run, whatever stage it is in.
        if (budget is { Exhausted: true })
        {
            endsRun = true;
            ending = $"{stageName}: the oracle budget is spent ({budget.Limit} calls)";
        }
        bool next = ending is not null;
        State = State with
        {
            Step = step,
            Stage = endsRun ? config.Stages.Count : next ? stageIndex + 1 : stageIndex,
            StageStep = next ? 0 : stageStep,
            CollapseCount = next ? 0 : collapse,
            StallCount = next ? 0 : stall,
            Memory = next ? [] : State.Memory,
            Filter = next && !config.DiversityFilter.KeepBetweenStages ? new([], []) : filter!.State(),
            StageEndings = next ? [.. State.StageEndings, ending!] : State.StageEndings,
            Scored = State.Scored + scored.Count,
        };
        if (restart is not null) Restart();
        var report = new OptimizeStepReport(stageIndex + 1, stageName, step, stageStep, stage.MaxSteps, mean,
            agentSamples.Count == 0 ? 0 : agentSamples.Count(m => m.Valid) / (double)agentSamples.Count,
            newFraction, scored.Where(m => m.Scaffold is not null).Select(m => m.Scaffold).Distinct().Count(), loss, scored.Count == 0 ? 0 : scored.Max(m => m.Score), elapsed, budget?.Used ?? 0, timings);
        return new OptimizationStep(stageIndex, stageName, Labels(stageIndex), scored, sampled, learned, report, ending, calls, restart);
    }

    /// <summary>
    /// <c>on_stall = "restart"</c>: the agent becomes the prior again (weights and optimizer moments) and forgets its
    /// replay memory, so neither the update nor the genetic parents pull it back to the series it stalled in; the
    /// budget, its cache of scored molecules and the ranking stay.
    /// </summary>
    private void Restart()
    {
        using (no_grad())
            foreach (var ((_, weight), (_, prior)) in Agent.Model.named_parameters().Zip(this.prior.Model.named_parameters()))
                weight.copy_(prior);
        Optimizer.Reset();
        State = State with { Memory = [], StallCount = 0, CollapseCount = 0, Restarts = State.Restarts + 1, SearchStartCall = budget!.Used };
    }

    /// <summary>The stage's scoring function and diversity filter (restored from the state when resuming mid-stage).</summary>
    private void EnterStage(int stageIndex)
    {
        if (scoringStage == stageIndex) return;
        scoring?.Dispose();
        var stage = config.Stages[stageIndex];
        scoring = new ScoringFunction(stage.Components, stage.Aggregate, device);
        filter = new DiversityFilter(config.DiversityFilter);
        filter.Restore(State.Filter);
        scoringStage = stageIndex;
    }

    /// <summary>Sample, score, filter, augmented-likelihood loss with replay, Adam update.</summary>
    /// <returns>The scored batch (the agent's <c>Sampled</c> samples, then any bred children), the scores learned from
    /// (after the diversity filter), the loss, and the fraction of the agent's samples that are distinct valid molecules
    /// not seen in earlier steps (low: the agent is collapsing).</returns>
    private (IReadOnlyList<ScoredMolecule> Scored, int Sampled, double[] Learned, double Loss, double NewFraction, IReadOnlyList<OracleCall> Calls, StepTimings Timings) Learn(int step, int stage)
    {
        var clock = Stopwatch.StartNew();
        double Lap()
        {
            double seconds = clock.Elapsed.TotalSeconds;
            clock.Restart();
            return seconds;
        }
        var inceptionCalls = State.StageStep == 0 && inception.Count > 0 ? Inception(step, stage) : [];
        Agent.Model.eval(); // no dropout in sampling or in the likelihood the loss differentiates
        using var generator = Sampling.CreateGenerator(StatelessRandom.Hash(config.Seed, step, 0x5A3B1E));
        var batch = Sampling.Sample(Agent.Model, config.Sampling.BatchSize, sampling, generator);
        if (config.Sampling.UniqueSequences)
        {
            var distinct = new HashSet<string>(StringComparer.Ordinal);
            batch = [.. batch.Where(s => distinct.Add(string.Join(' ', s.Tokens)))];
        }
        var smiles = batch.Select(s => s.Finished ? vocabulary.DecodeRaw(s.Tokens) : "").ToList();
        double sampleSeconds = Lap();
        IReadOnlyList<ScoredMolecule> scored;
        IReadOnlyList<OracleCall> calls = [];
        if (budget is null) scored = scoring!.Score(smiles);
        else
        {
            (scored, calls) = budget.Score(smiles, step, stage, scoring!);
            if (scored.Count < batch.Count) batch = [.. batch.Take(scored.Count)]; // the last batch, cut where the budget ran out
        }
        double newFraction = scored.Count == 0 ? 0 : scored.Where(m => m.Valid && !filter!.Seen(m.Canonical!)).Select(m => m.Canonical).Distinct().Count() / (double)scored.Count;
        bool[]? repeats = config.Learning.SkipRepeats ? Repeats(scored, filter!) : null;
        var learned = filter!.Apply(scored, out var buckets);
        int sampled = scored.Count;
        double scoreSeconds = Lap();
        if ((genetics is not null || config.Learning.CompletionOffspring > 0) && budget is not { Exhausted: true })
        {
            var (childBatch, childScored, childCalls) = Breed(step, stage, scored, learned);
            var childLearned = filter.Apply(childScored, out var childBuckets);
            batch = [.. batch, .. childBatch];
            scored = [.. scored, .. childScored];
            learned = [.. learned, .. childLearned];
            buckets = [.. buckets, .. childBuckets];
            if (repeats is not null) repeats = [.. repeats, .. new bool[childScored.Count]]; // bred children are new to the run
            calls = [.. calls, .. childCalls];
        }
        double breedSeconds = Lap();

        // Experience replay: a few of the best earlier molecules join the loss with their stored scores.
        var memory = State.Memory;
        var random = new Random((int)(StatelessRandom.Hash(config.Seed, step, 0xE4) & int.MaxValue));
        var replay = memory.Count == 0 ? [] : memory.OrderBy(_ => random.Next()).Take(config.Learning.ReplaySamples).ToList();

        // Augmented Hill-Climb learns from the best part of the batch only; REINVENT and Augmented Memory from all of it.
        int[]? climbers = config.Learning.Strategy == "ahc" ? HillClimbers(learned, config.Learning.TopFraction, repeats)
            : repeats is null ? null : [.. Enumerable.Range(0, batch.Count).Where(i => !repeats[i])];
        var entrants = MemoryEntrants(scored, learned);
        // The prior's likelihood is needed where the agent learns now and where the memory keeps a molecule (it learns
        // from it later); Augmented Memory's extra rounds spell the whole batch again. Augmented Hill-Climb learns from a
        // quarter of the batch, so the prior reads about a third of it instead of all.
        int[] needed = config.Learning.Strategy == "augmented_memory" ? [.. Enumerable.Range(0, batch.Count)]
            : [.. (climbers ?? Enumerable.Range(0, batch.Count)).Union(entrants).Order()];
        var priorValues = new float[batch.Count];
        Array.Fill(priorValues, float.NaN);
        float lossValue = 0;
        double priorSeconds, agentSeconds;
        // Its own scope: the passes' logits (batch × length × vocabulary) are freed before the replay and augmentation
        // rounds run passes of their own.
        using (NewDisposeScope())
        {
            if (needed.Length > 0)
                using (no_grad())
                {
                    var computed = Sampling.LogLikelihood(prior.Model, [.. needed.Select(i => batch[i])], grammar).cpu().data<float>().ToArray();
                    for (int k = 0; k < needed.Length; k++) priorValues[needed[k]] = computed[k];
                }
            priorSeconds = Lap();
            var learnedBatch = climbers is null ? batch : [.. climbers.Select(i => batch[i])];
            var sequences = learnedBatch.Concat(replay.Select(r => new SampledSequence(r.Tokens, r.Finished, 0))).ToList();
            var batchPrior = (climbers ?? Enumerable.Range(0, batch.Count)).Select(i => priorValues[i]);
            var batchScores = climbers is null ? learned : [.. climbers.Select(i => learned[i])];
            if (sequences.Count > 0) // none when every sample repeats and nothing is replayed yet
                lossValue = AugmentedStep(sequences, [.. batchPrior.Concat(replay.Select(r => (float)r.PriorLogLikelihood))],
                    [.. batchScores.Select(s => (float)s).Concat(replay.Select(r => (float)r.Score))]);
            agentSeconds = Lap();
        }

        foreach (int i in entrants)
            memory.Add(new ReplayedMolecule(scored[i].Canonical!, batch[i].Tokens, batch[i].Finished, learned[i], priorValues[i], buckets[i]));
        KeepBest(memory);
        for (int round = 1; round <= config.Learning.ReplayUpdates && memory.Count > 0; round++) ReplayUpdate(step, round, memory);
        if (config.Learning.Strategy == "augmented_memory")
        {
            Purge(memory, filter!);
            for (int round = 1; round <= config.Learning.AugmentationRounds; round++)
                AugmentedUpdate(step, round, batch, climbers, scored, learned, priorValues, memory);
        }
        return (scored, sampled, learned, lossValue, newFraction, [.. inceptionCalls, .. calls], new StepTimings(sampleSeconds, scoreSeconds, priorSeconds, agentSeconds, Lap(), breedSeconds));
    }

    /// <summary>
    /// <c>inception</c> at the start of a stage: the known molecules, scored by the stage's function (oracle calls under
    /// a budget), enter the replay memory with their prior likelihoods, so this step's update replays them and its
    /// genetic exploration breeds from them. They are inputs, not finds: not ranked, not in the step's scores.
    /// </summary>
    private IReadOnlyList<OracleCall> Inception(int step, int stage)
    {
        var smiles = inception.Select(m => m.Canonical).ToList();
        IReadOnlyList<ScoredMolecule> scored;
        IReadOnlyList<OracleCall> calls = [];
        if (budget is null) scored = scoring!.Score(smiles);
        else (scored, calls) = budget.Score(smiles, step, stage, scoring!);
        if (scored.Count == 0) return calls;
        float[] priorValues;
        using (no_grad())
        using (NewDisposeScope())
            priorValues = Sampling.LogLikelihood(prior.Model, [.. inception.Take(scored.Count).Select(m => m.Tokens)], grammar).cpu().data<float>().ToArray();
        var memory = State.Memory;
        for (int i = 0; i < scored.Count; i++)
            if (!memory.Any(r => r.Canonical == inception[i].Canonical))
                memory.Add(new ReplayedMolecule(inception[i].Canonical, inception[i].Tokens.Tokens, true, scored[i].Score, priorValues[i]));
        KeepBest(memory);
        return calls;
    }

    private void KeepBest(List<ReplayedMolecule> memory)
    {
        if (memory.Count <= config.Learning.ReplaySize) return;
        var kept = memory.OrderByDescending(r => r.Score).Take(config.Learning.ReplaySize).ToList();
        memory.Clear();
        memory.AddRange(kept);
    }

    /// <summary>
    /// The genetic exploration: up to <c>genetic_offspring</c> children of parents drawn from the replay memory and this
    /// batch's scoring molecules, rank-based (weight 1 / (0.01·N + rank), as Genetic GFN), each new to the run and
    /// writable by the prior's vocabulary within the sampling length; then scored, with a budget as counted calls.
    /// Parents are drawn with replacement, so a lone find is crossed with itself: where scores are sparse (a required
    /// substructure) the first find is all there is to build on, and waiting for a second left it unexplored.
    /// </summary>
    private (List<SampledSequence> Batch, IReadOnlyList<ScoredMolecule> Scored, IReadOnlyList<OracleCall> Calls) Breed(int step, int stage,
        IReadOnlyList<ScoredMolecule> scored, double[] learned)
    {
        var pool = State.Memory.Select(r => (r.Canonical, r.Score))
            .Concat(scored.Select((m, i) => (Canonical: m.Canonical ?? "", Score: learned[i])).Where(p => p.Canonical.Length > 0 && p.Score > 0))
            .DistinctBy(p => p.Canonical).OrderByDescending(p => p.Score).ThenBy(p => p.Canonical, StringComparer.Ordinal).ToList();
        if (pool.Count == 0) return ([], [], []);
        double[] weights = [.. pool.Select((_, rank) => 1.0 / (0.01 * pool.Count + rank))];
        var random = new Random((int)(StatelessRandom.Hash(config.Seed, step, 0x6E7) & int.MaxValue));
        int wanted = config.Learning.GeneticOffspring;
        var parents = new Dictionary<string, Molecule?>(StringComparer.Ordinal);
        var children = new List<(string Smiles, SampledSequence Tokens)>();
        try
        {
            for (int attempt = 0; genetics is not null && attempt < 4 * wanted && children.Count < wanted; attempt++)
            {
                var first = ParentMolecule(parents, pool[GraphGeneticOperators.Pick(random, weights)].Canonical);
                var second = ParentMolecule(parents, pool[GraphGeneticOperators.Pick(random, weights)].Canonical);
                if (first is null || second is null) continue;
                string? child = genetics!.Reproduce(first, second, config.Learning.MutationRate, random);
                if (child is null || filter!.Seen(child) || children.Any(c => c.Smiles == child)) continue;
                if (Spelled(child, vocabulary, config.Sampling.MaxLength) is { } tokens) children.Add((child, tokens));
            }
        }
        finally
        {
            foreach (var m in parents.Values) m?.Dispose();
        }
        if (config.Learning.CompletionOffspring > 0) children.AddRange(Completions(step, pool, weights, children));
        var smiles = children.Select(c => c.Smiles).ToList();
        if (budget is null) return ([.. children.Select(c => c.Tokens)], scoring!.Score(smiles), []);
        var (childScored, calls) = budget.Score(smiles, step, stage, scoring!);
        return ([.. children.Take(childScored.Count).Select(c => c.Tokens)], childScored, calls);
    }

    /// <summary>
    /// <c>completion_offspring</c> children written by the agent itself: each parent, drawn from the same pool and
    /// weights as the genetic children, is spelled as a random SMILES, cut after at least half of its tokens, and the
    /// agent continues it (one batch, the prefixes as prompts). A change the language model finds plausible, near a
    /// good molecule; kept when valid and new to the run, with the tokens as written.
    /// </summary>
    private List<(string Smiles, SampledSequence Tokens)> Completions(int step, IReadOnlyList<(string Canonical, double Score)> pool, double[] weights,
        IReadOnlyList<(string Smiles, SampledSequence Tokens)> bred)
    {
        int wanted = config.Learning.CompletionOffspring;
        var random = new Random((int)(StatelessRandom.Hash(config.Seed, step, 0xC0) & int.MaxValue));
        var prompts = new List<long[]?>(wanted);
        for (int draw = 0; draw < 2 * wanted && prompts.Count < wanted; draw++)
        {
            string parent = pool[GraphGeneticOperators.Pick(random, weights)].Canonical;
            if (Spelled(parent, vocabulary, config.Sampling.MaxLength) is not { Tokens.Length: >= 2 } spelled) continue;
            int keep = random.Next((spelled.Tokens.Length + 1) / 2, spelled.Tokens.Length);
            prompts.Add(spelled.Tokens[..keep]);
        }
        if (prompts.Count == 0) return [];
        using var generator = Sampling.CreateGenerator(StatelessRandom.Hash(config.Seed, step, 0xC2));
        var written = Sampling.Sample(Agent.Model, prompts.Count, sampling, generator, prompts);
        var children = new List<(string Smiles, SampledSequence Tokens)>();
        foreach (var sequence in written.Where(s => s.Finished))
        {
            if (!Molecule.TryFromSmiles(vocabulary.DecodeRaw(sequence.Tokens), out var molecule, out _)) continue;
            string canonical;
            using (molecule) canonical = molecule!.ToSmiles();
            if (filter!.Seen(canonical) || bred.Any(c => c.Smiles == canonical) || children.Any(c => c.Smiles == canonical)) continue;
            children.Add((canonical, sequence));
        }
        return children;
    }

    /// <summary>A parent's molecule, or null when RDKit cannot read its own canonical SMILES back (it happens: RDKit
    /// writes some sanitized molecules as SMILES that fail to parse), so such a molecule is not bred from.</summary>
    private static Molecule? ParentMolecule(Dictionary<string, Molecule?> parents, string canonical)
    {
        if (!parents.TryGetValue(canonical, out var molecule))
            parents[canonical] = molecule = Molecule.TryFromSmiles(canonical, out var parsed, out _) ? parsed : null;
        return molecule;
    }

    /// <summary>One extra update on the replay memory alone: a rank-weighted draw of it, learned with its stored scores and prior likelihoods.</summary>
    private void ReplayUpdate(int step, int round, IReadOnlyList<ReplayedMolecule> memory)
    {
        var ranked = memory.OrderByDescending(r => r.Score).ThenBy(r => r.Canonical, StringComparer.Ordinal).ToList();
        var random = new Random((int)(StatelessRandom.Hash(config.Seed, step, round, 0x7E) & int.MaxValue));
        var drawn = RankWeightedDraw(ranked.Count, config.Learning.ReplayUpdateSize, random).Select(i => ranked[i]).ToList();
        using var scope = NewDisposeScope();
        AugmentedStep([.. drawn.Select(r => new SampledSequence(r.Tokens, r.Finished, 0))], [.. drawn.Select(r => (float)r.PriorLogLikelihood)],
            [.. drawn.Select(r => (float)r.Score)]);
    }

    /// <summary>
    /// <paramref name="count"/> distinct positions of a list of <paramref name="size"/> ranked best first, each drawn
    /// with weight 1 / (0.01·size + rank) among those not yet drawn (all of them when the list is not longer).
    /// </summary>
    internal static int[] RankWeightedDraw(int size, int count, Random random)
    {
        if (size <= count) return [.. Enumerable.Range(0, size)];
        var weights = Enumerable.Range(0, size).Select(rank => 1.0 / (0.01 * size + rank)).ToArray();
        var drawn = new int[count];
        for (int k = 0; k < count; k++)
        {
            int pick = GraphGeneticOperators.Pick(random, weights);
            while (weights[pick] == 0) pick--; // Pick's fallback for round-off is the last position, which may be drawn already
            drawn[k] = pick;
            weights[pick] = 0;
        }
        return drawn;
    }

    /// <summary>
    /// One Augmented Memory update: the batch (those of its molecules the step learned from: with <c>skip_repeats</c>,
    /// <paramref name="learnedFrom"/>, not the repeats) and the whole memory, each valid molecule spelled as a random SMILES of
    /// itself (seeded by step, round and position, so a resumed run repeats it), with its prior likelihood for that
    /// spelling and its score as learned. An invalid sample keeps its tokens, and a molecule whose random spelling the
    /// vocabulary cannot write or is longer than the sampling limit keeps the spelling it was sampled as.
    /// </summary>
    private void AugmentedUpdate(int step, int round, IReadOnlyList<SampledSequence> batch, int[]? learnedFrom, IReadOnlyList<ScoredMolecule> scored, double[] learned,
        float[] batchPrior, IReadOnlyList<ReplayedMolecule> memory)
    {
        var sequences = new List<SampledSequence>(batch.Count + memory.Count);
        var scores = new List<float>(sequences.Capacity);
        var priors = new List<float?>(sequences.Capacity); // null: recompute for the new spelling
        void Add(SampledSequence original, string? canonical, double score, float prior, int position)
        {
            var rewritten = canonical is null || !config.Learning.RandomizeSmiles ? null : Randomized(canonical, (uint)StatelessRandom.Hash(config.Seed, step, round, position));
            sequences.Add(rewritten ?? original);
            scores.Add((float)score);
            priors.Add(rewritten is null ? prior : null);
        }
        foreach (int i in learnedFrom ?? Enumerable.Range(0, batch.Count)) Add(batch[i], scored[i].Canonical, learned[i], batchPrior[i], i);
        for (int j = 0; j < memory.Count; j++)
        {
            var r = memory[j];
            Add(new SampledSequence(r.Tokens, r.Finished, 0), r.Canonical, r.Score, (float)r.PriorLogLikelihood, batch.Count + j);
        }

        if (sequences.Count == 0) return; // every sample a repeat and the memory empty (or just purged): nothing to learn from
        using var scope = NewDisposeScope();
        var fresh = Enumerable.Range(0, sequences.Count).Where(i => priors[i] is null).ToList();
        if (fresh.Count > 0)
        {
            float[] recomputed;
            using (no_grad()) recomputed = Sampling.LogLikelihood(prior.Model, [.. fresh.Select(i => sequences[i])], grammar).cpu().data<float>().ToArray();
            for (int k = 0; k < fresh.Count; k++) priors[fresh[k]] = recomputed[k];
        }
        AugmentedStep(sequences, [.. priors.Select(p => p!.Value)], [.. scores]);
    }

    /// <summary>
    /// REINVENT's update: the agent's log-likelihood of each sequence is pulled towards the augmented likelihood, its
    /// prior's plus σ × its score, by one step down the mean squared gap (<see cref="Descend"/>). Returns the loss.
    /// </summary>
    private float AugmentedStep(IReadOnlyList<SampledSequence> sequences, float[] priorLogLikelihoods, float[] scores)
    {
        using var scope = NewDisposeScope();
        var augmented = tensor(priorLogLikelihoods).to(Agent.Device).Plus(tensor(scores).to(Agent.Device).Mul(config.Learning.Sigma));
        var agentLogLikelihood = Sampling.LogLikelihood(Agent.Model, sequences, grammar);
        return Descend((augmented - agentLogLikelihood).Squared().mean());
    }

    /// <summary>
    /// One Adam step down <paramref name="loss"/>, unless the agent already meets its targets to round-off: then the
    /// gradient is float noise (the two models' passes batch the sequences differently), and Adam, which divides by the
    /// gradient's own scale, would turn that noise into full-size steps. All-zero scores with an agent still equal to the
    /// prior did exactly that: a random walk that collapsed the agent to "CC" within 150 steps (valsartan_smarts).
    /// </summary>
    private float Descend(Tensor loss)
    {
        float value = loss.item<float>();
        // NaN would pass the noise test below and, through Adam, turn every weight NaN for the rest of the run.
        if (!float.IsFinite(value))
            throw new BioForgeException($"the agent's loss is {(float.IsNaN(value) ? "NaN" : "infinite")}: the agent was not updated (lower learning.lr or learning.sigma; the checkpoints written so far are intact)");
        if (value < NoiseLoss) return value;
        loss.backward();
        Optimizer.Update(config.Learning.Lr);
        Optimizer.ZeroGrad();
        return value;
    }

    /// <summary>A mean squared likelihood gap below this (0.01 nats root mean square) is round-off, not signal.</summary>
    private const float NoiseLoss = 1e-4f;

    /// <summary>
    /// Augmented Hill-Climb's selection (Thomas et al., J. Cheminform. 2022): the positions of the best
    /// <paramref name="fraction"/> of the batch by learned score (at least one), ties to the earlier sample; with
    /// <paramref name="excluded"/>, of the batch's other positions only.
    /// </summary>
    internal static int[] HillClimbers(IReadOnlyList<double> learned, double fraction, bool[]? excluded = null)
    {
        var candidates = Enumerable.Range(0, learned.Count).Where(i => excluded is null || !excluded[i]).ToList();
        int keep = Math.Max(1, (int)Math.Ceiling(fraction * candidates.Count));
        return [.. candidates.OrderByDescending(i => learned[i]).ThenBy(i => i).Take(keep)];
    }

    /// <summary>
    /// The batch's molecules the replay memory will keep, in batch order: scored above zero, new to it (a batch's second
    /// copy is not), and among its <c>replay_size</c> best once added (on a tie the memory's own and then earlier ones first).
    /// </summary>
    private List<int> MemoryEntrants(IReadOnlyList<ScoredMolecule> scored, double[] learned)
    {
        var memory = State.Memory;
        var inMemory = new HashSet<string>(memory.Select(r => r.Canonical), StringComparer.Ordinal);
        var candidates = Enumerable.Range(0, scored.Count)
            .Where(i => learned[i] > 0 && scored[i].Canonical is { } canonical && inMemory.Add(canonical)).ToList();
        if (memory.Count + candidates.Count <= config.Learning.ReplaySize) return candidates;
        var kept = memory.Select(r => (r.Score, Index: -1)).Concat(candidates.Select(i => (Score: learned[i], Index: i)))
            .OrderByDescending(e => e.Score).Take(config.Learning.ReplaySize).Where(e => e.Index >= 0).Select(e => e.Index);
        return [.. kept.Order()];
    }

    /// <summary>Which of a batch's molecules the run scored in an earlier step, or earlier in this batch (asked before the
    /// diversity filter sees the batch).</summary>
    internal static bool[] Repeats(IReadOnlyList<ScoredMolecule> batch, DiversityFilter filter)
    {
        var thisBatch = new HashSet<string>(StringComparer.Ordinal);
        return [.. batch.Select(m => m.Canonical is { } canonical && (filter.Seen(canonical) || !thisBatch.Add(canonical)))];
    }

    /// <summary>Augmented Memory's selective purge: the memory's molecules whose diversity-filter bucket is full.</summary>
    internal static void Purge(List<ReplayedMolecule> memory, DiversityFilter filter) =>
        memory.RemoveAll(r => r.Bucket is { } bucket && filter.IsFull(bucket));

    /// <summary>A random SMILES of the molecule as the prior's tokens, or null when the vocabulary cannot write it or it is too long to sample.</summary>
    internal static SampledSequence? Randomized(string canonical, uint seed, SmilesVocabulary vocabulary, int maxLength)
    {
        if (!Molecule.TryFromSmiles(canonical, out var molecule, out _)) return null; // RDKit cannot read back its own SMILES of it
        using (molecule) return Spelled(molecule!.ToRandomSmiles(seed), vocabulary, maxLength);
    }

    /// <summary>A SMILES as the prior's tokens, as if sampled; null when the vocabulary cannot write it or it is too long to sample.</summary>
    private static SampledSequence? Spelled(string smiles, SmilesVocabulary vocabulary, int maxLength)
    {
        int[] ids = vocabulary.Encode(smiles);
        if (ids.Length - 2 > maxLength || ids.Contains(SmilesVocabulary.UnkId)) return null;
        return new SampledSequence([.. ids[1..^1].Select(id => (long)id)], true, 0);
    }

    private SampledSequence? Randomized(string canonical, uint seed) => Randomized(canonical, seed, vocabulary, config.Sampling.MaxLength);

    public void Dispose()
    {
        scoring?.Dispose();
        genetics?.Dispose();
        Optimizer.Dispose();
        Agent.Dispose();
    }
}
