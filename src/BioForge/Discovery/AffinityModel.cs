using System.Text.Json;
using BioForge.Chem;
using BioForge.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BioForge.Discovery;

/// <summary>
/// Two towers and an interaction head: the molecule's and the target's feature rows are each mapped to a
/// <c>hidden</c>-wide vector, and the head reads both and their elementwise product (the pair's interaction).
/// Inputs are standardised features; the output is the standardised affinity.
/// </summary>
internal sealed class AffinityNetwork : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Linear drug_in, drug_out, target_in, target_out, head_in, head_mid, head_out;
    private readonly Dropout dropout;

    public AffinityNetwork(int drugWidth, int targetWidth, int hidden, double dropoutRate) : base(nameof(AffinityNetwork))
    {
        drug_in = nn.Linear(drugWidth, hidden);
        drug_out = nn.Linear(hidden, hidden);
        target_in = nn.Linear(targetWidth, hidden);
        target_out = nn.Linear(hidden, hidden);
        head_in = nn.Linear(3 * hidden, hidden);
        head_mid = nn.Linear(hidden, hidden / 2);
        head_out = nn.Linear(hidden / 2, 1);
        dropout = nn.Dropout(dropoutRate);
        RegisterComponents();
    }

    public override Tensor forward(Tensor drugs, Tensor targets)
    {
        var d = F.gelu(drug_out.forward(dropout.forward(F.gelu(drug_in.forward(drugs)))));
        var t = F.gelu(target_out.forward(dropout.forward(F.gelu(target_in.forward(targets)))));
        var h = dropout.forward(F.gelu(head_in.forward(cat([d, t, d * t], 1))));
        return head_out.forward(F.gelu(head_mid.forward(h))).squeeze(1);
    }
}

/// <summary>
/// Several independently initialised networks whose predictions are averaged: the ensemble's variance is lower than any
/// member's, which is what a benchmark with 68 drugs and a few hundred targets needs most.
/// </summary>
internal sealed class AffinityEnsemble : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly ModuleList<AffinityNetwork> members;

    public AffinityEnsemble(IEnumerable<AffinityNetwork> networks) : base(nameof(AffinityEnsemble))
    {
        members = nn.ModuleList(networks.ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor drugs, Tensor targets) =>
        stack([.. members.Select(m => m.forward(drugs, targets))]).mean([0]);
}

/// <summary>What a trained affinity model directory records besides its weights (<c>affinity_model.json</c>).</summary>
public sealed record AffinityManifest
{
    public string Format { get; init; } = "bioforge-affinity-1";
    /// <summary>The training data's name (davis, kiba) and what its numbers are (pKd, KIBA score).</summary>
    public string Dataset { get; init; } = "";
    public string Measure { get; init; } = "";
    /// <summary>How its test fold was held out (<see cref="AffinityDataset.Folds"/>) and the seed that dealt it, so <c>dti eval</c> scores the same pairs.</summary>
    public string Split { get; init; } = AffinityDataset.RandomSplit;
    public ulong SplitSeed { get; init; }
    /// <summary>cold_target's family identity; null for other splits and for models trained before it was recorded (identical sequences only).</summary>
    public double? TargetIdentity { get; init; }
    /// <summary>Feature settings; the language-model paths are relative to the model directory.</summary>
    public AffinityFeatureSettings Features { get; init; } = new();
    public int Hidden { get; init; }
    /// <summary>Networks averaged.</summary>
    public int Members { get; init; } = 1;
    public int DrugWidth { get; init; }
    public int TargetWidth { get; init; }
    public float[] DrugMean { get; init; } = [];
    public float[] DrugScale { get; init; } = [];
    public float[] TargetMean { get; init; } = [];
    public float[] TargetScale { get; init; } = [];
    public double LabelMean { get; init; }
    public double LabelScale { get; init; } = 1;
    public int[] BestEpochs { get; init; } = [];
    /// <summary>Metrics on the held-out training fold and the test fold; an undefined one (CI with one affinity value) is null.</summary>
    public Dictionary<string, double?> ValidationMetrics { get; init; } = [];
    public Dictionary<string, double?> TestMetrics { get; init; } = [];
    public string CreatedUtc { get; init; } = "";
}

/// <summary>A strong binder of a target in the model's benchmark: the drug's name there, its SMILES, its measured affinity, and the construct measured.</summary>
public sealed record KnownBinder(string Name, string Smiles, double Affinity, string Construct);

/// <summary>
/// A trained drug–target affinity model, ready to predict: features → standardise → network → affinity in the
/// training data's unit (pKd for Davis). Load once, featurize a target once, then score molecules in batches.
/// </summary>
public sealed class AffinityModel : IDisposable
{
    public const string ManifestFile = "affinity_model.json";
    public const string WeightsFile = "model.safetensors";
    public const string KnownBindersFile = "known_binders.csv";
    internal static readonly string[] KnownBindersHeader = ["target_sha256", "target", "drug", "smiles", "affinity"];
    public const string TestPredictionsFile = "test_predictions.csv";

    /// <summary>The targets and drugs of the pairs the model trained on, in its benchmark's layout (see <see cref="ApplicabilityDomain"/>).</summary>
    public const string TrainingSetFolder = "training";

    private readonly string directory;

    private readonly AffinityEnsemble network;
    private readonly AffinityFeaturizer featurizer;
    private readonly Tensor drugMean, drugScale, targetMean, targetScale;
    private readonly Device device;

    public AffinityManifest Manifest { get; }

    private AffinityModel(string directory, AffinityManifest manifest, AffinityEnsemble network, AffinityFeaturizer featurizer, Device device)
    {
        this.directory = directory;
        domain = new Lazy<ApplicabilityDomain?>(() => ApplicabilityDomain.Load(directory)); // thread-safe: screening jobs share the model
        Manifest = manifest;
        this.network = network;
        this.featurizer = featurizer;
        this.device = device;
        using (NewDisposeScope()) // the host copies go; the model owns the device ones
        {
            drugMean = tensor(manifest.DrugMean).to(device).DetachFromDisposeScope();
            drugScale = tensor(manifest.DrugScale).to(device).DetachFromDisposeScope();
            targetMean = tensor(manifest.TargetMean).to(device).DetachFromDisposeScope();
            targetScale = tensor(manifest.TargetScale).to(device).DetachFromDisposeScope();
        }
        network.eval();
    }

    public static AffinityModel Load(string directory, Device device)
    {
        if (!Directory.Exists(directory)) throw new BioForgeException($"{directory}: no such directory (an affinity model written by `bioforge dti train`, e.g. models/dti-davis)");
        string manifestPath = Path.Combine(directory, ManifestFile);
        if (!File.Exists(manifestPath)) throw new BioForgeException($"{directory}: no {ManifestFile} (expected a model written by `bioforge dti train`)");
        AffinityManifest manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<AffinityManifest>(File.ReadAllText(manifestPath), YamlConfig.Serializer)
                ?? throw new BioForgeException($"{manifestPath}: empty");
        }
        catch (JsonException e)
        {
            throw new BioForgeException($"{manifestPath}: not a valid affinity manifest ({e.Message})");
        }
        string? Resolve(string? relative) => relative is null ? null : Path.GetFullPath(Path.Combine(directory, relative));
        var featurizer = new AffinityFeaturizer(manifest.Features, Resolve(manifest.Features.ProteinModel), Resolve(manifest.Features.MoleculeModel), device);
        var network = new AffinityEnsemble(Enumerable.Range(0, Math.Max(1, manifest.Members)).Select(_ => new AffinityNetwork(manifest.DrugWidth, manifest.TargetWidth, manifest.Hidden, 0)));
        try
        {
            if (featurizer.DrugWidth != manifest.DrugWidth || featurizer.TargetWidth != manifest.TargetWidth)
                throw new BioForgeException($"{manifestPath}: the feature extractors give {featurizer.DrugWidth} + {featurizer.TargetWidth} features, the model was trained on {manifest.DrugWidth} + {manifest.TargetWidth}");
            using (var weights = SafetensorsFile.Open(Path.Combine(directory, WeightsFile)))
            using (no_grad())
                foreach (var (name, parameter) in network.named_parameters())
                {
                    if (!weights.Entries.Any(e => e.Name == name)) throw new BioForgeException($"{directory}/{WeightsFile}: no tensor '{name}'");
                    using var stored = weights.ToTensor(name);
                    if (!stored.shape.SequenceEqual(parameter.shape)) throw new BioForgeException($"{directory}/{WeightsFile}: '{name}' has shape [{string.Join(", ", stored.shape)}], expected [{string.Join(", ", parameter.shape)}]");
                    parameter.copy_(stored);
                }
            network.to(device);
            return new AffinityModel(directory, manifest, network, featurizer, device);
        }
        catch
        {
            network.Dispose();
            featurizer.Dispose();
            throw;
        }
    }

    /// <summary>The key known binders are filed under: SHA-256 of the upper-case sequence, hex.</summary>
    public static string SequenceKey(string sequence) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.ASCII.GetBytes(sequence.Trim().ToUpperInvariant())));

    /// <summary>
    /// Strong binders of this target in the training benchmark (empty for a target it has not seen), each with the
    /// construct it was measured on. Davis gives a kinase's mutant constructs (<c>ABL1(T315I)</c>, <c>EGFR(L858R)</c>)
    /// the wild type's sequence: where the wild type is there too, the mutants' binders (some bind only the mutant) are
    /// left out. It gives a kinase's single domains (<c>JAK1(JH1domain-catalytic)</c> and <c>JAK1(JH2domain-pseudokinase)</c>)
    /// the whole protein's sequence too: a target named as one of them keeps that domain's binders (nintedanib binds
    /// JAK1's pseudokinase domain at pKd 8.3, its kinase domain at 5.6).
    /// </summary>
    /// <param name="construct">The target's name as given; a construct of the benchmark's keeps its own measurements (and its phosphorylated form's).</param>
    public IReadOnlyList<KnownBinder> KnownBinders(string sequence, string? construct = null) => KnownBinders(directory, sequence, construct);

    /// <summary><see cref="KnownBinders(string, string?)"/> of the model in <paramref name="modelDirectory"/>, without loading it.</summary>
    public static IReadOnlyList<KnownBinder> KnownBinders(string modelDirectory, string sequence, string? construct = null)
    {
        string path = Path.Combine(modelDirectory, KnownBindersFile);
        if (!File.Exists(path)) return [];
        string key = SequenceKey(sequence);
        var all = Csv.ReadRows(path, out var header);
        // The file a model was written with: a different one (replaced, hand-edited) would give no binders or wrong ones in
        // silence. The model's file, not the request, is at fault (ServerFault: a service answers 500 and logs it).
        if (!header.SequenceEqual(KnownBindersHeader)) throw new BioForgeException($"{path}: expected the columns {string.Join(",", KnownBindersHeader)}; got {string.Join(",", header)}") { ServerFault = true };
        var rows = new List<(string Target, string Name, string Smiles, double Affinity)>();
        foreach (var (line, fields) in all)
        {
            if (fields.Count != KnownBindersHeader.Length) throw new BioForgeException($"{path}:{line}: {fields.Count} fields, expected {KnownBindersHeader.Length}") { ServerFault = true };
            if (fields[0] != key) continue;
            if (!double.TryParse(fields[4], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double affinity) || !double.IsFinite(affinity))
                throw new BioForgeException($"{path}:{line}: affinity '{fields[4]}' is not a number") { ServerFault = true };
            rows.Add((fields[1], fields[2], fields[3], affinity));
        }
        var wildType = rows.Where(r => !MutantConstruct.IsMatch(r.Target)).ToList();
        var pool = wildType.Count > 0 ? wildType : rows;
        if (construct is not null && pool.Any(r => Unphosphorylated(r.Target) == construct)) pool = [.. pool.Where(r => Unphosphorylated(r.Target) == construct)];
        // A drug measured on the plain protein and a phosphorylated form (ABL1, ABL1p) keeps the plain protein's value: its name is the shortest.
        return [.. pool.OrderBy(r => r.Target.Length).Select(r => new KnownBinder(r.Name, r.Smiles, r.Affinity, r.Target)).DistinctBy(b => b.Smiles)];
    }

    /// <summary>A Davis construct without its phosphorylation mark (<c>ABL1p</c>: <c>ABL1</c>).</summary>
    internal static string Unphosphorylated(string construct) => construct.EndsWith('p') ? construct[..^1] : construct;

    /// <summary>The affinity from which a measured pair counts as a known binder: pKd 7 (Kd ≤ 100 nM), or KIBA's usual activity threshold, 12.1.</summary>
    public static double BinderThreshold(string measure) => measure == "pKd" ? 7.0 : 12.1;

    /// <summary>What a known binder is, for a reader: "measured pKd ≥ 7 on the plain protein (mutants left out)".</summary>
    public static string KnownBinderRule(string measure) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"measured {measure} ≥ {BinderThreshold(measure):0.##} (mutant constructs left out)");

    /// <summary>A Davis target name with a mutation: a substitution (<c>T315I</c>, also inside <c>KinDom2S808G</c>), a deletion or an ITD.</summary>
    private static readonly System.Text.RegularExpressions.Regex MutantConstruct = new(@"\([^)]*([A-Z]\d+[A-Z]|\d+del|ITD)[^)]*\)");

    /// <summary>What the model trained on, to check inputs against (read once); null for a model directory that does not record it.</summary>
    public ApplicabilityDomain? Domain() => domain.Value;

    private readonly Lazy<ApplicabilityDomain?> domain;

    /// <summary>A target's feature row, computed once and reused for every molecule screened against it.</summary>
    public float[] TargetFeatures(string sequence) => featurizer.Targets([sequence])[0];

    /// <summary>Predicted affinity of each molecule for the target whose features are <paramref name="target"/>.</summary>
    public double[] Predict(IReadOnlyList<Molecule> molecules, float[] target) => molecules.Count == 0 ? [] : Predict(DrugFeatures(molecules), target);

    /// <summary>Molecules' feature rows, for <see cref="Predict(float[][], float[])"/> against several targets (computing them
    /// takes longer than the prediction: the molecule model's embeddings, fingerprints, descriptors).</summary>
    public float[][] DrugFeatures(IReadOnlyList<Molecule> molecules) => featurizer.Drugs(molecules);

    /// <summary>Predicted affinity of each molecule, given as its <see cref="DrugFeatures"/> row, for one target.</summary>
    public double[] Predict(float[][] drugs, float[] target)
    {
        if (drugs.Length == 0) return [];
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var d = Standardize(drugs, drugMean, drugScale, device);
        var t = Standardize([target], targetMean, targetScale, device).expand(drugs.Length, -1);
        var output = network.forward(d, t).to(ScalarType.Float64).cpu();
        return [.. output.data<double>().ToArray().Select(v => v * Manifest.LabelScale + Manifest.LabelMean)];
    }

    /// <summary>Feature rows as a [N, width] tensor, centred and scaled column by column.</summary>
    internal static Tensor Standardize(float[][] rows, Tensor mean, Tensor scale, Device device)
    {
        int width = rows[0].Length;
        var flat = new float[rows.Length * width];
        for (int i = 0; i < rows.Length; i++) rows[i].CopyTo(flat, i * width);
        using var scope = NewDisposeScope(); // the host copy and the centred intermediate are as large as the result
        return ((tensor(flat, [rows.Length, width]).to(device) - mean) / scale).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        network.Dispose();
        featurizer.Dispose();
        foreach (var t in new[] { drugMean, drugScale, targetMean, targetScale }) t.Dispose();
    }
}
