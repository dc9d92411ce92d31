using System.Globalization;
using System.Text.Json.Nodes;
using BioForge.Discovery;

namespace BioForge.Tests;

/// <summary>Scoring, the diversity filter and the REINVENT loop (a few small steps; resumed = straight).</summary>
[Collection(nameof(TrainerTests))] // seeds LibTorch's global generator through sampling
public sealed class OptimizeTests
{
    [Fact]
    public void TransformsMapValuesOntoZeroToOne()
    {
        var sigmoid = new TransformSettings { Kind = "sigmoid", Low = 2, High = 6, K = 0.5 };
        Assert.Equal(0.5, sigmoid.Apply(4), 12);
        Assert.True(sigmoid.Apply(7) > 0.99 && sigmoid.Apply(1) < 0.01);
        var reverse = sigmoid with { Kind = "reverse_sigmoid" };
        Assert.Equal(1 - sigmoid.Apply(5), reverse.Apply(5), 12);
        var window = new TransformSettings { Kind = "double_sigmoid", Low = 200, High = 500, K = 0.05 };
        Assert.True(window.Apply(350) > 0.99 && window.Apply(100) < 0.01 && window.Apply(700) < 0.01);
        var step = new TransformSettings { Kind = "step", Low = 0, High = 5 };
        Assert.Equal([1.0, 1.0, 0.0], [step.Apply(0), step.Apply(5), step.Apply(5.1)]);
    }

    [Fact]
    public void TheScoreIsAWeightedMeanTimesThePenalties()
    {
        _ = TestData.Cpu;
        ComponentSettings ring = new() { Type = "substructure", Smarts = ["c1ccccc1"], Weight = 3 };
        ComponentSettings heavy = new() { Type = "mw", Transform = new TransformSettings { Kind = "step", Low = 100, High = 1000 } };
        ComponentSettings noAcid = new() { Type = "forbidden_substructure", Smarts = ["C(=O)[OH]"] };
        using var arithmetic = new ScoringFunction([ring, heavy, noAcid], "arithmetic", TestData.Cpu.Device);
        var scored = arithmetic.Score(["c1ccccc1CCN", "CCCCCCCCN", "c1ccccc1C(=O)O", "C1CC(", ""]);
        Assert.Equal(1.0, scored[0].Score, 12); // ring (weight 3) and mass in the window
        Assert.Equal(0.25, scored[1].Score, 12); // no ring: 1 of 4 weights
        Assert.Equal(0.0, scored[2].Score, 12); // a carboxylic acid: the penalty zeroes it
        Assert.False(scored[3].Valid);
        Assert.Equal(0.0, scored[3].Score);
        Assert.Equal("c1ccccc1", scored[0].Scaffold);

        using var geometric = new ScoringFunction([ring, heavy], "geometric", TestData.Cpu.Device);
        Assert.True(geometric.Score(["CCCCCCCCN"])[0].Score < 1e-6, "a geometric mean is zero when one part is");
    }

    [Fact]
    public void AMoleculeRDKitCannotSanitizeTwiceIsInvalidWithoutFailingTheBatch()
    {
        // RDKit reads this SMILES once, but sanitizing it again (QED's RemoveHs) fails: it once failed a whole /generate
        // batch, then scored as a molecule QED could not score; now it is invalid where it is read, as MOSES has it.
        const string unsanitizable = "CC[n-]1CCCCN1C(=O)c1ccc(CSC)cc1";
        using var scoring = new ScoringFunction([new ComponentSettings { Type = "qed" }], "arithmetic", TestData.Cpu.Device);
        var scored = scoring.Score(["CCO", unsanitizable, "c1ccccc1O"]);
        Assert.True(scored[0].Valid && scored[2].Valid);
        Assert.True(scored[0].Score > 0 && scored[2].Score > 0);
        Assert.False(scored[1].Valid);
        Assert.Equal(0.0, scored[1].Score);
    }

    [Fact]
    public void TheDiversityFilterZeroesFullScaffoldBucketsAndRepeats()
    {
        var filter = new DiversityFilter(new OptimizeConfig.DiversityFilterSection { Kind = "identical_murcko_scaffold", BucketSize = 2, MinimumScore = 0.5 });
        ScoredMolecule M(string smiles, string scaffold, double score) => new(smiles, smiles, scaffold, score, [], []);
        var first = filter.Apply([M("c1ccccc1C", "c1ccccc1", 0.9), M("c1ccccc1CC", "c1ccccc1", 0.8), M("c1ccccc1CCC", "c1ccccc1", 0.7), M("C1CCCCC1", "C1CCCCC1", 0.3)]);
        Assert.Equal([0.9, 0.8, 0.0, 0.3], first);
        var second = filter.Apply([M("c1ccccc1C", "c1ccccc1", 0.9), M("C1CCCCC1C", "C1CCCCC1", 0.6)]);
        Assert.Equal([0.0, 0.6], second); // seen before; a new scaffold still pays
        var third = filter.Apply([M("C1CCCCC1C", "C1CCCCC1", 0.6), M("C1CCCCC1C", "C1CCCCC1", 0.6)]);
        Assert.Equal([0.0, 0.0], third); // every copy of an earlier step's molecule is a repeat
        var fourth = filter.Apply([M("CCCCC", "", 0.7), M("CCCCC", "", 0.7), M("CCCCCC", "", 0.7)]);
        Assert.Equal([0.7, 0.0, 0.7], fourth); // sampled twice at once: paid once, and the copy fills no bucket place
    }

    /// <summary>
    /// Only a scaffold whose bucket was made (a molecule scoring the minimum) represents others, and a restored filter
    /// has the same representatives in the same order: the straight and the resumed run bucket the next batch alike.
    /// </summary>
    [Fact]
    public void ARestoredSimilarScaffoldFilterBucketsAsTheOriginal()
    {
        _ = TestData.Cpu;
        var settings = new OptimizeConfig.DiversityFilterSection { Kind = "similar_scaffold", Similarity = 0.3, BucketSize = 5, MinimumScore = 0.5 };
        ScoredMolecule M(string scaffold, double score) => new(scaffold + "C", scaffold + "C", scaffold, score, [], []);
        const string Amide = "O=C(Nc1nccs1)c1ccccc1", Fused = "O=C(Nc1nccs1)c1ccc2ccccc2c1", Other = "C1CCNCC1";
        var original = new DiversityFilter(settings);
        original.Apply([M(Amide, 0.1), M(Other, 0.9), M(Fused, 0.9)], out var keys);
        Assert.Equal([Amide, Other, Fused], keys.Select(k => k!)); // the low-scoring amide made no bucket, so its analogue opened its own
        var restored = new DiversityFilter(settings);
        restored.Restore(original.State());
        var next = new[] { M("O=C(Nc1nccs1)c1ccc(F)cc1", 0.9), M(Amide, 0.9) };
        original.Apply(next, out var straightKeys);
        restored.Apply(next, out var resumedKeys);
        Assert.Equal(straightKeys.Select(k => k!), resumedKeys.Select(k => k!));
        Assert.Equal(Fused, straightKeys[0]);
    }

    [Fact]
    public void SimilarScaffoldsShareABucket()
    {
        _ = TestData.Cpu;
        var filter = new DiversityFilter(new OptimizeConfig.DiversityFilterSection { Kind = "similar_scaffold", Similarity = 0.3, BucketSize = 1, MinimumScore = 0.1 });
        ScoredMolecule M(string smiles, string scaffold) => new(smiles, smiles, scaffold, 0.9, [], []);
        // A benzo-fused analogue shares the bucket; an unrelated ring system opens a new one.
        var scores = filter.Apply([M("O=C(Nc1nccs1)c1ccccc1", "O=C(Nc1nccs1)c1ccccc1"), M("O=C(Nc1nccs1)c1ccc2ccccc2c1", "O=C(Nc1nccs1)c1ccc2ccccc2c1"), M("C1CCNCC1", "C1CCNCC1")]);
        Assert.Equal([0.9, 0.0, 0.9], scores);
        Assert.Equal(2, filter.Buckets);
    }

    internal static string Run(string output, int steps, string extra = "", string learning = "") => $"""
        seed = 3
        [prior]
        model = "{Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small")}"
        [sampling]
        batch_size = 16
        max_length = 64
        [learning]
        lr = 5e-4
        replay_size = 8
        replay_samples = 4
        {learning}
        [output]
        dir = "{output}"
        checkpoint_every = 2
        ranked = 20
        [[stages]]
        name = "warm-up"
        max_steps = 2
        min_steps = 1
        [[stages.components]]
        type = "qed"
        [[stages]]
        name = "small rings"
        max_steps = {steps}
        min_steps = 1
        aggregate = "arithmetic"
        [[stages.components]]
        type = "qed"
        [[stages.components]]
        type = "mw"
        transform = {"{"} kind = "double_sigmoid", low = 150.0, high = 350.0, k = 0.05 {"}"}
        {extra}
        """;

    internal static OptimizeConfig Config(string toml)
    {
        string path = Path.Combine(TestData.TempDirectory(), "run.toml");
        File.WriteAllText(path, toml);
        return OptimizeConfig.Load(path);
    }

    /// <summary>A run that fails before its first step (here: a prior that is no model) leaves no output folder where there was none.</summary>
    [Fact]
    public void ARunThatFailsAtItsStartLeavesNoFolder()
    {
        string output = Path.Combine(TestData.TempDirectory(), "run");
        string toml = Run(output, 2).Replace(Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small"), TestData.TempDirectory());
        Assert.Throws<BioForgeException>(() => MoleculeOptimizer.Run(Config(toml), new OptimizeOptions { Threads = 2 }));
        Assert.False(Directory.Exists(output), "the run folder was left behind");
    }

    /// <summary>TOML's nan and inf are no setting's value: refused with the key (NaN passed every range check).</summary>
    [Theory]
    [InlineData("weight = nan", "stages[1].components[1].weight = NaN is not a finite number")]
    [InlineData("weight = inf", "stages[1].components[1].weight = Infinity is not a finite number")]
    public void NonFiniteNumbersInARunFileAreRefusedByKey(string entry, string expected)
    {
        var e = Assert.Throws<BioForgeException>(() => Config(Run(TestData.TempDirectory(), 2, entry)));
        Assert.EndsWith(expected, e.Message);
    }

    [Theory]
    [InlineData("strategy = \"reinvent\"\ngenetic_offspring = 0")]
    // Augmented Memory's extra rounds, random spellings and purged memory must come back from the checkpoint too.
    [InlineData("strategy = \"augmented_memory\"\n[diversity_filter]\nkind = \"identical_murcko_scaffold\"\nbucket_size = 2\nminimum_score = 0.0")]
    // The default (Augmented Hill-Climb with genetic exploration): the children's parents come from the memory and they
    // must be new to the run, both restored from the checkpoint; positional isomers among them tie exactly (same QED and
    // weight), so the scores reloaded for the ranking must be exact.
    [InlineData("")]
    // Extra updates on the memory alone draw from it with their own seeded generator; repeats are known from the filter's restored memory.
    [InlineData("replay_updates = 2\nreplay_update_size = 8\nskip_repeats = true")]
    // Children the agent writes (continuing cut spellings of the best molecules) come from their own seeded draws.
    [InlineData("genetic_offspring = 0\ncompletion_offspring = 8")]
    public void ARunStoppedAndResumedEndsWhereAnUninterruptedOneDoes(string learning)
    {
        _ = TestData.Cpu;
        string straight = TestData.TempDirectory(), resumed = TestData.TempDirectory();
        var options = new OptimizeOptions { Threads = 2 };
        var whole = MoleculeOptimizer.Run(Config(Run(straight, 3, learning: learning)), options);
        Assert.Equal(5, whole.Steps);
        Assert.Equal(["warm-up: reached max_steps (2)", "small rings: reached max_steps (3)"], whole.StageEndings);
        Assert.Equal(["qed", "mw"], whole.ComponentLabels);
        // Beside ranked.csv, the report: the best drawn with their components, the run's curves, the scoring function as configured.
        string report = File.ReadAllText(Path.Combine(straight, OptimizationReport.FileName));
        Assert.Contains(System.Net.WebUtility.HtmlEncode(whole.Ranked[0].Canonical), report);
        Assert.Contains($"score {whole.Ranked[0].Score:F3}", report);
        Assert.Contains("<h3>Stage 2: small rings (arithmetic mean, 1–3 steps)</h3>", report);
        Assert.Contains("double_sigmoid (150–350, k 0.05)", report);
        // The falling edge's own steepness is shown; a clipped line has none.
        Assert.Equal("double_sigmoid (200–400, k 0.5, k_high 0.01)", OptimizationReport.Transform(new TransformSettings { Kind = "double_sigmoid", Low = 200, High = 400, K = 0.5, KHigh = 0.01 }));
        Assert.Equal("clipped (5 → 1)", OptimizationReport.Transform(new TransformSettings { Kind = "clipped", Low = 5, High = 1 }));
        Assert.Contains("Mean score of each sampled batch", report);
        Assert.DoesNotContain("stopped before its end", report);

        // Stop after step 4 (a cancelled run checkpoints), then continue.
        int seen = 0;
        using var cancel = new CancellationTokenSource();
        var first = MoleculeOptimizer.Run(Config(Run(resumed, 3, learning: learning)), options with { Cancellation = cancel.Token, OnStep = _ => { if (++seen == 4) cancel.Cancel(); } });
        Assert.True(first.Interrupted);
        Assert.Contains("stopped before its end", File.ReadAllText(Path.Combine(resumed, OptimizationReport.FileName)));
        // Rows past the checkpoint (a lost future, the last one torn by a kill) neither rank nor stop the resume.
        File.AppendAllText(Path.Combine(resumed, "scores_2_small_rings.csv"), "99,CCO,CCO,1,0.999,0.999,,1,1,1,1,sampled\n57,\"CC(");
        var second = MoleculeOptimizer.Run(Config(Run(resumed, 3, learning: learning)), options with { Resume = true });
        Assert.False(second.Interrupted);
        Assert.Equal(File.ReadAllText(Path.Combine(straight, "ranked.csv")), File.ReadAllText(Path.Combine(resumed, "ranked.csv")));
        Assert.Equal(File.ReadAllText(Path.Combine(straight, "scores_2_small_rings.csv")), File.ReadAllText(Path.Combine(resumed, "scores_2_small_rings.csv")));
        Assert.True(File.Exists(Path.Combine(resumed, "agent", "model.safetensors")));
        // The update after the resume is the straight run's too: Adam's moments and its own update count came back.
        var straightAgent = TinyRuns.Weights(Path.Combine(straight, "agent"));
        var resumedAgent = TinyRuns.Weights(Path.Combine(resumed, "agent"));
        Assert.All(straightAgent, kv => Assert.True(kv.Value.AsSpan().SequenceEqual(resumedAgent[kv.Key]), $"agent {kv.Key} differs after the resume"));
        Assert.Contains("rank,smiles,score,step,stage,scaffold,qed,mw", File.ReadAllText(Path.Combine(resumed, "ranked.csv")));
        // Every row says whether the agent sampled it or the genetic step bred it (none bred with genetic_offspring = 0).
        var sources = File.ReadAllLines(Path.Combine(resumed, "scores_2_small_rings.csv")).Skip(1).Select(l => l[(l.LastIndexOf(',') + 1)..]).ToHashSet();
        bool breeds = !learning.Contains("genetic_offspring = 0", StringComparison.Ordinal) || learning.Contains("completion_offspring", StringComparison.Ordinal);
        Assert.Equal(breeds ? ["sampled", "bred"] : ["sampled"], sources.Order().Reverse());

        // A run stored before skip_repeats existed learned from repeats: resumed under today's default it is refused.
        string stored = Path.Combine(resumed, Training.RunDirectory.ConfigFile);
        var old = JsonNode.Parse(File.ReadAllText(stored))!;
        old["learning"]!.AsObject().Remove("skip_repeats");
        // Settings added later (a filter's allow, a component's penalty) read as their defaults: no difference of their own.
        foreach (var component in old["stages"]!.AsArray().SelectMany(stage => stage!["components"]!.AsArray()))
        {
            component!.AsObject().Remove("allow");
            component.AsObject().Remove("penalty");
        }
        File.WriteAllText(stored, old.ToJsonString());
        var e = Assert.Throws<BioForgeException>(() => MoleculeOptimizer.Run(Config(Run(resumed, 3, learning: learning)), options with { Resume = true }));
        Assert.Contains("learning.skip_repeats: false → true", e.Message);
        Assert.DoesNotContain("allow", e.Message);
        Assert.DoesNotContain("penalty", e.Message);
    }

    [Fact]
    public void TheMemoryKeepsEachMoleculesPriorLikelihood()
    {
        // The prior reads only the molecules the agent learns from and those the memory keeps (a memory of 8 here, so
        // most of each batch's molecules are turned away): every kept one must carry its own likelihood, as computed anew.
        _ = TestData.Cpu;
        string dir = TestData.TempDirectory();
        int seen = 0;
        using var cancel = new CancellationTokenSource();
        var run = MoleculeOptimizer.Run(Config(Run(dir, 6)), new OptimizeOptions { Threads = 2, Cancellation = cancel.Token, OnStep = _ => { if (++seen == 5) cancel.Cancel(); } });
        Assert.True(run.Interrupted);
        string state = Directory.GetFiles(Path.Combine(dir, "checkpoints"), "optimizer_state.json", SearchOption.AllDirectories).Single();
        var memory = JsonNode.Parse(File.ReadAllText(state))!["memory"]!.AsArray();
        Assert.Equal(8, memory.Count);
        var sequences = memory.Select(m => new Generation.SampledSequence([.. m!["tokens"]!.AsArray().Select(t => t!.GetValue<long>())], m["finished"]!.GetValue<bool>(), 0)).ToList();
        using var prior = Models.Llama.LlamaCheckpoint.Load(Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small"), TestData.Cpu.Device, TestData.Cpu.DType);
        float[] expected;
        using (TorchSharp.torch.no_grad()) expected = Generation.Sampling.LogLikelihood(prior.Model, sequences).data<float>().ToArray();
        for (int i = 0; i < memory.Count; i++)
            Assert.Equal(expected[i], memory[i]!["prior_log_likelihood"]!.GetValue<double>(), 1e-3);
    }

    [Fact]
    public void ARandomSpellingIsTheSameMoleculeInThePriorsTokens()
    {
        _ = TestData.Cpu;
        var vocabulary = Tokenizers.SmilesVocabulary.Load(Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small", "vocab.json"));
        const string canonical = "CC(=O)Nc1ccc(O)cc1";
        var spellings = new HashSet<string>(StringComparer.Ordinal);
        for (uint seed = 0; seed < 8; seed++)
        {
            var sequence = OptimizationSession.Randomized(canonical, seed, vocabulary, maxLength: 64);
            Assert.NotNull(sequence);
            Assert.True(sequence.Finished);
            string spelled = vocabulary.Decode(sequence.Tokens)!;
            using var molecule = Chem.Molecule.FromSmiles(spelled);
            Assert.Equal(canonical, molecule.ToSmiles());
            spellings.Add(spelled);
        }
        Assert.True(spellings.Count > 2, $"8 seeds gave {spellings.Count} spellings");
        // Too long for the sampling limit: the caller keeps the sampled spelling.
        Assert.Null(OptimizationSession.Randomized(canonical, 0, vocabulary, maxLength: 5));
        // A canonical SMILES RDKit wrote for a bred child but cannot read back (it ended a PMO run once): no spelling, no crash.
        Assert.Null(OptimizationSession.Randomized("Cc1ccc(O2C(C(N)(F)F)=CC(c3ccc(S(N)(=O)=O)cc3)=NC2C(F)(F)F)cc1", 0, vocabulary, maxLength: 128));
    }

    [Fact]
    public void TheEarlyStopSeesWhetherTheHundredBestScoresChanged()
    {
        static List<OracleCall> Calls(params double[] scores) => [.. scores.Select((s, i) => new OracleCall(i + 1, 1, $"C{i}", s))];
        double[] hundred = [.. Enumerable.Range(0, 100).Select(i => i / 100.0)];
        Assert.True(OracleBudget.TopChanged(Calls([.. hundred[..99], 0.5]), 1, 100)); // the list was still short
        Assert.False(OracleBudget.TopChanged(Calls([.. hundred, 0.0, -1]), 2, 100)); // ties the lowest: the same values
        Assert.True(OracleBudget.TopChanged(Calls([.. hundred, 0.0, 0.005]), 2, 100));
        Assert.False(OracleBudget.TopChanged(Calls([.. hundred]), 0, 100)); // no new call
    }

    [Fact]
    public void AugmentedMemoryPurgesMoleculesWhoseScaffoldBucketIsFull()
    {
        var filter = new DiversityFilter(new OptimizeConfig.DiversityFilterSection { Kind = "identical_murcko_scaffold", BucketSize = 2, MinimumScore = 0.5 });
        ScoredMolecule M(string smiles, string scaffold, double score) => new(smiles, smiles, scaffold, score, [], []);
        var memory = new List<ReplayedMolecule>();
        void Step(params ScoredMolecule[] batch)
        {
            var learned = filter.Apply(batch, out var buckets);
            for (int i = 0; i < batch.Length; i++)
                if (learned[i] > 0) memory.Add(new ReplayedMolecule(batch[i].Canonical!, [], true, learned[i], -20, buckets[i]));
            OptimizationSession.Purge(memory, filter);
        }
        Step(M("c1ccccc1C", "c1ccccc1", 0.9), M("C1CCCCC1C", "C1CCCCC1", 0.8), M("CCO", "", 0.3));
        Assert.Equal(["c1ccccc1C", "C1CCCCC1C", "CCO"], memory.Select(r => r.Canonical));
        // A second benzene fills its bucket: both leave the memory; the low scorer never fills the acyclic bucket.
        Step(M("c1ccccc1CC", "c1ccccc1", 0.7), M("CCCO", "", 0.2));
        Assert.Equal(["C1CCCCC1C", "CCO", "CCCO"], memory.Select(r => r.Canonical));
        // Without a filter nothing is full, so nothing is purged.
        var none = new DiversityFilter(new OptimizeConfig.DiversityFilterSection { Kind = "none" });
        var kept = new List<ReplayedMolecule>(memory);
        OptimizationSession.Purge(kept, none);
        Assert.Equal(memory, kept);
    }

    /// <summary>
    /// Learning must show within a small budget: the same seeded run, once with the default settings, once as plain
    /// REINVENT, and once with a learning rate too small to move the agent and no genetic exploration (its molecules
    /// are the prior's own samples), each spending 300 oracle calls. The oracle is a logP window: logP adds up over atoms, so every token the agent shifts moves it, and the
    /// prior rarely reaches the window (QED's top-10 is near its ceiling already in the prior's samples; a similarity
    /// needs far more calls). The run file is the smallest one allowed — prior, budget, output, one stage — so the
    /// defaults (bench pmo's settings) are what learns.
    /// </summary>
    [Fact]
    public void LearningRaisesTheTopTenWellAboveThePriorsOnTheSameBudget()
    {
        _ = TestData.Cpu;
        double TopTen(params string[] overrides)
        {
            string dir = TestData.TempDirectory();
            string path = BudgetedRunFile(dir, seed: 1, calls: 300, """
                [[stages.components]]
                type = "logp"
                transform = { kind = "sigmoid", low = 4.0, high = 9.0, k = 0.5 }
                """);
            var config = OptimizeConfig.Load(path, overrides);
            MoleculeOptimizer.Run(config, new OptimizeOptions { Threads = 2 });
            var calls = MoleculeOptimizer.ReadCalls(dir);
            Assert.Equal(300, calls.Count);
            return Discovery.Pmo.TopAuc.TopMean(calls.Select(c => c.Score));
        }
        double prior = TopTen("learning.lr=1e-12", "learning.genetic_offspring=0");
        double reinvent = TopTen("learning.strategy=reinvent", "learning.genetic_offspring=0");
        double defaults = TopTen();
        // Seen here: 0.924 after REINVENT's learning, 0.147 for the prior's own samples.
        Assert.True(reinvent > prior + 0.3, $"top-10 mean after REINVENT's learning {reinvent:F3}, prior's own samples {prior:F3}");
        Assert.True(defaults > prior + 0.3, $"top-10 mean with the default settings {defaults:F3}, prior's own samples {prior:F3}");
    }

    [Fact]
    public void UntilSomethingScoresTheAgentStaysThePriorAndTheSearchGoesOn()
    {
        // valsartan_smarts scores 0 until a molecule has its substructure (4 in 100,000 ZINC molecules do). Adam once
        // turned the round-off gradient of such batches into full steps, and the agent drifted to "CC" within 150
        // steps; and a top 100 of zeros counted as converged.
        _ = TestData.Cpu;
        string dir = TestData.TempDirectory();
        string path = BudgetedRunFile(dir, seed: 2, calls: 1100, """
            patience = 1
            aggregate = "arithmetic" # as bench pmo (a geometric mean floors each component at 1e-12)
            [[stages.components]]
            type = "substructure"
            smarts = ["[U]"]
            """);
        var steps = new List<OptimizeStepReport>();
        var result = MoleculeOptimizer.Run(OptimizeConfig.Load(path), new OptimizeOptions { Threads = 2, OnStep = steps.Add });
        Assert.Equal(["stage1: the oracle budget is spent (1100 calls)"], result.StageEndings);
        Assert.Equal(1100, MoleculeOptimizer.ReadCalls(dir).Count);
        Assert.All(steps, s => Assert.True(s.Loss < 1e-4, $"step {s.Step}: loss {s.Loss}"));
        Assert.True(steps[^2].ValidFraction > 0.6, $"valid {steps[^2].ValidFraction:P0} at step {steps[^2].Step}");
    }

    [Fact]
    public void AFewFaintFindsDoNotEndTheSearch()
    {
        // valsartan_smarts seed 2 found its substructure once, scoring 1e-7, and mol_opt's early stop ended the run five
        // steps later at 3,607 of 10,000 calls: a top 100 that still holds zeros has not converged. Here iodine scores
        // 1e-6 (too little to learn from), few of the prior's molecules have it, and patience is 1.
        _ = TestData.Cpu;
        string dir = TestData.TempDirectory();
        string path = BudgetedRunFile(dir, seed: 4, calls: 1200, "patience = 1\n" + FaintIodine,
            learning: "genetic_offspring = 0 # children of a find would carry it: finds would multiply");
        var result = MoleculeOptimizer.Run(OptimizeConfig.Load(path), new OptimizeOptions { Threads = 2 });
        var calls = MoleculeOptimizer.ReadCalls(dir);
        int found = calls.Count(c => c.Score > 0);
        Assert.InRange(found, 1, 99); // the premise: something found, not yet a top 100 of finds
        Assert.Equal(["stage1: the oracle budget is spent (1200 calls)"], result.StageEndings);
        Assert.Equal(1200, calls.Count);
    }

    [Fact]
    public void ALoneFaintFindIsBredFromAtOnce()
    {
        // valsartan_smarts seed 2 found its substructure once (1e-7) and the genetic step, waiting for two parents,
        // bred nothing for the rest of the run. Here iodine scores 1e-6: the step of the first find must breed from it.
        _ = TestData.Cpu;
        string dir = TestData.TempDirectory();
        string path = BudgetedRunFile(dir, seed: 4, calls: 600, FaintIodine);
        MoleculeOptimizer.Run(OptimizeConfig.Load(path), new OptimizeOptions { Threads = 2 });
        var rows = ScoreRows(dir);
        int firstFind = rows.First(r => r.Score > 0).Step;
        var step = rows.Where(r => r.Step == firstFind).ToList();
        Assert.Equal(1, step.Count(r => !r.Bred && r.Score > 0)); // the premise: one find, nothing in memory
        Assert.DoesNotContain(rows, r => r.Step < firstFind && r.Bred);
        Assert.Contains(step, r => r.Bred && r.Score > 0);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void InceptionMoleculesAreScoredFirstAndBredFrom(bool inception)
    {
        // A known molecule given as inception starts the replay memory: it is the run's first oracle call, and the first
        // step's genetic exploration breeds from it, so those children resemble it far more than the agent's samples do.
        _ = TestData.Cpu;
        string dir = TestData.TempDirectory();
        const string known = "CC(=O)Nc1ccc(OCC(=O)N2CCN(c3ccccc3)CC2)cc1";
        string path = BudgetedRunFile(dir, seed: 5, calls: 120, $$"""
            [[stages.components]]
            type = "similarity"
            smiles = ["{{known}}"]
            """, batchSize: 16, learning: inception ? $"inception = [\"{known}\"]" : "");
        MoleculeOptimizer.Run(OptimizeConfig.Load(path), new OptimizeOptions { Threads = 2 });
        var first = MoleculeOptimizer.ReadCalls(dir)[0];
        Assert.Equal(inception, first.Smiles == known && first.Score == 1);
        var step1 = ScoreRows(dir).Where(r => r.Step == 1).ToList();
        double bred = step1.Where(r => r.Bred).Average(r => r.Score), sampled = step1.Where(r => !r.Bred).Average(r => r.Score);
        Assert.Equal(inception, bred > sampled + 0.15);
    }

    [Fact]
    public void AnInceptionMoleculeThatIsNotOneIsNamed()
    {
        _ = TestData.Cpu;
        string dir = TestData.TempDirectory();
        string path = BudgetedRunFile(dir, seed: 1, calls: 100, "[[stages.components]]\ntype = \"qed\"", learning: "inception = [\"CCO\", \"C1CC\"]");
        var e = Assert.Throws<BioForgeException>(() => MoleculeOptimizer.Run(OptimizeConfig.Load(path), new OptimizeOptions { Threads = 2 }));
        Assert.Contains("learning.inception[1]: 'C1CC' is not a valid SMILES", e.Message);

        path = BudgetedRunFile(dir, seed: 1, calls: 2, "[[stages.components]]\ntype = \"qed\"", learning: "inception = [\"CCO\", \"CCN\"]");
        e = Assert.Throws<BioForgeException>(() => OptimizeConfig.Load(path));
        Assert.Contains("learning.inception: 2 molecules would spend the whole budget (2 oracle calls)", e.Message);

        // A session refused at construction (the server's /generate with a bad seed molecule) frees the agent it owns:
        // a copy of the model, once per bad request.
        path = BudgetedRunFile(dir, seed: 1, calls: 100, "[[stages.components]]\ntype = \"qed\"", learning: "inception = [\"C1CC\"]");
        using var prior = Models.Llama.LlamaCheckpoint.Load(Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small"), TestData.Cpu.Device, TestData.Cpu.DType);
        var agent = prior.Copy(TorchSharp.torch.ScalarType.Float32);
        var weight = agent.Model.parameters().First();
        Assert.Throws<BioForgeException>(() => new OptimizationSession(OptimizeConfig.Load(path), prior, agent));
        Assert.True(weight.IsInvalid, "the refused session's agent still holds its weights");
        Assert.False(prior.Model.parameters().First().IsInvalid);
    }

    /// <summary>The run's inputs are not its finds: sampled or bred again, an inception molecule stays out of the ranking
    /// (a quickstart listed the user's own active among the "optimized" candidates).</summary>
    [Fact]
    public void AnInceptionMoleculeFoundAgainIsNotRanked()
    {
        string dir = TestData.TempDirectory();
        string path = BudgetedRunFile(dir, seed: 1, calls: 100, "[[stages.components]]\ntype = \"qed\"", learning: "inception = [\"OCC\"]");
        using var prior = Models.Llama.LlamaCheckpoint.Load(Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small"), TestData.Cpu.Device, TestData.Cpu.DType);
        using var session = new OptimizationSession(OptimizeConfig.Load(path), prior, prior.Copy(TorchSharp.torch.ScalarType.Float32));
        session.Remember(new RankedMolecule(0, "CCO", 0.9, 3, "s", "", [0.9], [0.9])); // the inception molecule, canonical
        session.Remember(new RankedMolecule(0, "CCN", 0.5, 3, "s", "", [0.5], [0.5]));
        Assert.Equal(["CCN"], session.Ranked(10).Select(m => m.Canonical));
    }

    /// <summary>A later stage's inception molecules (paid again: a new stage has a new scoring function) may spend what
    /// the budget has left: the run ends there, with no sample left to learn from, instead of failing.</summary>
    [Fact]
    public void InceptionThatSpendsTheRestOfTheBudgetEndsTheRun()
    {
        _ = TestData.Cpu;
        string dir = TestData.TempDirectory();
        string[] known = ["CCO", "CCN", "CCC", "CCCl", "CCBr", "c1ccccc1", "CC(=O)O", "CCOC", "CCCN", "CCCO"];
        string path = BudgetedRunFile(dir, seed: 2, calls: 30, "min_steps = 1\nmax_steps = 1\n[[stages.components]]\ntype = \"qed\"\n[[stages]]\n[[stages.components]]\ntype = \"qed\"",
            batchSize: 16, learning: $"genetic_offspring = 0\ninception = [{string.Join(", ", known.Select(k => $"\"{k}\""))}]");
        var result = MoleculeOptimizer.Run(OptimizeConfig.Load(path), new OptimizeOptions { Threads = 2 });
        Assert.EndsWith("the oracle budget is spent (30 calls)", result.StageEndings[^1]);
        Assert.Equal(30, MoleculeOptimizer.ReadCalls(dir).Count);
    }

    [Fact]
    public void AStalledSearchStartsAgainFromThePriorAndSpendsTheBudget()
    {
        // Every molecule scores 0.5, so the 100 best stop changing at once: with on_stall = "restart" each search stalls
        // after its own first 1000 calls and starts again, instead of ending the run there (mol_opt's early stop).
        _ = TestData.Cpu;
        string dir = TestData.TempDirectory();
        string path = BudgetedRunFile(dir, seed: 3, calls: 2300, """
            patience = 1
            on_stall = "restart"
            aggregate = "arithmetic"
            [[stages.components]]
            type = "substructure"
            smarts = ["[#6]"]
            [[stages.components]]
            type = "substructure"
            smarts = ["[U]"]
            """, batchSize: 48);
        string toml = File.ReadAllText(path);
        var info = new List<string>();
        var result = MoleculeOptimizer.Run(OptimizeConfig.Load(path), new OptimizeOptions { Threads = 2, OnInfo = info.Add });
        Assert.Equal(["stage1: the oracle budget is spent (2300 calls)"], result.StageEndings);
        Assert.Equal(2300, MoleculeOptimizer.ReadCalls(dir).Count);
        var restarts = info.Where(line => line.Contains("starts again from the prior", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(restarts);
        int first = int.Parse(restarts[0].Split(" at ")[^1].Split(' ')[0], CultureInfo.InvariantCulture);
        Assert.InRange(first, 1001, 1300); // after the first search's own 1000 calls, not at once
        var metrics = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(restarts.Count, (int)metrics[^1]["restarts"]!);
        // The distinct Murcko scaffolds of each step's molecules (no diversity filter here: its buckets would be none).
        Assert.All(metrics.Where(m => m["scaffolds"] is not null), m => Assert.InRange((int)m["scaffolds"]!, 2, 48 + 32)); // the batch and its bred children

        // Without the second component every molecule scores 1: a top 10 at the ceiling cannot rise, so the run stops.
        string solvedDir = TestData.TempDirectory();
        File.WriteAllText(path, toml.Replace(dir, solvedDir).Replace("smarts = [\"[U]\"]", "smarts = [\"[#6]\"]"));
        var solved = MoleculeOptimizer.Run(OptimizeConfig.Load(path), new OptimizeOptions { Threads = 2 });
        Assert.Contains("(early stop, as mol_opt)", Assert.Single(solved.StageEndings));
        Assert.InRange(MoleculeOptimizer.ReadCalls(solvedDir).Count, 1001, 1300);

        string invalid = toml.Replace("on_stall = \"restart\"", "on_stall = \"rewind\"");
        File.WriteAllText(path, invalid);
        var e = Assert.Throws<BioForgeException>(() => OptimizeConfig.Load(path));
        Assert.Contains("on_stall must be stop or restart (got 'rewind')", e.Message);
    }

    // Iodine scores 1e-6, too little to learn from, and few of the prior's molecules have it; nothing else scores.
    private const string FaintIodine = """
        aggregate = "arithmetic"
        [[stages.components]]
        type = "substructure"
        smarts = ["[I]"]
        weight = 1e-6
        [[stages.components]]
        type = "substructure"
        smarts = ["[U]"]
        """;

    /// <summary>The rows of a one-stage run's scores file: step, score, and whether the genetic step bred the molecule.</summary>
    private static List<(int Step, double Score, bool Bred)> ScoreRows(string dir) =>
        [.. File.ReadAllLines(Path.Combine(dir, "scores_1_stage1.csv")).Skip(1).Select(l => l.Split(','))
            .Select(f => (int.Parse(f[0], CultureInfo.InvariantCulture), double.Parse(f[4], CultureInfo.InvariantCulture), f[^1] == "bred"))];

    /// <summary>Writes a run file over the shipped prior with an oracle budget and one stage (<paramref name="stage"/>:
    /// its settings and components), and returns its path.</summary>
    private static string BudgetedRunFile(string dir, int seed, int calls, string stage, int? batchSize = null, string learning = "")
    {
        string sampling = batchSize is { } b ? $"[sampling]\nbatch_size = {b}" : "";
        if (learning.Length > 0) learning = "[learning]\n" + learning;
        string toml = $$"""
            seed = {{seed}}
            [prior]
            model = "{{Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small")}}"
            {{sampling}}
            {{learning}}
            [budget]
            oracle_calls = {{calls}}
            [output]
            dir = "{{dir}}"
            [[stages]]
            {{stage}}
            """;
        string path = Path.Combine(TestData.TempDirectory(), "run.toml");
        File.WriteAllText(path, toml);
        return path;
    }

    /// <summary><c>bioforge optimize</c> as users run it: a run file with an override of its output folder, then
    /// <c>--resume</c> of the finished run, which says so and repeats nothing.</summary>
    [Fact]
    public void TheOptimizeCommandRunsAFileAndResumesAFinishedRunWithoutRepeatingIt()
    {
        _ = TestData.Cpu;
        string written = TestData.TempDirectory(), overridden = Path.Combine(TestData.TempDirectory(), "run");
        string path = BudgetedRunFile(written, seed: 1, calls: 48, "[[stages.components]]\ntype = \"qed\"", batchSize: 16);
        (int Code, string Out, string Err) Optimize(params string[] extra)
        {
            var (output, error) = (new StringWriter(), new StringWriter());
            int code = Cli.Cli.Run(["optimize", "--config", path, "--device", "cpu", "--threads", "2", $"output.dir={overridden}", .. extra], output, error);
            return (code, output.ToString(), error.ToString());
        }
        var first = Optimize();
        Assert.True(first.Code == 0, first.Err);
        Assert.Contains("top ", first.Out);
        Assert.Contains($"-> {overridden} (ranked.csv", first.Out);
        Assert.Empty(Directory.GetFileSystemEntries(written)); // the override, not the file's folder
        var calls = File.ReadAllLines(Path.Combine(overridden, "oracle_calls.csv"));
        Assert.Equal(49, calls.Length); // header and the budget

        var again = Optimize("--resume");
        Assert.True(again.Code == 0, again.Err);
        Assert.Contains("nothing to resume", again.Out);
        Assert.DoesNotContain("step ", again.Out.Replace("at step", "", StringComparison.Ordinal));
        Assert.Equal(calls, File.ReadAllLines(Path.Combine(overridden, "oracle_calls.csv")));
    }

    /// <summary>A loss that overflows (sigma so large that the augmented likelihood's square is infinite in float32)
    /// stops the run with its cause before Adam turns every weight of the agent NaN.</summary>
    [Fact]
    public void ANonFiniteLossStopsTheRunBeforeTheAgentLearnsFromIt()
    {
        _ = TestData.Cpu;
        string output = TestData.TempDirectory();
        string path = BudgetedRunFile(output, seed: 1, calls: 48, "[[stages.components]]\ntype = \"qed\"", batchSize: 16, learning: "sigma = 1e30");
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        int code = Cli.Cli.Run(["optimize", "--config", path, "--device", "cpu", "--threads", "2"], stdout, stderr);
        Assert.Equal(2, code);
        Assert.Contains("the agent's loss is infinite: the agent was not updated", stderr.ToString());
    }

    [Fact]
    public void HillClimbingLearnsFromTheBestQuarterOfTheBatch()
    {
        Assert.Equal([3, 1], OptimizationSession.HillClimbers([0.1, 0.8, 0.0, 0.9, 0.2, 0.8, 0.3, 0.5], 0.25));
        Assert.Equal([1, 5, 3], OptimizationSession.HillClimbers([0.1, 0.8, 0.0, 0.7, 0.2, 0.8], 0.5)); // ties: the earlier sample first
        Assert.Equal([0], OptimizationSession.HillClimbers([0.0, 0.0, 0.0], 0.01)); // at least one
        // skip_repeats: the best quarter of the other six positions (rounded up).
        Assert.Equal([5, 7], OptimizationSession.HillClimbers([0.1, 0.8, 0.0, 0.9, 0.2, 0.8, 0.3, 0.5], 0.25, [false, true, false, true, false, false, false, false]));
        Assert.Empty(OptimizationSession.HillClimbers([0.9, 0.8], 0.25, [true, true]));
    }

    [Fact]
    public void RepeatsAreMoleculesScoredInAnEarlierStepOrEarlierInTheBatch()
    {
        var filter = new DiversityFilter(new OptimizeConfig.DiversityFilterSection());
        static ScoredMolecule Molecule(string? canonical) => new(canonical ?? "C(", canonical, null, canonical is null ? 0 : 0.5, [], []);
        filter.Apply([Molecule("CCO")]);
        var batch = new[] { Molecule("CCO"), Molecule("CCN"), Molecule(null), Molecule("CCN"), Molecule("c1ccccc1") };
        Assert.Equal([true, false, false, true, false], OptimizationSession.Repeats(batch, filter));
    }

    [Fact]
    public void ReplayUpdatesDrawDistinctMoleculesFavouringTheBest()
    {
        Assert.Equal([0, 1, 2], OptimizationSession.RankWeightedDraw(3, 8, new Random(1))); // a short memory: all of it
        var random = new Random(7);
        var counts = new int[100];
        for (int trial = 0; trial < 2000; trial++)
        {
            int[] drawn = OptimizationSession.RankWeightedDraw(100, 10, random);
            Assert.Equal(10, drawn.Distinct().Count());
            foreach (int i in drawn) counts[i]++;
        }
        // Weight 1 / (1 + rank): the best is drawn in ~92 % of trials (uniform: 10 %), the 100th in ~3 %.
        Assert.True(counts[0] > 1700, $"best drawn {counts[0]} of 2000 times");
        Assert.True(counts[99] < counts[9] && counts[9] < counts[0], $"counts {counts[0]}, {counts[9]}, {counts[99]}");
    }

    [Fact]
    public void MaxStepsEndsTheWholeRunWhenAsked()
    {
        _ = TestData.Cpu;
        string dir = TestData.TempDirectory();
        string path = Path.Combine(TestData.TempDirectory(), "run.toml");
        File.WriteAllText(path, Run(dir, 3));
        // REINVENT 4's rules: max_steps ends the run, the diversity filter's memory carries over, repeats are dropped.
        var config = OptimizeConfig.Load(path, ["stages[0].max_steps_ends_run=true", "diversity_filter.keep_between_stages=true", "sampling.unique_sequences=true"]);
        var result = MoleculeOptimizer.Run(config, new OptimizeOptions { Threads = 2 });
        Assert.Equal(2, result.Steps);
        Assert.Equal(["warm-up: reached max_steps (2); the run ends"], result.StageEndings);
    }

    [Fact]
    public void BadRunFilesAreRefusedWithTheKeyOrTheLine()
    {
        string output = TestData.TempDirectory();
        var e = Assert.Throws<BioForgeException>(() => Config(Run(output, 2).Replace("type = \"qed\"\n[[stages]]", "type = \"qed\"\nwieght = 2\n[[stages]]", StringComparison.Ordinal)));
        Assert.Contains("unknown key 'stages[0].components[0].wieght'", e.Message);
        e = Assert.Throws<BioForgeException>(() => Config(Run(output, 2).Replace("type = \"qed\"\n[[stages]]", "type = \"kinase\"\n[[stages]]", StringComparison.Ordinal)));
        Assert.Contains("stages[0].components[0].type must be one of", e.Message);
        e = Assert.Throws<BioForgeException>(() => Config("seed = = 3\n"));
        Assert.Matches(@"run\.toml:1:\d+: [^(]", e.Message); // the place once, not again as Tomlyn's "(1,8) : error :"
        Assert.Single(e.Message.Split('\n'));
        // TOML forbids a key or a table given twice (the last one was read in silence).
        e = Assert.Throws<BioForgeException>(() => Config("seed = 0\nseed = 1\n" + Run(output, 2)));
        Assert.Matches(@"run\.toml:2:\d+: .*seed", e.Message);
        e = Assert.Throws<BioForgeException>(() => Config(Run(output, 2).Replace("[sampling]", "[sampling]\nbatch_size = 8\n[sampling]", StringComparison.Ordinal)));
        Assert.Contains("sampling", e.Message);
        e = Assert.Throws<BioForgeException>(() => Config(Run(output, 2, "[[stages.components]]\ntype = \"affinity\"\n")));
        Assert.Contains("an affinity component needs model", e.Message);
        // Above 1 no score fills a bucket: the filter did nothing, without a word.
        e = Assert.Throws<BioForgeException>(() => Config(Run(output, 2).Replace("[output]", "[diversity_filter]\nminimum_score = 1.5\n[output]", StringComparison.Ordinal)));
        Assert.Contains("diversity_filter.minimum_score must be in [0, 1] (got 1.5)", e.Message);
        e = Assert.Throws<BioForgeException>(() => MoleculeOptimizer.Run(Config(Run(TestData.TempDirectory(), 2).Replace("max_length = 64", "max_length = 1000", StringComparison.Ordinal)), new OptimizeOptions { Threads = 2 }));
        Assert.Contains("sampling.max_length 1000: the prior takes 256 positions, so at most 255 tokens", e.Message);
        // A negative budget is named as one (the inception check, which compares against it, spoke first).
        e = Assert.Throws<BioForgeException>(() => Config(Run(output, 2, "[budget]\noracle_calls = -5\n")));
        Assert.Contains("budget.oracle_calls must be 0 (no budget) or positive (got -5)", e.Message);
    }

    [Fact]
    public void AnInvalidTargetSequenceIsRefusedWithThePosition()
    {
        var e = Assert.Throws<BioForgeException>(() => ProteinTarget.Resolve("MKTAYIAKQR1QISFVKSHFSRQLEERLGLIEVQAPILEQ"));
        Assert.Contains("'1' at position 11 is not an amino acid", e.Message);
        Assert.Contains("empty", Assert.Throws<BioForgeException>(() => ProteinTarget.Resolve("  ")).Message);
    }

    /// <summary>
    /// "EGFR" was read as a four-residue protein by screen and optimize (quickstart knew the name): a name of the Davis
    /// set is its sequence everywhere, and text too short for a protein is refused with the nearest name.
    /// </summary>
    [Fact]
    public void ATargetIsANameAFastaFileOrAProteinSequence()
    {
        var egfr = ProteinTarget.Resolve("egfr");
        Assert.Equal("EGFR", egfr.Name);
        Assert.True(egfr.Sequence.Length > 1000);
        Assert.Equal(egfr, ProteinTarget.Resolve("EGFR", files: false));
        var e = Assert.Throws<BioForgeException>(() => ProteinTarget.Resolve("EGFRX"));
        Assert.Contains("target 'EGFRX': not a target name of the Davis set (did you mean EGFR?)", e.Message);
        Assert.Contains("5 characters; a target has at least 30 residues", e.Message);
        Assert.Contains("not a target name", Assert.Throws<BioForgeException>(() => ProteinTarget.Resolve("MKV")).Message);
        // A UniProt accession of the KIBA set: named by it, with the Davis name of the same sequence (not a mutant's) where there is one.
        Assert.Equal(new ProteinTarget("P00533 (EGFR)", egfr.Sequence), ProteinTarget.Resolve("p00533"));
        var btkKiba = ProteinTarget.Resolve("Q06187", files: false);
        Assert.Equal("Q06187", btkKiba.Name);
        Assert.StartsWith("MAAVILESIFLKRSQQKKKTSPLNFKKRLFLLTVHKLSYYEYDFERGRRGSKKGSIDVEK", btkKiba.Sequence); // BTK, 659 residues
        Assert.Equal(659, btkKiba.Sequence.Length);

        string dir = TestData.TempDirectory();
        string one = Path.Combine(dir, "btk.fasta"), two = Path.Combine(dir, "two.fasta");
        var btk = ProteinTarget.Resolve("BTK");
        File.WriteAllText(one, $">sp|Q06187|BTK_HUMAN Tyrosine-protein kinase BTK\n{btk.Sequence}*\n");
        Assert.Equal(btk with { Name = "sp|Q06187|BTK_HUMAN" }, ProteinTarget.Resolve(one)); // named by its id; the stop left out
        File.WriteAllText(two, $">a\n{btk.Sequence}\n>b\n{btk.Sequence}\n");
        Assert.Contains("holds more than one FASTA record", Assert.Throws<BioForgeException>(() => ProteinTarget.Resolve(two)).Message);
        Assert.Equal(btk.Sequence, ProteinTarget.Resolve(btk.Sequence.ToLowerInvariant() + "*").Sequence);
        Assert.Contains("not found", Assert.Throws<BioForgeException>(() => ProteinTarget.Resolve(Path.Combine(dir, "none.fasta"))).Message);
    }

    /// <summary>
    /// MolMIM's guided generation as a library call (the server's /generate maps onto it): the molecules that meet the
    /// similarity asked for come first, by the objective, then the nearest misses; never the seed, never twice; one
    /// seed, one answer.
    /// </summary>
    /// <summary>
    /// The answer's order: a molecule at the similarity asked for goes before a closer-scoring miss, by the objective
    /// within each group; the seed and copies are left out, and the count is of distinct molecules.
    /// </summary>
    [Fact]
    public void NearSeedAnswersPutMoleculesThatMeetTheSimilarityFirst()
    {
        var request = new NearSeedRequest("CCO", "QED", Minimize: false, MinSimilarity: 0.4, Particles: 8, Iterations: 1, Learn: true, Molecules: 4, RandomSeed: 0);
        NearSeedGeneration.Candidate[] scored =
        [
            new("CCCO", Objective: 0.9, Property: 0.8, Similarity: 0.39), // the best objective, but a miss
            new("CCCN", 0.2, 0.3, 0.5),
            new("CCO", 1.0, 0.4, 1.0), // the seed
            new("CCN", 0.6, 0.5, 0.45),
            new("CCN", 0.6, 0.5, 0.45),
            new("CCCC", 0.1, 0.2, 0.1),
            new("CCCS", 0.05, 0.1, 0.05),
        ];
        var (molecules, count) = NearSeedGeneration.Rank(scored, request);
        Assert.Equal(["CCN", "CCCN", "CCCO", "CCCC"], molecules.Select(m => m.Smiles));
        Assert.Equal(5, count);
        Assert.Equal(new NearSeedMolecule("CCN", 0.5, 0.45), molecules[0]);
    }

    [Fact]
    public void NearSeedGenerationRanksMoleculesThatMeetTheSimilarityFirst()
    {
        string directory = Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small");
        using var prior = Models.Llama.LlamaCheckpoint.Load(directory, TestData.Cpu.Device, TestData.Cpu.DType);
        var request = new NearSeedRequest("CC(=O)Nc1ccc(O)cc1", "QED", Minimize: false, MinSimilarity: 0.2, Particles: 24, Iterations: 2, Learn: false,
            Molecules: 12, RandomSeed: 5);
        var (molecules, scored) = NearSeedGeneration.Run(request, prior, directory);
        Assert.InRange(molecules.Count, 2, 12);
        Assert.InRange(scored, molecules.Count, 48);
        Assert.DoesNotContain(molecules, m => m.Smiles == request.Seed);
        Assert.Equal(molecules.Count, molecules.Select(m => m.Smiles).Distinct().Count());
        var meets = molecules.Select(m => m.Similarity >= request.MinSimilarity).ToList();
        Assert.Equal(meets.OrderByDescending(b => b), meets); // the ones that meet it, then the misses
        Assert.Contains("property must be QED or plogP", Assert.Throws<BioForgeException>(() => NearSeedGeneration.Run(request with { Property = "qed" }, prior, directory)).Message);
        using var qed = new Chem.Qed();
        foreach (var m in molecules)
        {
            using var molecule = Chem.Molecule.FromSmiles(m.Smiles);
            Assert.Equal(qed.Score(molecule), m.Property, 0.5e-4 + 1e-12);
        }
        Assert.Equal(molecules, NearSeedGeneration.Run(request, prior, directory).Molecules);
        Assert.NotEqual(molecules, NearSeedGeneration.Run(request with { RandomSeed = 6 }, prior, directory).Molecules);
    }
}
