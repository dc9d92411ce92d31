using BioForge.IO;

namespace BioForge.Discovery;

/// <summary>
/// A goal-directed generation run (<c>bioforge optimize --config run.toml</c>, REINVENT-style): the prior, sampling,
/// learning, the diversity filter, and one or more stages, each with its own scoring function and termination.
/// A REINVENT 4 staged-learning file (<c>run_type = "staged_learning"</c>) is read too (<see cref="Reinvent4Format"/>).
/// </summary>
/// <remarks>
/// The defaults of <c>[sampling]</c>, <c>[learning]</c> and <c>[diversity_filter]</c> are the best settings
/// <c>bench pmo</c> has found (today Augmented Hill-Climb with 32 genetic offspring per step, on REINVENT's PMO
/// sampling and learning rate; docs/benchmarks.md); <see cref="Pmo.PmoBenchmark.RunFile"/> reads them from here, so a
/// run file that leaves those sections out runs as the benchmark does.
/// </remarks>
public sealed record OptimizeConfig
{
    public ulong Seed { get; init; }
    public PriorSection Prior { get; init; } = new();
    public SamplingSection Sampling { get; init; } = new();
    public LearningSection Learning { get; init; } = new();
    public DiversityFilterSection DiversityFilter { get; init; } = new();
    public OutputSection Output { get; init; } = new();
    public BudgetSection Budget { get; init; } = new();
    public List<StageSection> Stages { get; init; } = [];

    public sealed record PriorSection
    {
        /// <summary>A SMILES language model (Llama layout with vocab.json); the agent starts as a copy of it.</summary>
        public string Model { get; init; } = "";
    }

    public sealed record SamplingSection
    {
        public int BatchSize { get; init; } = 64;
        public double Temperature { get; init; } = 1.0;
        public int MaxLength { get; init; } = 128;
        /// <summary>Drop repeated token sequences from each sampled batch before scoring (REINVENT 4's <c>unique_sequences</c>).</summary>
        public bool UniqueSequences { get; init; }
        /// <summary><c>smiles</c>: sample under SMILES syntax (SmilesGrammar), prior and agent likelihoods renormalised the
        /// same way; <c>none</c>: the model's raw distribution.</summary>
        public string Grammar { get; init; } = "none";
    }

    public sealed record LearningSection
    {
        /// <summary>
        /// <c>reinvent</c>: one augmented-likelihood update per step on the batch and a few replayed molecules.
        /// <c>augmented_memory</c> (Guo &amp; Schwaller 2024): after that update, <see cref="AugmentationRounds"/> more,
        /// each on the batch and the whole replay memory re-written as random SMILES, and a diversity filter's full
        /// scaffolds purged from the memory.
        /// <c>ahc</c> (Augmented Hill-Climb, Thomas et al. 2022): REINVENT's update on the best <see cref="TopFraction"/>
        /// of each batch only (and the replayed molecules).
        /// </summary>
        public string Strategy { get; init; } = "ahc";
        /// <summary><c>ahc</c>: the share of each batch, best scores first, that the update learns from.</summary>
        public double TopFraction { get; init; } = 0.25;
        /// <summary><c>augmented_memory</c>: extra updates per step on randomized SMILES of the batch and the memory.</summary>
        public int AugmentationRounds { get; init; } = 2;
        /// <summary>
        /// <c>augmented_memory</c>: spell each molecule of the extra rounds as a random SMILES (the paper's augmentation);
        /// false replays them as sampled (the paper's ablation).
        /// </summary>
        public bool RandomizeSmiles { get; init; } = true;
        public double Lr { get; init; } = 5e-4;
        /// <summary>
        /// σ in the augmented likelihood log p_prior + σ · score: how far a score may pull the agent from the prior.
        /// 1000 since 2026-12-04 (REINVENT's PMO setting was 500): the full PMO table scored higher with it, most on the
        /// tasks whose scores climb slowly (docs/benchmarks.md).
        /// </summary>
        public double Sigma { get; init; } = 1000;
        /// <summary>Best molecules kept for experience replay, and how many of them join each step's loss.</summary>
        public int ReplaySize { get; init; } = 100;
        public int ReplaySamples { get; init; } = 24;
        /// <summary>
        /// Extra updates per step on the replay memory alone, each on <see cref="ReplayUpdateSize"/> of its molecules drawn
        /// by rank (weight 1 / (0.01·N + rank), without replacement) with their stored scores and prior likelihoods: the
        /// calls already paid for teach the agent again, as Genetic GFN's experience loop (Kim et al. 2024). 0: off.
        /// </summary>
        public int ReplayUpdates { get; init; } = 0;
        /// <summary>
        /// Leave molecules scored in an earlier step (and a batch's second copy of one) out of the step's update: the
        /// agent is not pulled further towards what it already samples, and an update learns from new molecules only
        /// (the replayed memory still holds the best). Their scores still count; the budget never counted them. On by
        /// default: with the shipped prior it scored higher on PMO, paired by task and seed (docs/benchmarks.md).
        /// </summary>
        public bool SkipRepeats { get; init; } = true;
        public int ReplayUpdateSize { get; init; } = 64;
        /// <summary>
        /// Genetic exploration: children bred each step from the best molecules so far by graph crossover and mutation
        /// (Jensen's GB-GA operators), scored like samples and learned from in the same update (Genetic GFN's idea,
        /// Kim et al. 2024). 0: off.
        /// </summary>
        public int GeneticOffspring { get; init; } = 32;
        /// <summary>Genetic exploration: the chance that a crossover child is also mutated (Graph GA's 0.067 in PMO).</summary>
        public double MutationRate { get; init; } = 0.067;
        /// <summary>
        /// Children written by the agent each step: a random spelling of one of the best molecules, cut after at least
        /// half of its tokens, continued by the agent; scored and learned from as the genetic children are. 0: off.
        /// </summary>
        public int CompletionOffspring { get; init; }
        /// <summary>
        /// Known molecules (SMILES) to start from, REINVENT's inception: at the start of every stage they are scored by
        /// its scoring function (oracle calls, counted under a budget) and enter the replay memory, so the update replays
        /// them and the genetic exploration breeds from them at once.
        /// </summary>
        public List<string> Inception { get; init; } = [];
    }

    public sealed record DiversityFilterSection
    {
        /// <summary><c>identical_murcko_scaffold</c>, <c>generic_murcko_scaffold</c>, <c>similar_scaffold</c> (analogues share a bucket) or <c>none</c>.</summary>
        public string Kind { get; init; } = "none";
        /// <summary>Molecules per scaffold that keep their score; later ones with the same scaffold score 0.</summary>
        public int BucketSize { get; init; } = 25;
        /// <summary>Only molecules scoring at least this fill buckets.</summary>
        public double MinimumScore { get; init; } = 0.4;
        /// <summary><c>similar_scaffold</c>: scaffolds at least this similar (Tanimoto) share a bucket.</summary>
        public double Similarity { get; init; } = 0.6;
        /// <summary>Keep the buckets and the molecules seen from one stage to the next (REINVENT 4's <c>purge_memories = false</c>); by default each stage starts empty.</summary>
        public bool KeepBetweenStages { get; init; }
    }

    public sealed record OutputSection
    {
        /// <summary>Run directory: scores.csv, ranked.csv, metrics.jsonl, checkpoints/, agent/.</summary>
        public string Dir { get; init; } = "";
        public int CheckpointEvery { get; init; } = 50;
        /// <summary>Molecules in ranked.csv (best first, one row per canonical SMILES).</summary>
        public int Ranked { get; init; } = 1000;
    }

    public sealed record BudgetSection
    {
        /// <summary>
        /// Stop after this many oracle calls, counted as the PMO benchmark counts them: unique valid molecules
        /// (canonical SMILES) scored; repeats come from a cache and invalid SMILES score 0, neither counted. 0: no budget.
        /// </summary>
        public int OracleCalls { get; init; }
    }

    public sealed record StageSection
    {
        public string Name { get; init; } = "";
        public int MaxSteps { get; init; } = 100;
        public int MinSteps { get; init; } = 10;
        /// <summary>Stop the stage once the batch's mean score reaches this (after min_steps); 1 disables.</summary>
        public double MaxScore { get; init; } = 1;
        /// <summary>Mode collapse: stop when fewer than this fraction of a batch are new valid molecules …</summary>
        public double MinUnique { get; init; } = 0.05;
        /// <summary>… for this many consecutive steps.</summary>
        public int CollapsePatience { get; init; } = 5;
        /// <summary>
        /// With a budget, mol_opt's early stop (PMO): once more than 1000 calls are made, this many steps in a row that
        /// leave the 100 best scores unchanged end the stage. 0: off.
        /// </summary>
        public int Patience { get; init; }
        /// <summary>
        /// What running out of <see cref="Patience"/> does: <c>stop</c> ends the stage (mol_opt's early stop);
        /// <c>restart</c> starts the search again from the prior — the agent's weights and optimizer moments reset, the
        /// replay memory emptied — keeping the budget, the calls made and the ranked molecules, so the rest of the
        /// budget looks elsewhere (a stalled search stays in its series: docs/benchmarks.md). Patience then counts the
        /// new search's own 100 best.
        /// </summary>
        public string OnStall { get; init; } = "stop";
        /// <summary>Reaching max_steps ends the whole run, not just this stage (REINVENT 4's rule: only max_score moves on).</summary>
        public bool MaxStepsEndsRun { get; init; }
        /// <summary><c>arithmetic</c> or <c>geometric</c> weighted mean of the components.</summary>
        public string Aggregate { get; init; } = "geometric";
        public List<ComponentSettings> Components { get; init; } = [];
    }

    /// <param name="onNote">Told about settings of a REINVENT 4 file that are accepted but do not apply here (device, TensorBoard, checkpoint file names).</param>
    public static OptimizeConfig Load(string path, IEnumerable<string>? overrides = null, Action<string>? onNote = null) =>
        YamlConfig.Load<OptimizeConfig>(path, overrides, (config, require) => config.Validate(require),
            (root, file) => Reinvent4Format.IsReinvent4(root) ? Reinvent4Format.Translate(root, file, onNote) : root);

    public string ToJsonText() => YamlConfig.ToJsonText(this);

    /// <summary>
    /// What a stored run configuration that lacks a setting ran with: the default the setting was added with, which is
    /// today's except where a later default changed the behaviour (REINVENT's strategy, no genetic children, learning
    /// from repeats). Resume and <c>bench pmo</c> read stored runs against it.
    /// </summary>
    public static string EarlierRunsDefaultsJson() =>
        new OptimizeConfig { Stages = [new() { Components = [new()] }], Learning = new() { Strategy = "reinvent", GeneticOffspring = 0, SkipRepeats = false } }.ToJsonText();

    /// <summary>This configuration with <c>section.key=value</c> overrides applied and checked as a run file's are (errors name <paramref name="where"/>).</summary>
    public OptimizeConfig WithOverrides(IReadOnlyCollection<string> overrides, string where)
    {
        if (overrides.Count == 0) return this;
        var changed = YamlConfig.WithOverrides(this, overrides, where);
        changed.Validate(YamlConfig.Requirement(where));
        return changed;
    }

    private void Validate(Action<bool, string> require)
    {
        require(!string.IsNullOrWhiteSpace(Prior.Model), "prior.model is required (a SMILES language model directory, e.g. models/smiles-llama-small)");
        require(Sampling.BatchSize >= 2, $"sampling.batch_size must be at least 2 (got {Sampling.BatchSize})");
        require(Sampling.Temperature is >= 0.01 and <= 100, $"sampling.temperature must be 0.01–100 (got {Sampling.Temperature}; the agent learns from random draws, so not 0)");
        require(Sampling.MaxLength >= 8, $"sampling.max_length must be at least 8 (got {Sampling.MaxLength})");
        require(Sampling.Grammar is "smiles" or "none", $"sampling.grammar must be smiles or none (got '{Sampling.Grammar}')");
        require(Learning.Lr > 0 && Learning.Sigma > 0, "learning.lr and learning.sigma must be positive");
        require(Learning.ReplaySize >= 0 && Learning.ReplaySamples >= 0, "learning.replay_size and replay_samples must be >= 0");
        require(Learning.Strategy is "reinvent" or "augmented_memory" or "ahc", $"learning.strategy must be reinvent, augmented_memory or ahc (got '{Learning.Strategy}')");
        require(Learning.TopFraction is > 0 and <= 1, $"learning.top_fraction must be in (0, 1] (got {Learning.TopFraction})");
        require(Learning.GeneticOffspring is >= 0 and <= 1024, $"learning.genetic_offspring must be in [0, 1024] (got {Learning.GeneticOffspring})");
        require(Learning.CompletionOffspring is >= 0 and <= 1024, $"learning.completion_offspring must be in [0, 1024] (got {Learning.CompletionOffspring})");
        require(Learning.MutationRate is >= 0 and <= 1, $"learning.mutation_rate must be in [0, 1] (got {Learning.MutationRate})");
        require(Learning.ReplayUpdates is >= 0 and <= 16, $"learning.replay_updates must be in [0, 16] (got {Learning.ReplayUpdates})");
        require(Learning.ReplayUpdateSize >= 1, $"learning.replay_update_size must be at least 1 (got {Learning.ReplayUpdateSize})");
        require(Learning.Inception.Count <= 10_000, $"learning.inception holds at most 10,000 SMILES (got {Learning.Inception.Count})");
        require(Learning.Inception.Count == 0 || Learning.ReplaySize > 0, "learning.inception needs a replay memory (replay_size > 0): the molecules start there");
        require(Budget.OracleCalls <= 0 || Learning.Inception.Count < Budget.OracleCalls,
            $"learning.inception: {Learning.Inception.Count} molecules would spend the whole budget ({Budget.OracleCalls} oracle calls) before the first sample");
        require(Learning.AugmentationRounds is >= 0 and <= 16, $"learning.augmentation_rounds must be in [0, 16] (got {Learning.AugmentationRounds})");
        require(DiversityFilter.Kind is "identical_murcko_scaffold" or "generic_murcko_scaffold" or "similar_scaffold" or "none",
            $"diversity_filter.kind must be identical_murcko_scaffold, generic_murcko_scaffold, similar_scaffold or none (got '{DiversityFilter.Kind}')");
        require(DiversityFilter.Similarity is > 0 and <= 1, $"diversity_filter.similarity must be in (0, 1] (got {DiversityFilter.Similarity})");
        require(DiversityFilter.BucketSize >= 1, $"diversity_filter.bucket_size must be at least 1 (got {DiversityFilter.BucketSize})");
        // Scores are in [0, 1]: above 1 no molecule fills a bucket and the filter does nothing, without a word.
        require(DiversityFilter.MinimumScore is >= 0 and <= 1, $"diversity_filter.minimum_score must be in [0, 1] (got {DiversityFilter.MinimumScore})");
        require(!string.IsNullOrWhiteSpace(Output.Dir), "output.dir is required");
        require(Output.CheckpointEvery >= 1 && Output.Ranked >= 1, "output.checkpoint_every and output.ranked must be at least 1");
        require(Budget.OracleCalls >= 0, $"budget.oracle_calls must be 0 (no budget) or positive (got {Budget.OracleCalls})");
        require(Stages.Count > 0, "at least one [[stages]] with its [[stages.components]] is required");
        for (int s = 0; s < Stages.Count; s++)
        {
            var stage = Stages[s];
            string where = $"stages[{s}]";
            require(stage.MaxSteps >= 1 && stage.MinSteps >= 0 && stage.MinSteps <= stage.MaxSteps,
                $"{where}: need 0 <= min_steps <= max_steps and max_steps >= 1 (min_steps {stage.MinSteps}, max_steps {stage.MaxSteps}; min_steps defaults to {new StageSection().MinSteps})");
            require(stage.MaxScore is > 0 and <= 1, $"{where}.max_score must be in (0, 1] (got {stage.MaxScore})");
            require(stage.MinUnique is >= 0 and < 1 && stage.CollapsePatience >= 1, $"{where}: min_unique must be in [0, 1) and collapse_patience >= 1");
            require(stage.Patience >= 0, $"{where}.patience must be 0 (off) or positive (got {stage.Patience})");
            require(stage.OnStall is "stop" or "restart", $"{where}.on_stall must be stop or restart (got '{stage.OnStall}')");
            require(stage.Aggregate is "arithmetic" or "geometric", $"{where}.aggregate must be arithmetic or geometric (got '{stage.Aggregate}')");
            require(stage.Components.Count > 0, $"{where}: no components");
            require(stage.Components.Any(c => !c.IsPenalty), $"{where}: only penalties; add a component that rewards something");
            for (int c = 0; c < stage.Components.Count; c++) stage.Components[c].Validate($"{where}.components[{c}]", require);
        }
    }
}
