using System.Globalization;
using BioForge.Chem;
using BioForge.IO;
using BioForge.Proteins;
using BioForge.Statistics;

namespace BioForge.Discovery;

/// <summary>
/// The training target most like a given one: how identical its best local alignment is, over how much of the given
/// sequence; <paramref name="Constructs"/>: the training targets with its sequence (Davis gives a kinase's mutants and
/// phosphorylation states the wild type's sequence).
/// </summary>
public sealed record TargetNeighbour(string Name, double Identity, double Coverage, int Targets, IReadOnlyList<string>? Constructs = null)
{
    /// <summary>The model trained on this protein (or a construct of it: a point mutant stays above 95 %).</summary>
    public bool Seen => Identity >= SeenIdentity && Coverage >= 0.9;

    /// <summary>Below this, even a close relative among the training targets is not there: the predictions are guesses.</summary>
    public bool Related => Seen || (Identity >= RelatedIdentity && Coverage >= 0.5);

    public const double SeenIdentity = 0.95;

    /// <summary>Proteins above about 40 % identity share their fold and, among kinases, much of their binding site.</summary>
    public const double RelatedIdentity = 0.4;

    /// <summary>One sentence for the console and the report; outside the domain it starts with "warning:".</summary>
    public string Describe() => Seen
        ? string.Create(CultureInfo.InvariantCulture, $"the target is {Name}, one of the {Targets} the affinity model trained on ({Identity * 100:F0}% identical over {Coverage * 100:F0}% of it)")
            + (Constructs is { Count: > 1 } constructs ? SharedSequence(constructs) : "")
        : Related
            ? string.Create(CultureInfo.InvariantCulture, $"the target is not one of the {Targets} the affinity model trained on; the nearest, {Name}, is {Identity * 100:F0}% identical over {Coverage * 100:F0}% of it: predictions extrapolate from related targets")
            : string.Create(CultureInfo.InvariantCulture, $"warning: the target is outside the affinity model's domain: none of its {Targets} training targets aligns to it at {RelatedIdentity * 100:F0}% identity or more over half of it or more "
                + $"(best alignment {Name}: {Identity * 100:F0}% identical over {Coverage * 100:F0}% of it), so its predicted affinities are not evidence of binding");

    /// <summary>
    /// The model reads the sequence alone, so it learned the affinities of every construct sharing it as one target: for
    /// ABL1 the wild type, T315I, E255K and the phosphorylated forms (imatinib: 8.96 on ABL1, 5.0 on T315I, 7.25 over
    /// Davis's 15 ABL1 constructs, which is what the model predicts near).
    /// </summary>
    private static string SharedSequence(IReadOnlyList<string> constructs)
    {
        const int Named = 4;
        string names = string.Join(", ", constructs.Take(Named)) + (constructs.Count > Named ? $" and {constructs.Count - Named} more" : "");
        return $"; its training data give this sequence to {constructs.Count} constructs ({names}: mutants, phosphorylation states or single domains), "
            + "and the model, which reads the sequence alone, learned their affinities as one target: its predictions lean towards their mean, not towards the wild type's";
    }
}

/// <summary>What a report says of the model's domain: a sentence each (the outside ones start "warning:"), and whether the target is unlike every training target.</summary>
public sealed record DomainNotes(IReadOnlyList<string> Sentences, bool TargetOutside);

/// <summary>
/// What an affinity model was trained on (<see cref="AffinityModel.TrainingSetFolder"/>: the targets and ligands of its
/// training and validation pairs), to tell inputs like them from inputs unlike anything it saw: a target by sequence
/// identity to the nearest training target (local alignment, BLOSUM62), a molecule by Tanimoto similarity (Morgan
/// radius 2, 2,048 bits) to the nearest training ligand. A random-split test fold says nothing about the rest.
/// </summary>
public sealed class ApplicabilityDomain
{
    /// <summary>ECFP4 Tanimoto under which a molecule is commonly taken to be unlike another (a bioactivity-similarity rule of thumb).</summary>
    public const double SimilarLigand = 0.4;

    /// <summary>Longer sequences are not aligned (the alignment's trace takes a byte per residue pair).</summary>
    public const int MaxAlignedLength = 10_000;

    private readonly List<(string Name, string Sequence, string[] Constructs)> targets;
    private readonly List<ulong[]> ligands;

    private ApplicabilityDomain(List<(string Name, string Sequence, string[] Constructs)> targets, List<ulong[]> ligands, List<string> ligandSmiles,
        (double Targets, double Ligands)? testSeen, Dictionary<string, string> generalization)
    {
        this.targets = targets;
        this.ligands = ligands;
        LigandSmiles = ligandSmiles;
        TestSeen = testSeen;
        this.generalization = generalization;
    }

    /// <summary>The training ligands as screening reads molecules (salt parent, neutral), canonical SMILES.</summary>
    public IReadOnlyList<string> LigandSmiles { get; }

    /// <summary>
    /// What the same recipe measured on a cold split, by split name (<c>cold_target</c>, <c>cold_drug</c>): a sentence
    /// each from <see cref="GeneralizationFile"/>, which records runs of <c>dti train</c> with that <c>data.split</c>.
    /// </summary>
    private readonly Dictionary<string, string> generalization;

    /// <summary>In a model directory: the test metrics of the same configuration trained on cold splits, and how they were measured.</summary>
    public const string GeneralizationFile = "generalization.json";

    /// <summary>Of the test fold's targets and ligands (<c>test_predictions.csv</c>), the shares also in training; null without that file.</summary>
    public (double Targets, double Ligands)? TestSeen { get; }

    /// <summary>The domain of the model in <paramref name="modelDirectory"/>; null when it does not record its training set (written before it did).</summary>
    public static ApplicabilityDomain? Load(string modelDirectory)
    {
        string folder = Path.Combine(modelDirectory, AffinityModel.TrainingSetFolder);
        if (!Directory.Exists(folder)) return null;
        var trainedTargets = AffinityDataset.ReadTargets(folder);
        var trainedDrugs = AffinityDataset.ReadDrugs(folder);
        // Constructs of one protein share a sequence (Davis's ABL1, ABL1p, ABL1(T315I)…): the shortest name is the wild type's.
        var targets = trainedTargets.GroupBy(t => t.Text.ToUpperInvariant())
            .Select(g => (Name: g.OrderBy(t => t.Id.Length).First().Id, Sequence: g.Key, Constructs: g.Select(t => t.Id).OrderBy(id => id.Length).ThenBy(id => id, StringComparer.Ordinal).ToArray()))
            .ToList();
        var ligands = new List<ulong[]>();
        var ligandSmiles = new List<string>();
        foreach (var drug in trainedDrugs)
        {
            if (!Molecule.TryFromSmiles(drug.Text, out var molecule, out _)) continue;
            // As screening reads molecules (salt parent, neutral form): a Davis drug listed as a salt was 0.84–0.90 to its own parent.
            using (molecule)
            using (var parent = molecule!.Standardized(mayBeMixture: drug.Text.Contains('.')))
            {
                ligands.Add(Fingerprints.Morgan(parent ?? molecule));
                ligandSmiles.Add((parent ?? molecule).ToSmiles());
            }
        }
        (double, double)? testSeen = null;
        string test = Path.Combine(modelDirectory, AffinityModel.TestPredictionsFile);
        if (File.Exists(test))
        {
            var rows = IO.Csv.ReadRows(test, out _).Select(r => (Drug: r.Fields[0], Target: r.Fields[1])).ToList();
            var targetIds = trainedTargets.Select(t => t.Id).ToHashSet();
            var drugIds = trainedDrugs.Select(d => d.Id).ToHashSet();
            var testTargets = rows.Select(r => r.Target).Distinct().ToList();
            var testDrugs = rows.Select(r => r.Drug).Distinct().ToList();
            if (testTargets.Count > 0)
                testSeen = ((double)testTargets.Count(targetIds.Contains) / testTargets.Count, (double)testDrugs.Count(drugIds.Contains) / testDrugs.Count);
        }
        return new ApplicabilityDomain(targets, ligands, ligandSmiles, testSeen, ReadGeneralization(Path.Combine(modelDirectory, GeneralizationFile)));
    }

    /// <summary>
    /// <c>{"cold_target": {"test_metrics": {"mse": …, "ci": …}, "baseline": "…", "measured": "…"}, …}</c> as one sentence per
    /// split; none when the file is absent.
    /// </summary>
    private static Dictionary<string, string> ReadGeneralization(string path)
    {
        var sentences = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!File.Exists(path)) return sentences;
        System.Text.Json.Nodes.JsonObject root;
        try
        {
            root = JsonFile.ReadObject(path);
            foreach (var (split, entry) in root)
            {
                var metrics = entry?["test_metrics"]?.AsObject() ?? throw new BioForgeException($"{path}: {split} has no test_metrics");
                string numbers = string.Join(", ", metrics.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value!.GetValue<double>():F3}")));
                string baseline = entry["baseline"]?.GetValue<string>() is { } b ? $"; {b}" : "";
                sentences[split] = $"{numbers}{baseline} ({entry["measured"]?.GetValue<string>() ?? path})";
            }
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException)
        {
            throw new BioForgeException($"{path}: not a generalization record ({e.Message})");
        }
        return sentences;
    }

    /// <summary>The training target with the best local alignment to <paramref name="sequence"/>, or null for a sequence too long to align.</summary>
    public TargetNeighbour? NearestTarget(string sequence)
    {
        sequence = sequence.ToUpperInvariant();
        if (sequence.Length > MaxAlignedLength || targets.Count == 0) return null;
        if (targets.FindIndex(t => t.Sequence == sequence) is >= 0 and var same) return new TargetNeighbour(targets[same].Name, 1, 1, targets.Count, targets[same].Constructs);
        var scores = new int[targets.Count];
        Parallel.For(0, targets.Count, i => scores[i] = targets[i].Sequence.Length > MaxAlignedLength ? 0 : LocalAlignment.Score(sequence, targets[i].Sequence));
        int best = Array.IndexOf(scores, scores.Max());
        var alignment = LocalAlignment.Align(sequence, targets[best].Sequence);
        return new TargetNeighbour(targets[best].Name, alignment.Identity, alignment.Coverage, targets.Count, targets[best].Constructs);
    }

    /// <summary>Tanimoto similarity of a molecule's Morgan fingerprint (radius 2, 2,048 bits) to the nearest training ligand.</summary>
    public double NearestLigandSimilarity(ReadOnlySpan<ulong> fingerprint)
    {
        double best = 0;
        foreach (var ligand in ligands) best = Math.Max(best, Fingerprints.Tanimoto(fingerprint, ligand));
        return best;
    }

    /// <summary>
    /// What a report says of the model's domain for a target and its hits: the target's nearest training target, how
    /// like the training ligands the hits are, and what the model's test metrics measured.
    /// </summary>
    public static DomainNotes Notes(AffinityModel model, string sequence, IReadOnlyList<ScreenHit> hits)
    {
        var notes = new List<string>();
        bool targetOutside = false;
        if (model.Domain() is not { } domain)
            notes.Add($"the affinity model does not record what it trained on (no {AffinityModel.TrainingSetFolder}/ folder: written before BioForge kept it), so the target and molecules could not be checked against it");
        else
        {
            var neighbour = domain.NearestTarget(sequence);
            targetOutside = neighbour is { Related: false };
            notes.Add(neighbour?.Describe() ?? string.Create(CultureInfo.InvariantCulture, $"warning: the target is longer than {MaxAlignedLength:N0} residues (or the model records no targets) and was not compared with the training targets: whether the model knows it is not checked"));
            if (neighbour is not { Seen: true } && domain.generalization.TryGetValue("cold_target", out string? coldTarget))
                notes.Add(targetOutside
                    // Its held-out targets had relatives in training (Davis's are all kinases): it measured a new member of a known family.
                    ? $"the model's test on held-out targets ({coldTarget}) held out targets whose relatives stayed in training, so it does not measure a protein unlike all of them, as this one is"
                    : $"trained the same way with whole targets held out, the model scored on targets it never saw: {coldTarget}");
            var similarities = hits.Where(h => h.TrainingSimilarity is not null).Select(h => h.TrainingSimilarity!.Value).ToList();
            if (similarities.Count > 0) notes.Add(domain.DescribeLigands(similarities));
            if (domain.LigandSmiles.All(s => !HasStereo(s)) && hits.Any(h => HasStereo(h.Smiles)))
                notes.Add("the affinity model's training ligands carry no stereochemistry, so it predicts one value for every stereoisomer: the stereocentres drawn are as the molecules were written (or generated), not chosen by the model");
            if (similarities.Count(s => s < SimilarLigand) * 2 > similarities.Count && domain.generalization.TryGetValue("cold_drug", out string? coldDrug))
                notes.Add($"trained the same way with whole drugs held out, the model scored on drugs it never saw: {coldDrug}");
        }
        if (model.Domain()?.TestSeen is { } seen && model.Manifest.TestMetrics.Count > 0)
            notes.Add($"the model's test metrics ({string.Join(", ", model.Manifest.TestMetrics.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value:F3}")))}) "
                + string.Create(CultureInfo.InvariantCulture, $"are of {model.Manifest.Dataset}'s test fold, whose targets ({seen.Targets * 100:F0}%) and ligands ({seen.Ligands * 100:F0}%) also appear in training")
                + (seen is { Targets: 1, Ligands: 1 } ? ": they measure it inside its domain, not on a new target or chemotype" : ""));
        return new DomainNotes(notes, targetOutside);
    }

    private static bool HasStereo(string smiles) => smiles.AsSpan().IndexOfAny('@', '/', '\\') >= 0;

    /// <summary>One sentence on how like the training ligands a set of molecules is; "warning:" when most are unlike them.</summary>
    private string DescribeLigands(IReadOnlyList<double> similarities)
    {
        if (similarities.Count == 0) return "";
        var sorted = similarities.Order().ToList();
        double median = Quantile.OfSorted(sorted, 0.5);
        int unlike = sorted.Count(s => s < SimilarLigand);
        string text = string.Create(CultureInfo.InvariantCulture,
            $"{unlike} of {sorted.Count} molecules are below Tanimoto {SimilarLigand:F1} to every one of the {ligands.Count} ligands the affinity model trained on (median nearest {median:F2})");
        return 2 * unlike > sorted.Count ? $"warning: {text}: for them it extrapolates, and their predicted affinities rank them less reliably than its test metrics suggest" : text;
    }
}
