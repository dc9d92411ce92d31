using BioForge.Chem;
using BioForge.Discovery;

namespace BioForge.Tests;

/// <summary>A chemist's limits as written on the command line, and the alert rules a covalent design allows.</summary>
public sealed class PropertyLimitTests
{
    private const string Paracetamol = "CC(=O)Nc1ccc(O)cc1";
    private const string Imatinib = "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1";
    private const string Ibrutinib = "C=CC(=O)N1CCC(CC1)n1nc(-c2ccc(Oc3ccccc3)cc2)c2c(N)ncnc12";
    private const string ArachidicAcid = "CCCCCCCCCCCCCCCCCCCC(=O)O";

    [Fact]
    public void LimitsReadAsAChemistWritesThem()
    {
        Assert.Equal(new PropertyLimit("mw", double.MinValue, 500, "mw<=500"), PropertyLimit.Parse("MW <= 500"));
        Assert.Equal(new PropertyLimit("logp", 1, double.MaxValue, "logp>=1"), PropertyLimit.Parse("logp>=1"));
        Assert.Equal(new PropertyLimit("logp", -0.5, 4, "-0.5<=logp<=4"), PropertyLimit.Parse("-0.5<=logp<=4"));
        Assert.Equal(new PropertyLimit("mw", double.MinValue, 1000, "mw<=1e3"), PropertyLimit.Parse("mw<=1e3"));
        Assert.Equal(new PropertyLimit("qed", 0.5, double.MaxValue, "qed>=.5"), PropertyLimit.Parse("qed>=.5"));
        // The columns chem props writes name two of them differently; a limit reads them as the same property.
        Assert.Equal(new PropertyLimit("mw", double.MinValue, 500, "mw<=500"), PropertyLimit.Parse("molwt<=500"));
        Assert.Equal(new PropertyLimit("rotatable_bonds", double.MinValue, 10, "rotatable_bonds<=10"), PropertyLimit.Parse("rotb<=10"));
        Assert.Equal(["mw<=500", "logp<=5", "hbd<=5", "hba<=10", "qed>=0.5"], PropertyLimit.ParseAll(["ro5", "qed>=0.5"]).Select(l => l.Text));
        var window = PropertyLimit.Parse("2<=logp<=4");
        Assert.Equal([true, true, false, false], [window.Holds(2), window.Holds(4), window.Holds(1.99), window.Holds(4.01)]);
    }

    [Theory]
    [InlineData("mw<500", "only <= and >= (a limit includes its bound)")]
    [InlineData("mwt<=500", "'mwt' is not a property a limit can bound (did you mean mw?)")]
    [InlineData("5<=logp<=2", "the lower bound 5 is above the upper 2")]
    [InlineData("2<=logp>=4", "a range reads low<=name<=high")]
    [InlineData("lipinski", "not a limit such as mw<=500")]
    [InlineData("mw<=abc", "not a limit such as mw<=500")]
    [InlineData("mw<=1.2.3", "not a limit such as mw<=500")]
    [InlineData("mw<=.", "not a limit such as mw<=500")]
    [InlineData("mw≤500", "write ≤ as <= and ≥ as >=")]
    public void ABadLimitIsRefusedWithWhatIsWrong(string text, string expected)
    {
        var e = Assert.Throws<BioForgeException>(() => PropertyLimit.ParseAll([text]));
        Assert.Contains($"--limit '{text}'", e.Message);
        Assert.Contains(expected, e.Message);
    }

    /// <summary>The values checked are RDKit's (Python's Descriptors.MolWt, Crippen.MolLogP, QED.qed on these molecules).</summary>
    [Fact]
    public void AMoleculeBreaksTheFirstLimitItIsOutside()
    {
        using var limits = new PropertyLimits(PropertyLimit.ParseAll(["ro5", "qed>=0.4"]));
        string? Broken(string smiles)
        {
            using var m = Molecule.FromSmiles(smiles);
            return limits.FirstBroken(m)?.Text;
        }
        Assert.Null(Broken(Paracetamol)); // MW 151.2, logP 1.35, QED 0.595
        Assert.Equal("qed>=0.4", Broken(Imatinib)); // MW 493.6 ≤ 500, logP 4.59, QED 0.389
        Assert.Equal("logp<=5", Broken(ArachidicAcid)); // logP 7.11
        using var tight = new PropertyLimits([PropertyLimit.Parse("mw<=440.5")]);
        using var ibrutinib = Molecule.FromSmiles(Ibrutinib);
        Assert.Equal("mw<=440.5", tight.FirstBroken(ibrutinib)?.Text); // 440.51
    }

    /// <summary>
    /// A limit in a scoring function zeroes a molecule outside it and leaves the others' score as it was (a penalty, not a
    /// term of the mean); written in a run file as a step transform with penalty = true.
    /// </summary>
    [Fact]
    public void ALimitIsAPenaltyThatLeavesTheMeanAlone()
    {
        _ = TestData.Cpu;
        ComponentSettings qed = new() { Type = "qed" };
        using var plain = new ScoringFunction([qed], "geometric", TestData.Cpu.Device);
        using var limited = new ScoringFunction([qed, PropertyLimit.Parse("mw<=450").AsPenalty()], "geometric", TestData.Cpu.Device);
        var before = plain.Score([Paracetamol, Imatinib]);
        var after = limited.Score([Paracetamol, Imatinib]);
        Assert.Equal(before[0].Score, after[0].Score, 12);
        Assert.Equal(0.0, after[1].Score);
        Assert.Equal(493.62, after[1].Raw[1], 2);

        var problems = new List<string>();
        void Check(ComponentSettings c) => c.Validate("c", (ok, message) => { if (!ok) problems.Add(message); });
        Check(new ComponentSettings { Type = "mw", Penalty = true });
        Check(new ComponentSettings { Type = "filters", Penalty = true });
        Check(new ComponentSettings { Type = "qed", Allow = ["Michael_acceptor_1"] });
        Check(new ComponentSettings { Type = "qed", Penalty = true }); // already in [0, 1]: allowed
        Check(new ComponentSettings { Type = "logp" }); // joining the mean, the same: identity would clamp it
        Check(new ComponentSettings { Type = "external_process", Executable = "score", Property = "predictions" }); // the program's values are its own to scale
        Assert.Equal(4, problems.Count);
        Assert.Contains("c.transform: a value of logp is not a score in [0, 1]; give it a transform", problems[3]);
        Assert.Contains("c.penalty: a value of mw is not a score in [0, 1]", problems[0]);
        Assert.Contains("a filters component is a penalty already", problems[1]);
        Assert.Contains("c.allow: only for a filters component", problems[2]);
    }

    /// <summary>Ibrutinib's acrylamide is Brenk's Michael_acceptor_1 (RDKit's FilterCatalog in Python says the same): allowed, it is no alert and no zero.</summary>
    [Fact]
    public void AnAllowedAlertNeitherShowsNorZeroesTheScore()
    {
        using (var filters = new StructuralFilters(FilterCatalogs.Pains | FilterCatalogs.Brenk))
        using (var allowing = new StructuralFilters(FilterCatalogs.Pains | FilterCatalogs.Brenk, ["michael_acceptor_1"]))
        using (var m = Molecule.FromSmiles(Ibrutinib))
        {
            Assert.Equal(["BRENK:Michael_acceptor_1"], filters.Matches(m));
            Assert.Empty(allowing.Matches(m));
            // RDKit 2022.09's catalogues: 480 PAINS rules (A 16, B 55, C 409) and 105 Brenk rules.
            Assert.Equal(585, filters.Rules().Count);
            Assert.Equal(105, filters.Rules().Count(r => r.StartsWith("BRENK:", StringComparison.Ordinal)));
        }
        var e = Assert.Throws<BioForgeException>(() => new StructuralFilters(FilterCatalogs.Brenk, ["Michael_acceptor"]));
        Assert.Equal("alert 'Michael_acceptor' is not a rule of the BRENK filters (did you mean Michael_acceptor_1?)", e.Message);

        _ = TestData.Cpu;
        ComponentSettings qed = new() { Type = "qed" };
        using var strict = new ScoringFunction([qed, new ComponentSettings { Type = "filters" }], "geometric", TestData.Cpu.Device);
        using var covalent = new ScoringFunction([qed, new ComponentSettings { Type = "filters", Allow = ["BRENK:Michael_acceptor_1"] }], "geometric", TestData.Cpu.Device);
        Assert.Equal(0.0, strict.Score([Ibrutinib])[0].Score);
        Assert.Equal(0.467, covalent.Score([Ibrutinib])[0].Score, 3);
    }

    /// <summary>A run file says the same with <c>penalty = true</c> and <c>allow = [...]</c>; a rule no catalogue has fails the run before its first step.</summary>
    [Fact]
    public void ARunFileWritesLimitsAndAllowedAlerts()
    {
        string output = Path.Combine(TestData.TempDirectory(), "run");
        var config = OptimizeTests.Config(OptimizeTests.Run(output, 2, """
            [[stages.components]]
            type = "logp"
            penalty = true
            transform = { kind = "step", low = -10.0, high = 5.0 }
            [[stages.components]]
            type = "filters"
            allow = ["Michael_acceptor_1"]
            """));
        var components = config.Stages[1].Components;
        Assert.True(components[2].Penalty && components[2].IsPenalty && !components[2].IsStructuralPenalty);
        Assert.Equal(["Michael_acceptor_1"], components[3].Allow);

        var typo = OptimizeTests.Config(OptimizeTests.Run(output, 2, "[[stages.components]]\ntype = \"filters\"\nallow = [\"michael\"]"));
        var e = Assert.Throws<BioForgeException>(() => MoleculeOptimizer.Run(typo, new OptimizeOptions { Threads = 2 }));
        Assert.StartsWith("stages[1] 'small rings': alert 'michael' is not a rule of the PAINS_A, PAINS_B, PAINS_C, BRENK filters", e.Message);
        Assert.False(Directory.Exists(output), "the run folder was left behind");
    }
}
