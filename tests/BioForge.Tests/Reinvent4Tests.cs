using BioForge.Discovery;

namespace BioForge.Tests;

/// <summary>REINVENT 4 staged-learning files read as BioForge runs, and the transforms' REINVENT 4 meanings.</summary>
public sealed class Reinvent4Tests
{
    private static string Data(string name) => TestData.Path("reinvent4", name);

    [Fact]
    public void AReinvent4FileIsTheSameRunAsItsBioForgeTwin()
    {
        var notes = new List<string>();
        var reinvent = OptimizeConfig.Load(Data("staged_learning.toml"), onNote: notes.Add);
        var bioforge = OptimizeConfig.Load(Data("staged_learning_bioforge.toml"));
        Assert.Equal(bioforge.ToJsonText(), reinvent.ToJsonText());
        Assert.Equal(2, reinvent.Stages.Count);
        Assert.Equal(["Unwanted SMARTS", "QED", "Molecular weight", "SA score"], reinvent.Stages[0].Components.Select(c => c.Label));
        // Accepted settings that do not apply here are reported, never dropped silently.
        foreach (string key in new[] { "device", "tb_logdir", "json_out_config", "parameters.randomize_smiles", "stage[0].chkpt_file", "stage[1].chkpt_file", "diversity_filter.minsimilarity" })
            Assert.Contains(notes, n => n.Contains($": {key}: ", StringComparison.Ordinal));
        Assert.Equal(7, notes.Count);
        Assert.Contains(notes, n => n.EndsWith("json_out_config: not applied; BioForge writes the resolved run to run_config.json in the run directory", StringComparison.Ordinal));
    }

    [Fact]
    public void OverridesApplyToTheTranslatedRun()
    {
        var run = OptimizeConfig.Load(Data("staged_learning.toml"), ["output.dir=/tmp/elsewhere", "budget.oracle_calls=500"]);
        Assert.Equal("/tmp/elsewhere", run.Output.Dir);
        Assert.Equal(500, run.Budget.OracleCalls);
    }

    /// <summary>A minimal REINVENT 4 file (REINVENT's own defaults apply), with extra parameters, stage keys or another component.</summary>
    private static string Minimal(string parameters = "", string stage = "", string component = "[stage.scoring.component.Qed]\n[[stage.scoring.component.Qed.endpoint]]\n") => $"""
        run_type = "staged_learning"
        [parameters]
        prior_file = "models/smiles-llama-small"
        agent_file = "models/smiles-llama-small"
        {parameters}
        [[stage]]
        max_steps = 10
        {stage}
        [stage.scoring]
        type = "geometric_mean"
        [[stage.scoring.component]]
        {component}
        """;

    private static OptimizeConfig Load(string toml)
    {
        string path = Path.Combine(TestData.TempDirectory(), "reinvent.toml");
        File.WriteAllText(path, toml);
        return OptimizeConfig.Load(path);
    }

    [Theory]
    [InlineData("NumRings", "rings")]
    [InlineData("NumAromaticRings", "aromatic_rings")]
    [InlineData("NumRotBond", "rotatable_bonds")]
    public void Reinvent4sRdkitDescriptorsAreBioForgesComponents(string reinvent, string bioforge)
    {
        var run = Load(Minimal(component: $"[stage.scoring.component.{reinvent}]\n[[stage.scoring.component.{reinvent}.endpoint]]\ntransform.type = \"step\"\ntransform.low = 1.0\ntransform.high = 3.0\n"));
        Assert.Equal(bioforge, Assert.Single(run.Stages[0].Components).Type);
        // A count read through no transform would be clamped to [0, 1] (any molecule with a ring scoring 1): refused.
        var e = Assert.Throws<BioForgeException>(() => Load(Minimal(component: $"[stage.scoring.component.{reinvent}]\n[[stage.scoring.component.{reinvent}.endpoint]]\n")));
        Assert.Contains($"a value of {bioforge} is not a score in [0, 1]; give it a transform", e.Message);
    }

    [Fact]
    public void LeftOutSectionsTakeReinvent4sDefaults()
    {
        var run = Load(Minimal());
        Assert.Equal(100, run.Sampling.BatchSize);
        Assert.Equal(1e-4, run.Learning.Lr);
        Assert.Equal(128, run.Learning.Sigma);
        Assert.Equal(0, run.Learning.ReplaySamples); // no [inception]: no replay
        Assert.Equal("none", run.DiversityFilter.Kind); // no [diversity_filter]: none
        Assert.Equal("summary", run.Output.Dir);
        var stage = Assert.Single(run.Stages);
        // REINVENT's min_steps of 50 past max_steps 10: max_steps ends the run first either way.
        Assert.Equal((10, 10, 1.0, 0.0, true), (stage.MaxSteps, stage.MinSteps, stage.MaxScore, stage.MinUnique, stage.MaxStepsEndsRun));
        Assert.Equal("identity", Assert.Single(stage.Components).Transform.Kind);
    }

    /// <summary>REINVENT 4's step window is closed: low = high picks one value ("exactly two aromatic rings").</summary>
    [Fact]
    public void AStepWindowMayBeOneValue()
    {
        var run = Load(Minimal(component: "[stage.scoring.component.NumAromaticRings]\n[[stage.scoring.component.NumAromaticRings.endpoint]]\ntransform.type = \"step\"\ntransform.low = 2.0\ntransform.high = 2.0\n"));
        var transform = Assert.Single(Assert.Single(run.Stages).Components).Transform;
        Assert.Equal([0.0, 1.0, 0.0], new[] { 1.0, 2.0, 3.0 }.Select(transform.Apply));
    }

    [Theory]
    [InlineData("", "", "[stage.scoring.component.GroupCount]\n[[stage.scoring.component.GroupCount.endpoint]]\nparams.smarts = \"c\"\n", "",
        "stage[0].scoring.component[0].GroupCount.endpoint[0]: scoring component 'GroupCount' is not supported")]
    [InlineData("", "", "[stage.scoring.component.SlogP]\n[[stage.scoring.component.SlogP.endpoint]]\ntransform.type = \"left_step\"\ntransform.low = 3.0\n", "",
        "stage[0].scoring.component[0].SlogP.endpoint[0].transform.type: 'left_step' is not supported")]
    [InlineData("", "", "[stage.scoring.component.SlogP]\n[[stage.scoring.component.SlogP.endpoint]]\ntransform.type = \"sigmoid\"\ntransform.low = 3.0\ntransform.high = 3.0\ntransform.k = 0.5\n", "",
        "stage[0].scoring.component[0].SlogP.endpoint[0].transform: high must exceed low")]
    [InlineData("", "", "[stage.scoring.component.TanimotoSimilarity]\n[[stage.scoring.component.TanimotoSimilarity.endpoint]]\nparams.smiles = [\"CCO\", \"CCN\"]\nparams.radius = 2\nparams.use_counts = true\nparams.use_features = false\n", "",
        "params.smiles: 2 references: give exactly one per endpoint")]
    [InlineData("", "", "[stage.scoring.component.Qed]\n[[stage.scoring.component.Qed.endpoint]]\nwieght = 2\n", "",
        "stage[0].scoring.component[0].Qed.endpoint[0].wieght: not supported")]
    [InlineData("", "[stage.diversity_filter]\ntype = \"IdenticalMurckoScaffold\"\n", "[stage.scoring.component.Qed]\n[[stage.scoring.component.Qed.endpoint]]\n", "",
        "stage[0].diversity_filter: a diversity filter per stage is not supported")]
    [InlineData("", "", "[stage.scoring.component.Qed]\n[[stage.scoring.component.Qed.endpoint]]\n", "[responder]\nendpoint = \"http://x\"\n",
        "responder: not supported")]
    [InlineData("", "", "[stage.scoring.component.Qed]\n[[stage.scoring.component.Qed.endpoint]]\n", "[diversity_filter]\ntype = \"ScaffoldSimilarity\"\n",
        "diversity_filter.type: 'ScaffoldSimilarity' is not supported")]
    [InlineData("", "", "[stage.scoring.component.Qed]\n[[stage.scoring.component.Qed.endpoint]]\n", "[learning_strategy]\ntype = \"sdap\"\n",
        "learning_strategy.type: 'sdap' is not supported")]
    [InlineData("use_checkpoint = true\n", "", "[stage.scoring.component.Qed]\n[[stage.scoring.component.Qed.endpoint]]\n", "",
        "parameters.use_checkpoint: true is not supported")]
    [InlineData("", "", "[stage.scoring.component.MatchingSubstructure]\n[[stage.scoring.component.MatchingSubstructure.endpoint]]\nparams.smarts = \"c1ccccc1\"\ntransform.type = \"step\"\n", "",
        "MatchingSubstructure is a filter/penalty in REINVENT 4; a transform does not apply")]
    public void UnsupportedSettingsAreRefusedByName(string parameters, string stage, string component, string sections, string expected)
    {
        string toml = Minimal(parameters, stage, component) + "\n" + sections;
        var e = Assert.Throws<BioForgeException>(() => Load(toml));
        Assert.Contains("reinvent.toml: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void InceptionsSmilesFileStartsTheReplayMemory()
    {
        string file = Path.Combine(TestData.TempDirectory(), "inception.smi");
        File.WriteAllText(file, "CC(=O)Oc1ccccc1C(=O)O aspirin\n\nc1ccccc1O,phenol\n");
        var run = Load(Minimal() + $"\n[inception]\nsmiles_file = \"{file}\"\nmemory_size = 20\nsample_size = 4\n");
        Assert.Equal(["CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1O"], run.Learning.Inception);
        Assert.Equal((20, 4), (run.Learning.ReplaySize, run.Learning.ReplaySamples));

        var e = Assert.Throws<BioForgeException>(() => Load(Minimal() + "\n[inception]\nsmiles_file = \"no/such.smi\"\n"));
        Assert.Contains("inception.smiles_file: 'no/such.smi' does not exist", e.Message);

        // A table's header is skipped; a line RDKit cannot read is named with its file and line.
        string table = Path.Combine(TestData.TempDirectory(), "actives.csv");
        File.WriteAllText(table, "SMILES,name\nCCO,ethanol\nC1CC(,broken\n");
        e = Assert.Throws<BioForgeException>(() => Load(Minimal() + $"\n[inception]\nsmiles_file = \"{table}\"\n"));
        Assert.Contains($"{table}:3: 'C1CC(' is not a valid SMILES", e.Message);
    }

    [Fact]
    public void AnAgentOtherThanThePriorIsRefused()
    {
        string toml = Minimal().Replace("agent_file = \"models/smiles-llama-small\"", "agent_file = \"runs/x/agent\"", StringComparison.Ordinal);
        Assert.Contains("parameters.agent_file: 'runs/x/agent' differs from prior_file", Assert.Throws<BioForgeException>(() => Load(toml)).Message);
    }

    [Fact]
    public void OtherRunTypesAreRefused()
    {
        var e = Assert.Throws<BioForgeException>(() => Load("run_type = \"transfer_learning\"\n"));
        Assert.Contains("run_type: 'transfer_learning' is not supported", e.Message);
    }

    [Fact]
    public void TransformsFollowReinvent4sFormulas()
    {
        // REINVENT 4's double sigmoid (configs/toml/staged_learning.toml): low 200, high 500, coef_div 500, coef_si = coef_se = 20,
        // i.e. base-10 slopes of 20/500 per unit, halves joined at the window's centre; low and high map to exactly 0.5.
        var window = new TransformSettings { Kind = "double_sigmoid", Low = 200, High = 500, K = 20.0 / 500 };
        Assert.Equal(0.5, window.Apply(200), 12);
        Assert.Equal(0.5, window.Apply(500), 12);
        Assert.Equal(1 / (1 + Math.Pow(10, 0.04 * -150)), window.Apply(350), 12); // the centre: the falling half
        Assert.Equal(1 / (1 + Math.Pow(10, 0.04 * 100)), window.Apply(100), 12);
        var skewed = window with { KHigh = 0.1 };
        Assert.Equal(1 / (1 + Math.Pow(10, 0.1 * 50)), skewed.Apply(550), 12);
        Assert.Equal(window.Apply(250), skewed.Apply(250), 12);
        // REINVENT 4's sigmoid: 1 / (1 + 10^(−10·k·(x − (low + high)/2) / (high − low))).
        var sigmoid = new TransformSettings { Kind = "sigmoid", Low = 1, High = 4, K = 0.25 };
        Assert.Equal(1 / (1 + Math.Pow(10, -10 * 0.25 * (3.5 - 2.5) / 3)), sigmoid.Apply(3.5), 12);
    }

    [Fact]
    public void Reinvent4sSimilarityAndPenaltiesScoreAsItDoes()
    {
        _ = TestData.Cpu;
        ComponentSettings counts = new() { Type = "similarity", Smiles = ["c1ccccc1O"], Fingerprint = "counts", Radius = 2 };
        ComponentSettings sets = counts with { Fingerprint = "unfolded" };
        ComponentSettings sulfonamide = new() { Type = "matching_substructure", Smarts = ["S(=O)(=O)N"] };
        ComponentSettings qed = new() { Type = "qed" };
        using var scoring = new ScoringFunction([counts, sets, qed, sulfonamide], "arithmetic", TestData.Cpu.Device);
        var scored = scoring.Score(["c1ccccc1O", "CCO", "NS(=O)(=O)c1ccccc1"]);
        Assert.Equal(1.0, scored[0].Raw[0], 12);
        Assert.Equal(1.0, scored[0].Raw[1], 12);
        Assert.Equal(0.5, scored[1].Transformed[3]); // no sulfonamide: REINVENT 4 halves the total
        Assert.Equal(1.0, scored[2].Transformed[3]);
        Assert.Equal(0.5 * (scored[1].Raw[0] + scored[1].Raw[1] + scored[1].Raw[2]) / 3, scored[1].Score, 12);
    }
}
