using BioForge.Chem;
using BioForge.Chem.Oracles;
using TorchSharp;

namespace BioForge.Discovery;

/// <summary>
/// Maps a component's raw value (a property, a similarity, a predicted affinity) onto [0, 1], desirability style:
/// <c>sigmoid</c> rises from <c>low</c> to <c>high</c>, <c>reverse_sigmoid</c> falls, <c>double_sigmoid</c> is high
/// inside the window [low, high], <c>step</c> is 1 inside the window and 0 outside, <c>identity</c> clamps.
/// The sigmoids are REINVENT 4's, so its run files keep their meaning (<see cref="Reinvent4Format"/>). GuacaMol's
/// modifiers, so the PMO objectives can be written from their parts: <c>gaussian</c> (<c>mu</c>, <c>sigma</c>),
/// <c>min_gaussian</c> (1 up to mu), <c>max_gaussian</c> (1 from mu on) and <c>clipped</c> (the line through
/// (low, 0) and (high, 1), clipped; high below low makes it fall).
/// </summary>
public sealed record TransformSettings
{
    public string Kind { get; init; } = "identity";
    public double Low { get; init; }
    public double High { get; init; } = 1;
    /// <summary>Steepness: REINVENT's k for the single sigmoids (0.5 spans the window); per unit of the value for double_sigmoid.</summary>
    public double K { get; init; } = 0.5;
    /// <summary>double_sigmoid only: the steepness of the falling edge at <c>high</c> when it differs from <see cref="K"/> (REINVENT 4's coef_se / coef_div).</summary>
    public double? KHigh { get; init; }
    /// <summary>The gaussians' centre and width.</summary>
    public double? Mu { get; init; }
    public double? Sigma { get; init; }

    public double Apply(double x) => Kind switch
    {
        // REINVENT's sigmoid: the midpoint of [low, high] maps to 0.5; k·10/(high − low) sets how fast it turns.
        "sigmoid" => 1 / (1 + Math.Pow(10, K * ((High + Low) / 2 - x) * 10 / (High - Low))),
        "reverse_sigmoid" => 1 / (1 + Math.Pow(10, K * (x - (High + Low) / 2) * 10 / (High - Low))),
        // REINVENT 4's double sigmoid (its stable form, which replaced REINVENT 3's A/B − C) is two halves joined at the
        // window's centre: the rising edge at low left of it, the falling edge at high right of it, so low and high each map to exactly 0.5.
        "double_sigmoid" => x < (Low + High) / 2
            ? 1 / (1 + Math.Pow(10, K * (Low - x)))
            : 1 / (1 + Math.Pow(10, (KHigh ?? K) * (x - High))),
        "step" => x >= Low && x <= High ? 1 : 0,
        "gaussian" => ScoreModifiers.Gaussian(x, Mu!.Value, Sigma!.Value),
        "min_gaussian" => ScoreModifiers.MinGaussian(x, Mu!.Value, Sigma!.Value),
        "max_gaussian" => ScoreModifiers.MaxGaussian(x, Mu!.Value, Sigma!.Value),
        "clipped" => ScoreModifiers.Clipped(x, upper: High, lower: Low),
        _ => Math.Clamp(x, 0, 1),
    };

    private bool IsGaussian => Kind is "gaussian" or "min_gaussian" or "max_gaussian";

    public void Validate(string where, Action<bool, string> require)
    {
        require(Kind is "identity" or "sigmoid" or "reverse_sigmoid" or "double_sigmoid" or "step" or "gaussian" or "min_gaussian" or "max_gaussian" or "clipped",
            $"{where}.transform.kind must be identity, sigmoid, reverse_sigmoid, double_sigmoid, step, gaussian, min_gaussian, max_gaussian or clipped (got '{Kind}')");
        // A step's window is closed, so low = high is one value (REINVENT 4 allows it too: "exactly 2 rings").
        require(Kind is "identity" or "clipped" || IsGaussian || High > Low || (Kind == "step" && High == Low),
            $"{where}.transform: high ({High}) must {(Kind == "step" ? "be at least" : "exceed")} low ({Low})");
        require(Kind != "clipped" || High != Low, $"{where}.transform: clipped needs low ≠ high (the value at score 0 and at score 1; got {Low} for both)");
        require(IsGaussian == (Mu is not null), $"{where}.transform.mu: {(IsGaussian ? $"{Kind} needs mu (its centre)" : $"only for the gaussians, not {Kind}")}");
        require(IsGaussian == (Sigma is not null), $"{where}.transform.sigma: {(IsGaussian ? $"{Kind} needs sigma (its width)" : $"only for the gaussians, not {Kind}")}");
        require(Sigma is null || Sigma > 0, $"{where}.transform.sigma must be positive (got {Sigma})");
        require(K > 0, $"{where}.transform.k must be positive (got {K})");
        require(KHigh is null || (Kind == "double_sigmoid" && KHigh > 0), $"{where}.transform.k_high: only for double_sigmoid, and positive (got {KHigh})");
    }
}

/// <summary>One term of a scoring function, as written in a run file's <c>[[stages.components]]</c>.</summary>
public sealed record ComponentSettings
{
    /// <summary>
    /// qed, sa (synthetic accessibility, 1 easy … 10 hard), logp, plogp (penalized logP: logP − SA score − rings
    /// beyond six atoms, as in the JT-VAE and MolMIM benchmarks), mw, tpsa, hbd, hba, rotatable_bonds, rings,
    /// aromatic_rings, bertz (Bertz CT), element_count (atoms of <see cref="Element"/>, hydrogens counted), isomer
    /// (GuacaMol's closeness to <see cref="Formula"/>, in [0, 1]), similarity
    /// (max Tanimoto to <see cref="Smiles"/>), substructure (1 when any of <see cref="Smarts"/> matches), affinity
    /// (predicted by <see cref="Model"/> for <see cref="Target"/>), qsar (the activity a <c>bioforge qsar train</c> model in
    /// <see cref="Model"/> predicts, <see cref="QsarModel"/>), pmo (the PMO/GuacaMol objective named by
    /// <see cref="Task"/>, already in [0, 1]), external_process (a user's program, <see cref="ExternalScorer"/>); penalties that multiply the total: forbidden_substructure
    /// (0 when any of <see cref="Smarts"/> matches), matching_substructure (0.5 unless one of <see cref="Smarts"/>
    /// matches: REINVENT 4's MatchingSubstructure), filters (0 when a PAINS/Brenk alert matches).
    /// </summary>
    public string Type { get; init; } = "";
    public string? Name { get; init; }
    public double Weight { get; init; } = 1;
    public TransformSettings Transform { get; init; } = new();
    public string[] Smiles { get; init; } = [];
    public string[] Smarts { get; init; } = [];
    /// <summary>
    /// <c>similarity</c>'s fingerprint: <c>bits</c> (Morgan folded to 2,048 bits), <c>unfolded</c> (the set of Morgan
    /// environments) or <c>counts</c> (Morgan environment counts), of <see cref="Radius"/>; <see cref="Features"/>
    /// uses feature invariants (FCFP) and needs unfolded or counts. REINVENT 4's TanimotoSimilarity is unfolded/counts.
    /// GuacaMol's other two: <c>atom_pairs</c> (atom-pair counts, pairs up to 10 bonds apart) and <c>pharmacophore</c>
    /// (the Gobbi 2D pharmacophore bits).
    /// </summary>
    public string Fingerprint { get; init; } = "bits";
    public int Radius { get; init; } = 2;
    public bool Features { get; init; }
    /// <summary>Filter catalogues for <c>filters</c>: any of pains, brenk, nih.</summary>
    public string[] Catalogs { get; init; } = ["pains", "brenk"];
    /// <summary><c>filters</c>' rules that do not count (<c>Michael_acceptor_1</c> for a covalent design; <see cref="StructuralFilters"/>).</summary>
    public string[] Allow { get; init; } = [];
    /// <summary>
    /// The transformed value multiplies the total instead of joining the mean: with a <c>step</c> transform, a hard
    /// limit (<c>mw</c> ≤ 500 scores 0 above it without moving the mean of the molecules within it).
    /// </summary>
    public bool Penalty { get; init; }
    /// <summary>An affinity model directory (<c>bioforge dti train</c>), or a QSAR model directory (<c>bioforge qsar train</c>).</summary>
    public string? Model { get; init; }
    /// <summary>The target as <see cref="ProteinTarget.Resolve"/> reads it: a Davis name, a KIBA accession, a sequence, or a FASTA file of one record.</summary>
    public string? Target { get; init; }
    /// <summary>The PMO task of a <c>pmo</c> component (one of <see cref="PmoOracle.Tasks"/>).</summary>
    public string? Task { get; init; }
    /// <summary>An <c>external_process</c> component's program, its arguments (one string, split as a shell splits it),
    /// the payload property it answers in, and how long one batch may take.</summary>
    public string? Executable { get; init; }
    public string? Args { get; init; }
    public string? Property { get; init; }
    public double TimeoutS { get; init; } = 600;
    /// <summary><c>element_count</c>'s element symbol (<c>F</c>, <c>Cl</c>, <c>H</c>…).</summary>
    public string? Element { get; init; }
    /// <summary><c>isomer</c>'s molecular formula (<c>C7H8N2O2</c>).</summary>
    public string? Formula { get; init; }

    [System.Text.Json.Serialization.JsonIgnore] // derived: a stored run file given back to --config would be refused for it
    public string Label => Name ?? Type;

    [System.Text.Json.Serialization.JsonIgnore]
    public bool IsPenalty => Penalty || IsStructuralPenalty;

    /// <summary>A 0/0.5/1 verdict on structure, used as it is (no transform).</summary>
    [System.Text.Json.Serialization.JsonIgnore] // derived, and not in the run files stored before it existed (a resume compares them)
    public bool IsStructuralPenalty => Type is "forbidden_substructure" or "matching_substructure" or "filters";

    public void Validate(string where, Action<bool, string> require)
    {
        require(Type is "qed" or "sa" or "logp" or "plogp" or "mw" or "tpsa" or "hbd" or "hba" or "rotatable_bonds" or "rings" or "aromatic_rings"
            or "bertz" or "element_count" or "isomer" or "similarity" or "substructure"
            or "affinity" or "qsar" or "pmo" or "external_process" or "forbidden_substructure" or "matching_substructure" or "filters",
            $"{where}.type must be one of qed, sa, logp, plogp, mw, tpsa, hbd, hba, rotatable_bonds, rings, aromatic_rings, bertz, element_count, isomer, similarity, substructure, affinity, qsar, pmo, external_process, forbidden_substructure, matching_substructure, filters (got '{Type}')");
        require(Weight > 0, $"{where}.weight must be positive (got {Weight})");
        require(Type != "similarity" || Smiles is { Length: > 0 }, $"{where}: a similarity component needs smiles = [reference molecules]");
        require(Type is not ("substructure" or "forbidden_substructure" or "matching_substructure") || Smarts is { Length: > 0 }, $"{where}: a {Type} component needs smarts = [patterns]");
        require(Fingerprint is "bits" or "unfolded" or "counts" or "atom_pairs" or "pharmacophore",
            $"{where}.fingerprint must be bits, unfolded, counts, atom_pairs or pharmacophore (got '{Fingerprint}')");
        require(Radius is >= 0 and <= 6, $"{where}.radius must be 0 to 6 (got {Radius})");
        require(!Features || Fingerprint is "unfolded" or "counts", $"{where}: features (FCFP) needs fingerprint = \"unfolded\" or \"counts\"");
        require(Type != "element_count" || (Element is not null && IsomerScore.IsElement(Element)),
            $"{where}: an element_count component needs element = an element symbol such as \"F\" or \"Cl\" (got '{Element}')");
        if (Type == "isomer")
        {
            string? error = null;
            try
            {
                _ = new IsomerScore(Formula ?? throw new BioForgeException("an isomer component needs formula = a molecular formula such as \"C7H8N2O2\""));
            }
            catch (BioForgeException e)
            {
                error = e.Message;
            }
            require(error is null, $"{where}: {error}");
        }
        require(Type != "affinity" || (Model is not null && Target is not null), $"{where}: an affinity component needs model (a `bioforge dti train` model) and target (a Davis target name, a KIBA UniProt accession, a protein sequence or a FASTA file)");
        require(Type != "qsar" || Model is not null, $"{where}: a qsar component needs model (a `bioforge qsar train` model directory)");
        require(Type != "pmo" || (Task is not null && PmoOracle.Tasks.Contains(Task)),
            $"{where}: a pmo component needs task = one of {string.Join(", ", PmoOracle.Tasks)} (got '{Task}')");
        if (Type == "external_process")
        {
            require(!string.IsNullOrWhiteSpace(Executable), $"{where}: an external_process component needs executable (the scoring program)");
            require(!string.IsNullOrWhiteSpace(Property), $"{where}: an external_process component needs property (the payload key the program answers in)");
            require(TimeoutS > 0, $"{where}.timeout_s must be positive (got {TimeoutS})");
            string? error = null;
            try
            {
                ShellWords.Split(Args ?? "");
            }
            catch (BioForgeException e)
            {
                error = e.Message;
            }
            require(error is null, $"{where}.{error}");
        }
        require(Catalogs.All(c => c is "pains" or "brenk" or "nih"), $"{where}.catalogs: each must be pains, brenk or nih");
        require(Allow.Length == 0 || Type == "filters", $"{where}.allow: only for a filters component (the alert rules that do not count)");
        require(!Penalty || !IsStructuralPenalty, $"{where}.penalty: a {Type} component is a penalty already");
        // Identity clamps to [0, 1]: a logP of 3.9 scored 1 and one of −0.9 scored 0, zeroing the whole geometric mean.
        // An external program's values are its own to scale (a docking score needs a transform, a model's probability not).
        require(IsStructuralPenalty || Transform.Kind != "identity" || Type is "qed" or "similarity" or "substructure" or "isomer" or "pmo" or "external_process",
            $"{where}{(Penalty ? ".penalty" : ".transform")}: a value of {Type} is not a score in [0, 1]; give it a transform "
            + (Penalty ? "(a step window of the values allowed, such as { kind = \"step\", low = 0, high = 500 } for a weight)" : "(a sigmoid over the range wanted, such as { kind = \"sigmoid\", low = 1, high = 4 } for a logP)"));
        Transform.Validate(where, require);
    }
}

/// <summary>A molecule's score and its parts (raw value and transformed score per component), with its Murcko scaffold.</summary>
public sealed record ScoredMolecule(string Smiles, string? Canonical, string? Scaffold, double Score, double[] Raw, double[] Transformed)
{
    /// <summary>The scaffold with every atom carbon and every bond single (RDKit's generic Murcko scaffold).</summary>
    public string? GenericScaffold { get; init; }

    /// <summary>Why a molecule RDKit read could not be scored (it then counts as invalid), e.g. a component's RDKit error.</summary>
    public string? Error { get; init; }

    public bool Valid => Canonical is not null;
}

/// <summary>
/// A weighted arithmetic or geometric mean of transformed components, times the penalties; invalid SMILES score 0.
/// Built once per stage (models and reference fingerprints loaded once), applied to batches.
/// </summary>
public sealed class ScoringFunction : IDisposable
{
    private readonly IReadOnlyList<ComponentSettings> components;
    private readonly bool geometric;
    // Made at the first molecule that needs them (thread-safe: components score in parallel): the SA table is 710,000
    // fragments read from a file and QED compiles its SMARTS, which most objectives never use.
    private readonly Lazy<Qed> qed = new(() => new Qed());
    private readonly Lazy<SaScore> sa = new(() => new SaScore());
    private readonly Dictionary<int, List<SmartsQuery>> patterns = [];
    private readonly Dictionary<int, StructuralFilters> filters = [];
    private readonly Dictionary<int, List<ulong[]>> references = [];
    private readonly Dictionary<int, List<Dictionary<uint, uint>>> countReferences = [];
    private readonly Dictionary<int, List<IReadOnlySet<int>>> pharmacophoreReferences = [];
    private readonly Dictionary<int, IsomerScore> isomers = [];
    private GobbiPharmacophore? pharmacophore;
    private readonly Dictionary<int, (AffinityModel Model, float[] Target)> affinity = [];
    private readonly Dictionary<int, PmoOracle> oracles = [];
    private readonly Dictionary<int, ExternalScorer> externals = [];
    private readonly Dictionary<int, QsarModel> qsar = [];

    public IReadOnlyList<ComponentSettings> Components => components;

    public ScoringFunction(IReadOnlyList<ComponentSettings> components, string aggregate, torch.Device device)
    {
        this.components = components;
        geometric = aggregate == "geometric";
        try
        {
            for (int i = 0; i < components.Count; i++)
            {
                var c = components[i];
                switch (c.Type)
                {
                    case "substructure" or "forbidden_substructure" or "matching_substructure":
                        patterns[i] = [.. c.Smarts.Select(s => new SmartsQuery(s))];
                        break;
                    case "filters":
                        filters[i] = new StructuralFilters(c.Catalogs.Aggregate((FilterCatalogs)0, (all, name) => all | name switch
                        {
                            "pains" => FilterCatalogs.Pains,
                            "brenk" => FilterCatalogs.Brenk,
                            _ => FilterCatalogs.Nih,
                        }), c.Allow);
                        break;
                    case "similarity":
                        foreach (string s in c.Smiles)
                        {
                            if (!Molecule.TryFromSmiles(s, out var m, out string? error)) throw new BioForgeException($"similarity reference '{s}': {error}");
                            using (m)
                            {
                                if (c.Fingerprint == "bits") (references.TryGetValue(i, out var list) ? list : references[i] = []).Add(Fingerprints.Morgan(m!, c.Radius));
                                else if (c.Fingerprint == "pharmacophore")
                                    (pharmacophoreReferences.TryGetValue(i, out var list) ? list : pharmacophoreReferences[i] = []).Add(Pharmacophore.Fingerprint(m!));
                                else (countReferences.TryGetValue(i, out var list) ? list : countReferences[i] = []).Add(Counts(c, m!));
                            }
                        }
                        break;
                    case "pmo":
                        oracles[i] = new PmoOracle(c.Task ?? "");
                        break;
                    case "isomer":
                        isomers[i] = new IsomerScore(c.Formula ?? "");
                        break;
                    case "external_process":
                        externals[i] = new ExternalScorer(c);
                        break;
                    case "qsar":
                        qsar[i] = QsarModel.Load(c.Model!);
                        break;
                    case "affinity":
                        var model = AffinityModel.Load(c.Model!, device);
                        affinity[i] = (model, model.TargetFeatures(ProteinTarget.Resolve(c.Target!).Sequence));
                        break;
                }
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>
    /// Scores a batch of SMILES. Molecules RDKit cannot read (or cannot sanitize twice, <see cref="Molecule.TryFromSmiles"/>)
    /// score 0, with NaN parts; so does a molecule RDKit reads but a component cannot score (an external program's null,
    /// an RDKit error), with the reason in <see cref="ScoredMolecule.Error"/>, so one such sample never fails the batch.
    /// </summary>
    public IReadOnlyList<ScoredMolecule> Score(IReadOnlyList<string> smiles)
    {
        var molecules = smiles.Select(s => s.Length > 0 && Molecule.TryFromSmiles(s, out var m, out _) ? m : null).ToArray();
        try
        {
            return Score(smiles, molecules);
        }
        finally
        {
            foreach (var m in molecules) m?.Dispose();
        }
    }

    /// <summary>
    /// As <see cref="Score(IReadOnlyList{string})"/>, for SMILES the caller has read already (null where RDKit could
    /// not: <see cref="Molecule.TryFromSmiles"/>, as that overload reads them); the caller keeps and disposes them.
    /// </summary>
    public IReadOnlyList<ScoredMolecule> Score(IReadOnlyList<string> smiles, IReadOnlyList<Molecule?> molecules)
    {
        if (molecules.Count != smiles.Count) throw new ArgumentException($"{molecules.Count} molecules for {smiles.Count} SMILES", nameof(molecules));
        var valid = Enumerable.Range(0, molecules.Count).Where(i => molecules[i] is not null).ToArray();
        var raw = new double[components.Count][];
        var errors = new string?[valid.Length];
        var descriptors = new MolecularDescriptors?[valid.Length]; // one RDKit call per molecule for every descriptor component
        for (int c = 0; c < components.Count; c++)
        {
            if (externals.TryGetValue(c, out var external))
            {
                // The program sees every SMILES, invalid ones too, as in REINVENT 4; an invalid molecule still scores 0 here.
                var all = external.Score(smiles);
                raw[c] = [.. valid.Select(i => all[i])];
                for (int v = 0; v < valid.Length; v++)
                    if (double.IsNaN(raw[c][v])) errors[v] ??= $"{components[c].Label}: the program gave no score (null or NaN)";
            }
            else
            {
                raw[c] = Raw(c, [.. valid.Select(i => molecules[i]!)], errors, descriptors);
                // A model's NaN (an affinity or QSAR prediction gone wrong) scores 0 with its reason, as a failed
                // component does; learnt from, it would make the agent's loss NaN.
                for (int v = 0; v < valid.Length; v++)
                    if (double.IsNaN(raw[c][v])) errors[v] ??= $"{components[c].Label}: no value (NaN)";
            }
        }
        var result = new ScoredMolecule[smiles.Count];
        for (int i = 0; i < smiles.Count; i++) result[i] = new ScoredMolecule(smiles[i], null, null, 0, Nan(), Nan());
        for (int v = 0; v < valid.Length; v++)
        {
            int i = valid[v];
            if (errors[v] is { } error)
            {
                result[i] = result[i] with { Error = error };
                continue;
            }
            var rawValues = new double[components.Count];
            var transformed = new double[components.Count];
            for (int c = 0; c < components.Count; c++)
            {
                rawValues[c] = raw[c][v];
                transformed[c] = components[c].IsStructuralPenalty ? rawValues[c] : components[c].Transform.Apply(rawValues[c]);
            }
            result[i] = new ScoredMolecule(smiles[i], molecules[i]!.ToSmiles(), molecules[i]!.MurckoScaffold(), Aggregate(transformed), rawValues, transformed)
            {
                GenericScaffold = molecules[i]!.MurckoScaffold(generic: true),
            };
        }
        return result;
    }

    private double[] Nan() => [.. components.Select(_ => double.NaN)];

    private double Aggregate(double[] transformed)
    {
        double weights = 0, sum = 0, logSum = 0, penalty = 1;
        for (int c = 0; c < components.Count; c++)
        {
            if (components[c].IsPenalty)
            {
                penalty *= transformed[c];
                continue;
            }
            double w = components[c].Weight;
            weights += w;
            sum += w * transformed[c];
            // A term at 0 makes the mean 0 (log 0 = −∞), as GuacaMol's geometric mean does, so a PMO objective written as a
            // run file scores as GuacaMol scores it. REINVENT 4 floors each term at 1e-8 instead (docs/discovery.md).
            logSum += w * Math.Log(transformed[c]);
        }
        if (weights == 0) return penalty;
        return penalty * (geometric ? Math.Exp(logSum / weights) : sum / weights);
    }

    /// <summary>Component <paramref name="c"/> of each molecule; a molecule the component fails on gets NaN and its error (the first kept).</summary>
    /// <param name="descriptors">Each molecule's RDKit descriptors once computed, shared by the components (one thread per molecule).</param>
    private double[] Raw(int c, Molecule[] molecules, string?[] errors, MolecularDescriptors?[] descriptors)
    {
        var component = components[c];
        if (component.Type == "affinity")
        {
            var (model, target) = affinity[c];
            var predicted = model.Predict(molecules, target);
            // As screening reads a library: a molecule without carbon is no candidate, whatever number the model gives it.
            for (int i = 0; i < molecules.Length; i++)
                if (!molecules[i].HasCarbon())
                {
                    predicted[i] = double.NaN;
                    errors[i] ??= "affinity: it has no carbon atom (water or an inorganic salt)";
                }
            return predicted;
        }
        var values = new double[molecules.Length];
        Parallel.For(0, molecules.Length, i =>
        {
            try
            {
                values[i] = Property(c, component, molecules[i], () => descriptors[i] ??= molecules[i].Descriptors());
            }
            catch (BioForgeException e)
            {
                values[i] = double.NaN;
                errors[i] ??= $"{component.Type}: {e.Message}";
            }
        });
        return values;
    }

    private double Property(int c, ComponentSettings component, Molecule m, Func<MolecularDescriptors> descriptors) => component.Type switch
    {
        "plogp" => descriptors().LogP - sa.Value.Score(m) - Math.Max(0, m.RingSizes().DefaultIfEmpty(0).Max() - 6),
        _ when PropertyLimit.Properties.Contains(component.Type) => PropertyLimit.Measure(component.Type, m, qed, sa, descriptors),
        "bertz" => GraphDescriptors.BertzCT(m),
        "element_count" => IsomerScore.ElementCount(m, component.Element!),
        "isomer" => isomers[c].Score(m),
        "similarity" => Similarity(c, component, m),
        "substructure" => patterns[c].Any(m.HasMatch) ? 1 : 0,
        "forbidden_substructure" => patterns[c].Any(m.HasMatch) ? 0 : 1,
        "matching_substructure" => patterns[c].Any(m.HasMatch) ? 1 : 0.5,
        "filters" => filters[c].Matches(m).Count == 0 ? 1 : 0,
        "pmo" => oracles[c].Score(m),
        "qsar" => qsar[c].Predict(m),
        _ => throw new System.Diagnostics.UnreachableException($"unknown component type '{component.Type}'"),
    };

    /// <summary>Max Tanimoto to the references; unfolded environments compare as sets, counts as RDKit's SparseIntVect.</summary>
    private double Similarity(int c, ComponentSettings component, Molecule m)
    {
        if (component.Fingerprint == "bits")
        {
            var fingerprint = Fingerprints.Morgan(m, component.Radius);
            return references[c].Max(r => Fingerprints.Tanimoto(fingerprint, r));
        }
        if (component.Fingerprint == "pharmacophore")
        {
            var bits = Pharmacophore.Fingerprint(m);
            return pharmacophoreReferences[c].Max(r => Fingerprints.Tanimoto(bits, r));
        }
        var counts = Counts(component, m);
        if (component.Fingerprint is "counts" or "atom_pairs") return countReferences[c].Max(r => Fingerprints.Tanimoto(counts, r));
        var keys = counts.Keys.ToHashSet();
        return countReferences[c].Max(r => Fingerprints.Tanimoto<uint>(keys, r.Keys.ToHashSet()));
    }

    private static Dictionary<uint, uint> Counts(ComponentSettings component, Molecule m) =>
        component.Fingerprint == "atom_pairs" ? Fingerprints.AtomPairCounts(m, maxLength: GuacaMolAtomPairLength)
        : component.Features ? Fingerprints.FeatureMorganCounts(m, component.Radius) : Fingerprints.MorganCounts(m, component.Radius);

    // GuacaMol's atom pairs (GetAtomPairFingerprint(maxLength=10)), which PMO's similarity tasks use.
    private const int GuacaMolAtomPairLength = 10;

    // Made at the first pharmacophore similarity only: it compiles eight SMARTS families and its bin tables.
    private GobbiPharmacophore Pharmacophore => pharmacophore ??= new GobbiPharmacophore();

    public void Dispose()
    {
        if (qed.IsValueCreated) qed.Value.Dispose();
        pharmacophore?.Dispose();
        foreach (var list in patterns.Values) foreach (var p in list) p.Dispose();
        foreach (var f in filters.Values) f.Dispose();
        foreach (var o in oracles.Values) o.Dispose();
        foreach (var (model, _) in affinity.Values) model.Dispose();
    }
}
