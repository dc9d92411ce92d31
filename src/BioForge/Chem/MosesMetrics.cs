using System.Collections.Frozen;
using System.Text.Json.Serialization;

namespace BioForge.Chem;

/// <summary>
/// Set-level metrics of generated molecules, as defined by the MOSES benchmark (Polykovskiy et al. 2020). JSON keys are
/// MOSES's names without its "/Test" suffix (SNN, Frag, Scaf are against the one reference set given, not MOSES's two).
/// </summary>
public sealed record MosesReport
{
    [JsonPropertyName("generated")] public int Generated { get; init; }
    [JsonPropertyName("valid")] public double Validity { get; init; }
    /// <summary>unique@k for k = 1,000 and 10,000 (over the first k valid molecules; null when fewer were generated).</summary>
    [JsonPropertyName("unique@1000")] public double? Unique1k { get; init; }
    [JsonPropertyName("unique@10000")] public double? Unique10k { get; init; }
    [JsonPropertyName("Novelty")] public double? Novelty { get; init; }
    /// <summary>Null (MOSES: NaN) without a valid molecule; 0 would read as "all the same".</summary>
    [JsonPropertyName("IntDiv")] public double? IntDiv1 { get; init; }
    [JsonPropertyName("IntDiv2")] public double? IntDiv2 { get; init; }
    [JsonPropertyName("Filters")] public double? Filters { get; init; }
    [JsonPropertyName("SNN")] public double? Snn { get; init; }
    /// <summary>Cosine similarities of BRICS fragment and scaffold counts; null (MOSES: NaN) when either set has none.</summary>
    [JsonPropertyName("Frag")] public double? Frag { get; init; }
    [JsonPropertyName("Scaf")] public double? Scaf { get; init; }
}

/// <summary>
/// MOSES metrics over Morgan radius-2 1,024-bit fingerprints. MOSES's own PAINS list (wehi_pains.csv) is replaced by
/// RDKit's PAINS A/B/C catalogs, which were made from the same WEHI source; the MCF list is MOSES's.
/// </summary>
public sealed class MosesMetrics : IDisposable
{
    /// <summary>The fingerprint of MOSES' similarity measures (internal diversity, SNN): Morgan radius 2, 1,024 bits.</summary>
    internal const int Radius = 2, Bits = 1024;
    private static readonly FrozenSet<int> AllowedElements = new[] { 6, 7, 16, 8, 9, 17, 35, 1 }.ToFrozenSet(); // C N S O F Cl Br H
    private readonly SmartsQuery[] medicinalChemistryFilters;
    private readonly StructuralFilters pains = new(FilterCatalogs.Pains);

    public MosesMetrics()
    {
        using var stream = typeof(MosesMetrics).Assembly.GetManifestResourceStream("BioForge.Chem.moses_mcf.tsv")
            ?? throw new InvalidOperationException("embedded MOSES filter list is missing");
        using var reader = new StreamReader(stream);
        medicinalChemistryFilters = reader.ReadToEnd().Split('\n')
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => new SmartsQuery(l[(l.IndexOf('\t') + 1)..].Trim()))
            .ToArray();
    }

    private sealed record Parsed(string Canonical, ulong[] Fingerprint, IReadOnlyList<string> Fragments, string? Scaffold, bool PassesFilters);

    /// <param name="trainName">What to call the training set in an error (the CLI: its option and file).</param>
    /// <param name="referenceName">What to call the reference set in an error.</param>
    public MosesReport Compute(IReadOnlyList<string> generated, IReadOnlyList<string>? train = null, IReadOnlyList<string>? reference = null, int threads = 0,
        string trainName = "the training set", string referenceName = "the reference set")
    {
        if (generated.Count == 0) throw new BioForgeException("no generated molecules to evaluate");
        var options = new ParallelOptions { MaxDegreeOfParallelism = threads > 0 ? threads : Environment.ProcessorCount };
        var gen = Parse(generated, options, withFilters: true);
        var valid = gen.Where(p => p is not null).Select(p => p!).ToList();
        // The sets compared against are checked whatever the samples are: a bad --train is named, not passed over.
        HashSet<string>? trainSet = null;
        if (train is not null)
        {
            trainSet = Canonical(train, options);
            // Against no molecule every sample would count as novel: a novelty of 1 that measures nothing.
            if (trainSet.Count == 0) throw new BioForgeException($"{trainName} has no valid molecule: novelty against it would be 1 for any sample");
        }
        List<Parsed>? refs = null;
        if (reference is not null)
        {
            refs = [.. Parse(reference, options, withFilters: false).Where(p => p is not null).Select(p => p!)];
            if (refs.Count == 0) throw new BioForgeException($"{referenceName} has no valid molecule");
        }
        if (valid.Count == 0) return new MosesReport { Generated = generated.Count, Validity = 0 };

        double? UniqueAt(int k) => valid.Count < k ? null : (double)valid.Take(k).Select(p => p.Canonical).Distinct().Count() / k;
        var report = new MosesReport
        {
            Generated = generated.Count,
            Validity = (double)valid.Count / generated.Count,
            Unique1k = UniqueAt(1000),
            Unique10k = UniqueAt(10_000),
            IntDiv1 = 1 - MeanSimilarity(valid, valid, power: 1, options),
            IntDiv2 = 1 - MeanSimilarity(valid, valid, power: 2, options),
            Filters = (double)valid.Count(p => p.PassesFilters) / valid.Count,
        };
        if (trainSet is not null)
        {
            var unique = valid.Select(p => p.Canonical).ToHashSet();
            report = report with { Novelty = (double)unique.Count(s => !trainSet.Contains(s)) / unique.Count };
        }
        if (refs is not null)
        {
            report = report with
            {
                Snn = NearestNeighbourSimilarity(valid, refs, options),
                Frag = Cosine(Count(refs.SelectMany(p => p.Fragments)), Count(valid.SelectMany(p => p.Fragments))),
                Scaf = Cosine(Count(refs.Select(p => p.Scaffold).OfType<string>()), Count(valid.Select(p => p.Scaffold).OfType<string>())),
            };
        }
        return report;
    }

    /// <summary>The canonical SMILES of the valid molecules: all novelty needs of a training set (MOSES's is 1.6 M molecules,
    /// whose fingerprints, fragments and scaffolds <see cref="Parse"/> would compute and throw away).</summary>
    private static HashSet<string> Canonical(IReadOnlyList<string> smiles, ParallelOptions options)
    {
        var result = new string?[smiles.Count];
        Parallel.For(0, smiles.Count, options, i =>
        {
            if (!Molecule.TryFromSmiles(smiles[i], out var parsed, out _)) return;
            using var m = parsed!;
            result[i] = m.ToSmiles();
        });
        return [.. result.OfType<string>()];
    }

    private Parsed?[] Parse(IReadOnlyList<string> smiles, ParallelOptions options, bool withFilters)
    {
        var result = new Parsed?[smiles.Count];
        Parallel.For(0, smiles.Count, options, i =>
        {
            if (!Molecule.TryFromSmiles(smiles[i], out var parsed, out _)) return;
            using var m = parsed!;
            result[i] = new Parsed(m.ToSmiles(), Fingerprints.Morgan(m, Radius, Bits), m.BricsFragments(), Scaffold(m),
                withFilters && PassesFilters(m));
        });
        return result;
    }

    /// <summary>MOSES keeps scaffolds with at least two rings.</summary>
    private static string? Scaffold(Molecule m)
    {
        string scaffold = m.MurckoScaffold();
        if (scaffold.Length == 0) return null;
        // A scaffold cut from a charged or hypervalent molecule can fail sanitization on its own (e.g. an [N+] that
        // kept its =S); MOSES counts its rings without re-parsing, here such a scaffold counts as none.
        if (!Molecule.TryFromSmiles(scaffold, out var core, out _)) return null;
        using (core) return core!.RingCount() >= 2 ? scaffold : null;
    }

    /// <summary>No ring of 8 or more atoms, no charge, only C N S O F Cl Br H, no MCF or PAINS match, SMILES round trip.</summary>
    public bool PassesFilters(Molecule m)
    {
        if (m.RingSizes().Any(size => size >= 8)) return false;
        var atoms = m.Atoms();
        if (atoms.Any(a => a.FormalCharge != 0 || !AllowedElements.Contains(a.AtomicNumber))) return false;
        using (var withHydrogens = m.WithHydrogens())
            if (medicinalChemistryFilters.Any(withHydrogens.HasMatch) || pains.Matches(withHydrogens).Count > 0) return false;
        string flat = m.ToSmiles(isomeric: false);
        if (!Molecule.TryFromSmiles(flat, out var back, out _)) return false;
        back!.Dispose();
        return true;
    }

    /// <summary>Mean over generated molecules of (mean over others of T^p)^(1/p); empty pairs count as 1, as in MOSES.</summary>
    private static double MeanSimilarity(List<Parsed> a, List<Parsed> b, int power, ParallelOptions options)
    {
        var perMolecule = new double[a.Count];
        Parallel.For(0, a.Count, options, i =>
        {
            double sum = 0;
            foreach (var other in b)
            {
                double t = Fingerprints.Tanimoto(a[i].Fingerprint, other.Fingerprint);
                sum += power == 1 ? t : Math.Pow(t, power);
            }
            double mean = sum / b.Count;
            perMolecule[i] = power == 1 ? mean : Math.Pow(mean, 1.0 / power);
        });
        return perMolecule.Average();
    }

    private static double NearestNeighbourSimilarity(List<Parsed> generated, List<Parsed> reference, ParallelOptions options)
    {
        var best = new double[generated.Count];
        Parallel.For(0, generated.Count, options, i => best[i] = reference.Max(r => Fingerprints.Tanimoto(generated[i].Fingerprint, r.Fingerprint)));
        return best.Average();
    }

    private static Dictionary<string, int> Count(IEnumerable<string> items)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var item in items) counts[item] = counts.GetValueOrDefault(item) + 1;
        return counts;
    }

    private static double? Cosine(Dictionary<string, int> a, Dictionary<string, int> b)
    {
        double dot = 0, na = 0, nb = 0;
        foreach (var (key, x) in a)
        {
            na += (double)x * x;
            if (b.TryGetValue(key, out int y)) dot += (double)x * y;
        }
        foreach (var y in b.Values) nb += (double)y * y;
        return na == 0 || nb == 0 ? null : dot / Math.Sqrt(na * nb);
    }

    public void Dispose()
    {
        foreach (var q in medicinalChemistryFilters) q.Dispose();
        pains.Dispose();
    }
}
