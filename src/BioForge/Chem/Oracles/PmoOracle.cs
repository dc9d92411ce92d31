using static BioForge.Chem.Oracles.ScoreModifiers;

namespace BioForge.Chem.Oracles;

/// <summary>
/// One of the 20 PMO tasks that need no downloaded model (Gao et al. 2022), scored as GuacaMol's objectives score them
/// (RDKit fingerprints, descriptors, score modifiers and means; see docs/REFERENCE §7). Target fingerprints and
/// descriptors are computed once, in the constructor; scoring only reads them, so one oracle may score from several
/// threads at once. An unreadable SMILES scores 0.
/// </summary>
public sealed class PmoOracle : IDisposable
{
    private const string Celecoxib = "CC1=CC=C(C=C1)C1=CC(=NN1C1=CC=C(C=C1)S(N)(=O)=O)C(F)(F)F";
    private const string Troglitazone = "Cc1c(C)c2OC(C)(COc3ccc(CC4SC(=O)NC4=O)cc3)CCc2c(C)c1O";
    private const string Thiothixene = "CN(C)S(=O)(=O)c1ccc2Sc3ccccc3C(=CCCN4CCN(C)CC4)c2c1";
    private const string DecoHopTarget = "CCCOc1cc2ncnc(Nc3ccc4ncsc4c3)c2cc1S(=O)(=O)C(C)(C)C";
    private const string QuinazolineCore = "[#7]-c1n[c;h1]nc2[c;h1]c(-[#8])[c;h0][c;h1]c12";

    /// <summary>The task names, as PMO (and TDC's <c>Oracle(name=…)</c>) spell them.</summary>
    public static IReadOnlyList<string> Tasks { get; } =
    [
        "albuterol_similarity", "amlodipine_mpo", "celecoxib_rediscovery", "deco_hop", "fexofenadine_mpo",
        "isomers_c7h8n2o2", "isomers_c9h10n2o2pf2cl", "median1", "median2", "mestranol_similarity", "osimertinib_mpo",
        "perindopril_mpo", "qed", "ranolazine_mpo", "scaffold_hop", "sitagliptin_mpo", "thiothixene_rediscovery",
        "troglitazone_rediscovery", "valsartan_smarts", "zaleplon_mpo",
    ];

    private readonly List<IDisposable> owned = [];
    private readonly GobbiPharmacophore? pharmacophore;
    private readonly Func<Candidate, double> objective;

    public string Task { get; }

    /// <summary>Builds the task's objective; throws <see cref="BioForgeException"/> naming the known tasks when unknown.</summary>
    public PmoOracle(string task)
    {
        if (!Tasks.Contains(task)) throw new BioForgeException($"unknown PMO task '{task}'; known tasks: {string.Join(", ", Tasks)}");
        Task = task;
        if (task is "deco_hop" or "scaffold_hop")
        {
            pharmacophore = new GobbiPharmacophore();
            owned.Add(pharmacophore);
        }
        try
        {
            objective = Build(task);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The task's score in [0, 1]; 0 when RDKit cannot read <paramref name="smiles"/>.</summary>
    public double Score(string smiles)
    {
        if (!Molecule.TryFromSmiles(smiles, out var molecule, out _)) return 0;
        using (molecule) return Score(molecule!);
    }

    public double Score(Molecule molecule)
    {
        using var candidate = new Candidate(molecule, pharmacophore);
        return objective(candidate);
    }

    private Func<Candidate, double> Build(string task) => task switch
    {
        "albuterol_similarity" => Clip(Similarity("CC(C)(C)NCC(O)c1ccc(O)c(CO)c1", Print.Fcfp4), 0.75),
        "mestranol_similarity" => Clip(Similarity("COc1ccc2[C@H]3CC[C@@]4(C)[C@@H](CC[C@@]4(O)C#C)[C@@H]3CCc2c1", Print.AtomPairs), 0.75),
        // GuacaMol clips rediscovery at 1, which leaves a similarity as it is.
        "celecoxib_rediscovery" => Similarity(Celecoxib, Print.Ecfp4),
        "troglitazone_rediscovery" => Similarity(Troglitazone, Print.Ecfp4),
        "thiothixene_rediscovery" => Similarity(Thiothixene, Print.Ecfp4),
        "isomers_c7h8n2o2" => Isomer("C7H8N2O2"),
        "isomers_c9h10n2o2pf2cl" => Isomer("C9H10N2O2PF2Cl"),
        "median1" => Geometric(Similarity("CC(C)C1CCC(C)CC1O", Print.Ecfp4), Similarity("CC1(C)C2CCC1(C)C(=O)C2", Print.Ecfp4)),
        "median2" => Geometric(
            Similarity("O=C1N(CC(N2C1CC3=C(C2C4=CC5=C(OCO5)C=C4)NC6=C3C=CC=C6)=O)C", Print.Ecfp6),
            Similarity("CCCC1=NN(C2=C1N=C(NC2=O)C3=C(C=CC(=C3)S(=O)(=O)N4CCN(CC4)C)OCC)C", Print.Ecfp6)),
        "osimertinib_mpo" => Osimertinib(),
        "fexofenadine_mpo" => Geometric(
            Clip(Similarity("CC(C)(C(=O)O)c1ccc(cc1)C(O)CCCN2CCC(CC2)C(O)(c3ccccc3)c4ccccc4", Print.AtomPairs), 0.8),
            c => MaxGaussian(c.Descriptors.Tpsa, 90, 10),
            c => MinGaussian(c.Descriptors.LogP, 4, 1)),
        "ranolazine_mpo" => Geometric(
            Clip(Similarity("COc1ccccc1OCC(O)CN2CCN(CC(=O)Nc3c(C)cccc3C)CC2", Print.AtomPairs), 0.7),
            c => MaxGaussian(c.Descriptors.LogP, 7, 1),
            c => MaxGaussian(c.Descriptors.Tpsa, 95, 20),
            c => Gaussian(c.ElementCount(9), 1, 1)),
        "perindopril_mpo" => Geometric(
            Similarity("O=C(OCC)C(NC(C(=O)N1C(C(=O)O)CC2CCCCC12)C)CCC", Print.Ecfp4),
            c => Gaussian(c.Descriptors.AromaticRings, 2, 0.5)),
        "amlodipine_mpo" => Geometric(
            Similarity(@"Clc1ccccc1C2C(=C(/N/C(=C2/C(=O)OCC)COCCN)C)\C(=O)OC", Print.Ecfp4),
            c => Gaussian(c.Descriptors.Rings, 3, 0.5)),
        "sitagliptin_mpo" => Sitagliptin(),
        "zaleplon_mpo" => Geometric(Similarity("O=C(C)N(CC)C1=CC=CC(C2=CC=NC3=C(C=NN23)C#N)=C1", Print.Ecfp4), Isomer("C19H17N3O2")),
        "valsartan_smarts" => Valsartan(),
        "deco_hop" => Arithmetic(
            Clip(Similarity(DecoHopTarget, Print.Pharmacophore), 0.85),
            Smarts("CS([#6])(=O)=O", inverse: true),
            Smarts("[#7]-c1ccc2ncsc2c1", inverse: true),
            Smarts(QuinazolineCore)),
        "scaffold_hop" => Arithmetic(
            Clip(Similarity(DecoHopTarget, Print.Pharmacophore), 0.75),
            Smarts("[#6]-[#6]-[#6]-[#8]-[#6]~[#6]~[#6]~[#6]~[#6]-[#7]-c1ccc2ncsc2c1"),
            Smarts(QuinazolineCore, inverse: true)),
        "qed" => Qed(),
        _ => throw new BioForgeException($"unknown PMO task '{task}'"),
    };

    private Func<Candidate, double> Osimertinib()
    {
        const string osimertinib = "COc1cc(N(C)CCN(C)C)c(NC(=O)C=C)cc1Nc2nccc(n2)c3cn(C)c4ccccc34";
        var ecfp6 = Similarity(osimertinib, Print.Ecfp6);
        return Geometric(
            Clip(Similarity(osimertinib, Print.Fcfp4), 0.8),
            c => MinGaussian(ecfp6(c), 0.85, 0.1),
            c => MaxGaussian(c.Descriptors.Tpsa, 100, 10),
            c => MinGaussian(c.Descriptors.LogP, 1, 1));
    }

    // A molecule unlike sitagliptin with sitagliptin's logP, TPSA and formula.
    private Func<Candidate, double> Sitagliptin()
    {
        const string sitagliptin = "Fc1cc(c(F)cc1F)CC(N)CC(=O)N3Cc2nnc(n2CC3)C(F)(F)F";
        var target = TargetDescriptors(sitagliptin);
        var similarity = Similarity(sitagliptin, Print.Ecfp4);
        return Geometric(
            c => Gaussian(similarity(c), 0, 0.1),
            c => Gaussian(c.Descriptors.LogP, target.LogP, 0.2),
            c => Gaussian(c.Descriptors.Tpsa, target.Tpsa, 5),
            Isomer("C16H15F6N5O"));
    }

    // Valsartan's SMARTS with the logP, TPSA and Bertz complexity of sitagliptin (another SMILES of it than above).
    private Func<Candidate, double> Valsartan()
    {
        const string sitagliptin = "NC(CC(=O)N1CCn2c(nnc2C(F)(F)F)C1)Cc1cc(F)c(F)cc1F";
        var target = TargetDescriptors(sitagliptin);
        double bertz;
        using (var m = Molecule.FromSmiles(sitagliptin)) bertz = GraphDescriptors.BertzCT(m);
        return Geometric(
            Smarts("CN(C=O)Cc1ccc(c2ccccc2)cc1"),
            c => Gaussian(c.Descriptors.LogP, target.LogP, 0.2),
            c => Gaussian(c.Descriptors.Tpsa, target.Tpsa, 5),
            c => Gaussian(c.Bertz, bertz, 30));
    }

    private Func<Candidate, double> Qed()
    {
        var qed = new Qed();
        owned.Add(qed);
        return c => qed.Score(c.Molecule);
    }

    private static MolecularDescriptors TargetDescriptors(string smiles)
    {
        using var m = Molecule.FromSmiles(smiles);
        return m.Descriptors();
    }

    private Func<Candidate, double> Similarity(string smiles, Print kind)
    {
        using var target = Molecule.FromSmiles(smiles);
        using var candidate = new Candidate(target, pharmacophore);
        if (kind == Print.Pharmacophore)
        {
            var bits = candidate.Pharmacophore;
            return c => Fingerprints.Tanimoto(c.Pharmacophore, bits);
        }
        var counts = candidate.Counts(kind);
        return c => Fingerprints.Tanimoto(c.Counts(kind), counts);
    }

    private Func<Candidate, double> Smarts(string smarts, bool inverse = false)
    {
        var query = new SmartsQuery(smarts);
        owned.Add(query);
        return c => c.Molecule.HasMatch(query) != inverse ? 1 : 0;
    }

    private static Func<Candidate, double> Isomer(string formula)
    {
        var score = new IsomerScore(formula);
        return c => score.Score(c.ElementCount, c.AtomsWithHydrogens);
    }

    private static Func<Candidate, double> Clip(Func<Candidate, double> term, double upper) => c => Clipped(term(c), upper);

    private static Func<Candidate, double> Geometric(params Func<Candidate, double>[] terms) => c =>
    {
        var parts = new double[terms.Length];
        for (int i = 0; i < terms.Length; i++) parts[i] = terms[i](c);
        return GeometricMean(parts);
    };

    private static Func<Candidate, double> Arithmetic(params Func<Candidate, double>[] terms) => c =>
    {
        var parts = new double[terms.Length];
        for (int i = 0; i < terms.Length; i++) parts[i] = terms[i](c);
        return ArithmeticMean(parts);
    };

    public void Dispose()
    {
        foreach (var item in owned) item.Dispose();
        owned.Clear();
    }

    private enum Print { Ecfp4, Ecfp6, Fcfp4, AtomPairs, Pharmacophore }

    /// <summary>One molecule being scored, with what its terms need computed at most once (one per call, one thread).</summary>
    private sealed class Candidate(Molecule molecule, GobbiPharmacophore? pharmacophore) : IDisposable
    {
        private readonly Dictionary<uint, uint>?[] counts = new Dictionary<uint, uint>?[4];
        private MolecularDescriptors? descriptors;
        private IReadOnlySet<int>? pharmacophoreBits;
        private double? bertz;
        private Molecule? withHydrogens;
        private IReadOnlyList<(int AtomicNumber, int FormalCharge)>? atoms;

        public Molecule Molecule => molecule;

        public MolecularDescriptors Descriptors => descriptors ??= molecule.Descriptors();

        public double Bertz => bertz ??= GraphDescriptors.BertzCT(molecule);

        public IReadOnlySet<int> Pharmacophore => pharmacophoreBits ??= pharmacophore!.Fingerprint(molecule);

        public Dictionary<uint, uint> Counts(Print kind) => counts[(int)kind] ??= kind switch
        {
            Print.Ecfp4 => Fingerprints.MorganCounts(molecule, 2),
            Print.Ecfp6 => Fingerprints.MorganCounts(molecule, 3),
            Print.Fcfp4 => Fingerprints.FeatureMorganCounts(molecule, 2),
            _ => Fingerprints.AtomPairCounts(molecule, maxLength: 10),
        };

        // GuacaMol counts atoms after Chem.AddHs, so implicit hydrogens count as atoms.
        private IReadOnlyList<(int AtomicNumber, int FormalCharge)> AllAtoms =>
            atoms ??= (withHydrogens ??= molecule.WithHydrogens()).Atoms();

        public int AtomsWithHydrogens => AllAtoms.Count;

        public int ElementCount(int atomicNumber) => AllAtoms.Count(a => a.AtomicNumber == atomicNumber);

        public void Dispose() => withHydrogens?.Dispose();
    }
}
