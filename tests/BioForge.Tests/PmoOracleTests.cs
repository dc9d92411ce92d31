using System.Globalization;
using BioForge.Chem;
using BioForge.Chem.Oracles;
using BioForge.Discovery;

namespace BioForge.Tests;

/// <summary>
/// The 20 offline PMO oracles against GuacaMol's own scores (data/pmo/oracle_reference.tsv, RDKit 2022.09), and their
/// building blocks against RDKit's Python (values printed by tools/pmo_building_blocks.py).
/// </summary>
public sealed class PmoOracleTests
{
    private const double Tolerance = 1e-6;

    [Fact]
    public void EveryTaskMatchesGuacaMolOnEveryFixtureMolecule()
    {
        var lines = File.ReadAllLines(TestData.Path("pmo", "oracle_reference.tsv"));
        string[] header = lines[0].Split('\t');
        var rows = lines.Skip(1).Select(l => l.Split('\t')).ToArray();
        Assert.Equal(PmoOracle.Tasks.Order(), header.Skip(1).Order());
        Assert.True(rows.Length > 300);

        var worst = new List<(double Deviation, string Task, string Smiles, double Expected, double Actual)>();
        for (int t = 1; t < header.Length; t++)
        {
            using var oracle = new PmoOracle(header[t]);
            var scores = new double[rows.Length];
            // Parallel on purpose: one oracle scores from several threads at once.
            Parallel.For(0, rows.Length, i => scores[i] = oracle.Score(rows[i][0]));
            var deviations = rows.Select((r, i) => (Deviation: Math.Abs(scores[i] - double.Parse(r[t], CultureInfo.InvariantCulture)), i))
                .MaxBy(d => d.Deviation);
            var row = rows[deviations.i];
            worst.Add((deviations.Deviation, header[t], row[0], double.Parse(row[t], CultureInfo.InvariantCulture), scores[deviations.i]));
        }
        var failing = worst.Where(w => !(w.Deviation <= Tolerance)).OrderByDescending(w => w.Deviation).ToList();
        Assert.True(failing.Count == 0, "worst deviation per failing task:\n" + string.Join("\n",
            failing.Select(w => $"{w.Task}: {w.Deviation:G3} on {w.Smiles} (GuacaMol {w.Expected:R}, ours {w.Actual:R})")));
    }

    [Fact]
    public void InvalidSmilesScoresZeroAndUnknownTasksAreNamed()
    {
        using var oracle = new PmoOracle("celecoxib_rediscovery");
        Assert.Equal(0, oracle.Score("C1CC(=O"));
        Assert.Equal(0, oracle.Score(""));
        Assert.Equal(1, oracle.Score("Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1"), 12);
        var e = Assert.Throws<BioForgeException>(() => new PmoOracle("drd2"));
        Assert.Contains("unknown PMO task 'drd2'", e.Message);
        Assert.Contains("zaleplon_mpo", e.Message);
        Assert.Equal(20, PmoOracle.Tasks.Count);
    }

    [Fact]
    public void TanimotoOnCountsIsSumOfMinimaOverSumsLessThem()
    {
        var a = new Dictionary<uint, uint> { [1] = 2, [2] = 1, [3] = 4 };
        var b = new Dictionary<uint, uint> { [1] = 1, [3] = 4, [5] = 3 };
        // Σmin = 1 + 4 = 5; Σa + Σb − Σmin = 7 + 8 − 5 = 10.
        Assert.Equal(0.5, Fingerprints.Tanimoto(a, b), 15);
        Assert.Equal(1, Fingerprints.Tanimoto(a, a), 15);
        Assert.Equal(0, Fingerprints.Tanimoto(new Dictionary<uint, uint>(), new Dictionary<uint, uint>()));
        Assert.Equal(0.25, Fingerprints.Tanimoto(new HashSet<int> { 1, 2 }, new HashSet<int> { 2, 3, 4 }), 15);
    }

    [Fact]
    public void FeatureMorganAndAtomPairCountsAgreeWithRDKit()
    {
        using var albuterol = Molecule.FromSmiles("CC(C)(C)NCC(O)c1ccc(O)c(CO)c1");
        using var target = Molecule.FromSmiles("CCCOc1cc2ncnc(Nc3ccc4ncsc4c3)c2cc1S(=O)(=O)C(C)(C)C");
        Assert.Equal(0.1891891891891892, Fingerprints.Tanimoto(Fingerprints.FeatureMorganCounts(albuterol), Fingerprints.FeatureMorganCounts(target)), 15);
        Assert.Equal(0.08061420345489444, Fingerprints.Tanimoto(Fingerprints.AtomPairCounts(albuterol, maxLength: 10), Fingerprints.AtomPairCounts(target, maxLength: 10)), 15);
    }

    [Theory]
    [InlineData("CC(C)(C)NCC(O)c1ccc(O)c(CO)c1", 371.41759115181975)]
    [InlineData("CCCOc1cc2ncnc(Nc3ccc4ncsc4c3)c2cc1S(=O)(=O)C(C)(C)C", 1358.4519449255954)]
    [InlineData("NC(CC(=O)N1CCn2c(nnc2C(F)(F)F)C1)Cc1cc(F)c(F)cc1F", 896.3804853871782)]
    [InlineData("CC(=O)Oc1ccccc1C(=O)O", 343.2228677267164)]
    [InlineData("C#CCN.[Na+].[Cl-]", 40.54808140664299)]
    [InlineData("CC", 0.0)]
    public void BertzComplexityAgreesWithRDKit(string smiles, double expected)
    {
        using var m = Molecule.FromSmiles(smiles);
        Assert.Equal(expected, GraphDescriptors.BertzCT(m), 9);
    }

    [Theory]
    [InlineData("CC(C)(C)NCC(O)c1ccc(O)c(CO)c1", 148)]
    [InlineData("CCCOc1cc2ncnc(Nc3ccc4ncsc4c3)c2cc1S(=O)(=O)C(C)(C)C", 667)]
    [InlineData("NC(CC(=O)N1CCn2c(nnc2C(F)(F)F)C1)Cc1cc(F)c(F)cc1F", 644)]
    [InlineData("C#CCN.[Na+].[Cl-]", 0)]
    [InlineData("CC", 0)]
    public void GobbiPharmacophoreSetsAsManyBitsAsRDKit(string smiles, int expected)
    {
        using var pharmacophore = new GobbiPharmacophore();
        using var m = Molecule.FromSmiles(smiles);
        Assert.Equal(expected, pharmacophore.Fingerprint(m).Count);
    }

    /// <summary>
    /// RDKit's TanimotoSimilarity: 1 for two empty bit vectors (two molecules without any pharmacophore pair, or a
    /// zero-atom record), 0 for two empty count vectors.
    /// </summary>
    [Fact]
    public void EmptyFingerprintsCompareAsRDKitComparesThem()
    {
        using var pharmacophore = new GobbiPharmacophore();
        using var ethane = Molecule.FromSmiles("CC");
        using var butane = Molecule.FromSmiles("CCCC");
        Assert.Equal(1.0, Fingerprints.Tanimoto(pharmacophore.Fingerprint(ethane), pharmacophore.Fingerprint(butane)));
        Assert.Equal(1.0, Fingerprints.Tanimoto(new ulong[32], new ulong[32]));
        Assert.Equal(0.0, Fingerprints.Tanimoto(new Dictionary<uint, uint>(), new Dictionary<uint, uint>()));
    }

    [Fact]
    public void GobbiPharmacophoreBitsAreRDKitsBits()
    {
        using var pharmacophore = new GobbiPharmacophore();
        using var aspirin = Molecule.FromSmiles("CC(=O)Oc1ccccc1C(=O)O");
        int[] rdkit = [7, 22, 24, 70, 71, 72, 77, 78, 147, 149, 151, 154, 156, 158, 3581, 7349, 16473, 16524, 16561, 16565, 16802, 16804, 16851, 16855, 16896, 28589, 28745, 28822, 28934];
        Assert.Equal(rdkit, pharmacophore.Fingerprint(aspirin).Order());
        Assert.Equal(39972, pharmacophore.Size);
    }

    [Fact]
    public void ModifiersFollowGuacaMol()
    {
        Assert.Equal(0.8, ScoreModifiers.Clipped(0.6, 0.75), 12);
        Assert.Equal(1, ScoreModifiers.Clipped(0.9, 0.75));
        Assert.Equal(0, ScoreModifiers.Clipped(-0.1, 0.75));
        Assert.Equal(Math.Exp(-0.5), ScoreModifiers.Gaussian(3, 2, 1), 15);
        Assert.Equal(1, ScoreModifiers.MinGaussian(0.5, 1, 1));
        Assert.Equal(Math.Exp(-2), ScoreModifiers.MinGaussian(3, 1, 1), 15);
        Assert.Equal(1, ScoreModifiers.MaxGaussian(120, 100, 10));
        Assert.Equal(Math.Exp(-0.5), ScoreModifiers.MaxGaussian(90, 100, 10), 15);
        Assert.Equal(2, ScoreModifiers.GeometricMean([1, 4]), 15);
        Assert.Equal(0, ScoreModifiers.GeometricMean([0, 4]));
        Assert.Equal(2.5, ScoreModifiers.ArithmeticMean([1, 4]), 15);
    }

    private static string RunFile(string component) => $"""
        [prior]
        model = "models/unused"
        [output]
        dir = "{TestData.TempDirectory()}"
        [[stages]]
        name = "pmo"
        [[stages.components]]
        {component}
        """;

    private static OptimizeConfig Load(string toml)
    {
        string path = Path.Combine(TestData.TempDirectory(), "run.toml");
        File.WriteAllText(path, toml);
        return OptimizeConfig.Load(path);
    }

    [Fact]
    public void PmoComponentValidatesItsTaskAndScoresAsTheOracle()
    {
        var e = Assert.Throws<BioForgeException>(() => Load(RunFile("type = \"pmo\"\ntask = \"jnk3\"")));
        Assert.Contains("pmo component needs task = one of albuterol_similarity", e.Message);
        Assert.Contains("(got 'jnk3')", e.Message);
        Assert.Throws<BioForgeException>(() => Load(RunFile("type = \"pmo\"")));

        var config = Load(RunFile("type = \"pmo\"\ntask = \"median1\""));
        var component = Assert.Single(config.Stages[0].Components);
        Assert.Equal("median1", component.Task);
        using var scoring = new ScoringFunction(config.Stages[0].Components, "geometric", TestData.Cpu.Device);
        using var oracle = new PmoOracle("median1");
        string[] smiles = ["CC(C)C1CCC(C)CC1O", "CC1(C)C2CCC1(C)C(=O)C2", "not a molecule"];
        var scored = scoring.Score(smiles);
        for (int i = 0; i < smiles.Length; i++) Assert.Equal(oracle.Score(smiles[i]), scored[i].Score, 12);
        Assert.True(scored[0].Score > 0);
    }

    /// <summary>
    /// The building blocks are components of a run file of their own: five PMO objectives written from them (the
    /// similarities on ECFP6/FCFP4/atom-pair counts and Gobbi pharmacophores, the gaussians, the clipped line, Bertz
    /// CT, an element count, a formula, SMARTS; geometric and arithmetic means) score every fixture molecule as the
    /// built-in oracles do.
    /// </summary>
    [Fact]
    public void PmoObjectivesWrittenFromComponentsScoreAsTheOracles()
    {
        const string osimertinib = "COc1cc(N(C)CCN(C)C)c(NC(=O)C=C)cc1Nc2nccc(n2)c3cn(C)c4ccccc34";
        const string ranolazine = "COc1ccccc1OCC(O)CN2CCN(CC(=O)Nc3c(C)cccc3C)CC2";
        const string decoHop = "CCCOc1cc2ncnc(Nc3ccc4ncsc4c3)c2cc1S(=O)(=O)C(C)(C)C";
        const string sitagliptin = "NC(CC(=O)N1CCn2c(nnc2C(F)(F)F)C1)Cc1cc(F)c(F)cc1F";
        double logP, tpsa, bertz;
        using (var m = Molecule.FromSmiles(sitagliptin)) (logP, tpsa, bertz) = (m.Descriptors().LogP, m.Descriptors().Tpsa, GraphDescriptors.BertzCT(m));
        static string R(double x) => x.ToString("R", CultureInfo.InvariantCulture);
        string Stage(string name, string aggregate, params string[] components) =>
            $"[[stages]]\nname = \"{name}\"\naggregate = \"{aggregate}\"\n" + string.Concat(components.Select(c => $"[[stages.components]]\n{c}\n"));
        string toml = $"[prior]\nmodel = \"models/unused\"\n[output]\ndir = \"{TestData.TempDirectory()}\"\n"
            + Stage("osimertinib_mpo", "geometric",
                $"type = \"similarity\"\nsmiles = [\"{osimertinib}\"]\nfingerprint = \"counts\"\nfeatures = true\ntransform = {{ kind = \"clipped\", low = 0.0, high = 0.8 }}",
                $"type = \"similarity\"\nsmiles = [\"{osimertinib}\"]\nfingerprint = \"counts\"\nradius = 3\ntransform = {{ kind = \"min_gaussian\", mu = 0.85, sigma = 0.1 }}",
                "type = \"tpsa\"\ntransform = { kind = \"max_gaussian\", mu = 100.0, sigma = 10.0 }",
                "type = \"logp\"\ntransform = { kind = \"min_gaussian\", mu = 1.0, sigma = 1.0 }")
            + Stage("ranolazine_mpo", "geometric",
                $"type = \"similarity\"\nsmiles = [\"{ranolazine}\"]\nfingerprint = \"atom_pairs\"\ntransform = {{ kind = \"clipped\", low = 0.0, high = 0.7 }}",
                "type = \"logp\"\ntransform = { kind = \"max_gaussian\", mu = 7.0, sigma = 1.0 }",
                "type = \"tpsa\"\ntransform = { kind = \"max_gaussian\", mu = 95.0, sigma = 20.0 }",
                "type = \"element_count\"\nelement = \"F\"\ntransform = { kind = \"gaussian\", mu = 1.0, sigma = 1.0 }")
            // A SMARTS that must not match, as a term of the mean (not a penalty): the clipped line from (1, 0) to (0, 1).
            + Stage("deco_hop", "arithmetic",
                $"type = \"similarity\"\nsmiles = [\"{decoHop}\"]\nfingerprint = \"pharmacophore\"\ntransform = {{ kind = \"clipped\", low = 0.0, high = 0.85 }}",
                "type = \"substructure\"\nsmarts = [\"CS([#6])(=O)=O\"]\ntransform = { kind = \"clipped\", low = 1.0, high = 0.0 }",
                "type = \"substructure\"\nsmarts = [\"[#7]-c1ccc2ncsc2c1\"]\ntransform = { kind = \"clipped\", low = 1.0, high = 0.0 }",
                "type = \"substructure\"\nsmarts = [\"[#7]-c1n[c;h1]nc2[c;h1]c(-[#8])[c;h0][c;h1]c12\"]")
            + Stage("isomers_c9h10n2o2pf2cl", "geometric", "type = \"isomer\"\nformula = \"C9H10N2O2PF2Cl\"")
            + Stage("valsartan_smarts", "geometric",
                "type = \"substructure\"\nsmarts = [\"CN(C=O)Cc1ccc(c2ccccc2)cc1\"]",
                $"type = \"logp\"\ntransform = {{ kind = \"gaussian\", mu = {R(logP)}, sigma = 0.2 }}",
                $"type = \"tpsa\"\ntransform = {{ kind = \"gaussian\", mu = {R(tpsa)}, sigma = 5.0 }}",
                $"type = \"bertz\"\ntransform = {{ kind = \"gaussian\", mu = {R(bertz)}, sigma = 30.0 }}");
        var config = Load(toml);
        // Valsartan itself: no fixture molecule holds the valsartan SMARTS.
        string[] smiles = [.. File.ReadAllLines(TestData.Path("pmo", "oracle_reference.tsv")).Skip(1).Select(l => l.Split('\t')[0]),
            "CCCCC(=O)N(Cc1ccc(-c2ccccc2-c2nn[nH]n2)cc1)C(C(C)C)C(=O)O"];
        foreach (var stage in config.Stages)
        {
            using var scoring = new ScoringFunction(stage.Components, stage.Aggregate, TestData.Cpu.Device);
            using var oracle = new PmoOracle(stage.Name);
            var scored = scoring.Score(smiles);
            double worst = smiles.Select((smi, i) => Math.Abs(scored[i].Score - oracle.Score(smi))).Max();
            Assert.True(worst <= 1e-12, $"{stage.Name} from components: off the oracle by {worst:G3}");
            Assert.Contains(scored, m => m.Score > 0);
        }
    }

    /// <summary>A condensed formula (CH3COOH) is the formula it abbreviates: acetic acid is its isomer, scoring 1, not 0.37.</summary>
    [Fact]
    public void AFormulaThatNamesAnElementTwiceAddsItsCounts()
    {
        using var aceticAcid = Molecule.FromSmiles("CC(=O)O");
        using var ethanol = Molecule.FromSmiles("CCO");
        Assert.Equal(1.0, new IsomerScore("CH3COOH").Score(aceticAcid), 12);
        Assert.Equal(new IsomerScore("C2H4O2").Score(ethanol), new IsomerScore("CH3COOH").Score(ethanol), 12);
        Assert.True(new IsomerScore("C2H4O2").Score(ethanol) < 0.6);
    }

    [Fact]
    public void AnExternalProgramHasTenMinutesPerBatchUnlessTheRunFileSaysOtherwise()
    {
        const string program = "type = \"external_process\"\nexecutable = \"score.sh\"\nproperty = \"predictions\"";
        Assert.Equal(600, Assert.Single(Load(RunFile(program)).Stages[0].Components).TimeoutS);
        Assert.Equal(30, Assert.Single(Load(RunFile(program + "\ntimeout_s = 30")).Stages[0].Components).TimeoutS);
        Assert.Contains("timeout_s must be positive", Assert.Throws<BioForgeException>(() => Load(RunFile(program + "\ntimeout_s = 0"))).Message);
    }

    [Theory]
    [InlineData("type = \"isomer\"\nformula = \"C7H8Xx2\"", "unknown element 'Xx'")]
    [InlineData("type = \"isomer\"\nformula = \"c1ccccc1\"", "not a molecular formula")]
    [InlineData("type = \"isomer\"", "needs formula")]
    [InlineData("type = \"element_count\"\nelement = \"Q\"", "needs element = an element symbol")]
    [InlineData("type = \"logp\"\ntransform = { kind = \"gaussian\", mu = 2.0 }", "gaussian needs sigma")]
    [InlineData("type = \"logp\"\ntransform = { kind = \"max_gaussian\", sigma = 1.0 }", "max_gaussian needs mu")]
    [InlineData("type = \"logp\"\ntransform = { kind = \"sigmoid\", low = 1.0, high = 3.0, mu = 2.0 }", "mu: only for the gaussians")]
    [InlineData("type = \"logp\"\ntransform = { kind = \"clipped\", low = 2.0, high = 2.0 }", "clipped needs low ≠ high")]
    [InlineData("type = \"similarity\"\nsmiles = [\"CCO\"]\nfingerprint = \"atom_pairs\"\nfeatures = true", "features (FCFP) needs")]
    public void BuildingBlockComponentsRefuseWhatTheyCannotUse(string component, string message)
    {
        var e = Assert.Throws<BioForgeException>(() => Load(RunFile(component)));
        Assert.Contains(message, e.Message);
    }
}
