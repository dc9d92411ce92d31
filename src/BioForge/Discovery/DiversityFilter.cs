using BioForge.Chem;

namespace BioForge.Discovery;

/// <summary>
/// REINVENT's scaffold diversity filters: molecules scoring at least the minimum fill a bucket per Murcko scaffold —
/// the identical scaffold; the generic one (every atom carbon, every bond single); or, with <c>similar_scaffold</c>,
/// the first bucket whose scaffold is at least <c>similarity</c> similar (Tanimoto, Morgan radius 2), so a family of
/// close analogues shares one bucket. Once a bucket holds <c>bucket_size</c> molecules, further molecules in it score
/// 0, and so does a molecule already seen (in an earlier step, or earlier in the same batch): the agent is paid for new
/// chemotypes, not for repeats. Scaffolds keep their stereochemistry, as REINVENT 4's do (REINVENT 3 wrote them without),
/// so enantiomeric series fill separate buckets.
/// </summary>
public sealed class DiversityFilter(OptimizeConfig.DiversityFilterSection settings)
{
    private readonly Dictionary<string, int> buckets = new(StringComparer.Ordinal);
    private readonly HashSet<string> seen = new(StringComparer.Ordinal);
    // similar_scaffold: each bucket's first scaffold and its fingerprint.
    private readonly List<(string Scaffold, ulong[] Fingerprint)> representatives = [];

    public int Buckets => buckets.Count;

    /// <summary>The score the agent learns from for each molecule of one batch (in order); updates the buckets.</summary>
    public double[] Apply(IReadOnlyList<ScoredMolecule> batch) => Apply(batch, out _);

    /// <param name="bucketKeys">Each molecule's bucket (null: invalid, a repeat, or no filter), for <see cref="IsFull"/> later.</param>
    public double[] Apply(IReadOnlyList<ScoredMolecule> batch, out string?[] bucketKeys)
    {
        var result = new double[batch.Count];
        bucketKeys = new string?[batch.Count];
        var thisBatch = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < batch.Count; i++)
        {
            var m = batch[i];
            if (!m.Valid)
                continue;
            // Seen in an earlier step (every copy of it in this batch), or earlier in this batch: a repeat. REINVENT 4's
            // memory fills as it goes through a batch too, so a molecule sampled twice at once is paid once, not twice.
            bool repeated = seen.Contains(m.Canonical!) | !thisBatch.Add(m.Canonical!);
            if (settings.Kind == "none")
            {
                result[i] = m.Score;
                continue;
            }
            if (repeated) continue;
            ulong[]? newRepresentative = null;
            string scaffold = settings.Kind switch
            {
                "generic_murcko_scaffold" => m.GenericScaffold ?? "",
                "similar_scaffold" => Bucket(m.Scaffold ?? "", out newRepresentative),
                _ => m.Scaffold ?? "",
            };
            bucketKeys[i] = scaffold;
            if (m.Score >= settings.MinimumScore)
            {
                // As in REINVENT's memory, a scaffold represents a bucket once a molecule scoring the minimum fills it.
                if (newRepresentative is not null && !buckets.ContainsKey(scaffold)) representatives.Add((scaffold, newRepresentative));
                int count = buckets.GetValueOrDefault(scaffold) + 1;
                buckets[scaffold] = count;
                if (count > settings.BucketSize) continue;
            }
            result[i] = m.Score;
        }
        seen.UnionWith(thisBatch);
        return result;
    }

    /// <summary>The representative scaffold of the first bucket similar enough to <paramref name="scaffold"/>, or itself,
    /// with its fingerprint in <paramref name="fingerprint"/> to represent a bucket if one is made for it.</summary>
    private string Bucket(string scaffold, out ulong[]? fingerprint)
    {
        fingerprint = null;
        if (scaffold.Length == 0 || buckets.ContainsKey(scaffold)) return scaffold;
        var mine = Fingerprint(scaffold);
        foreach (var (representative, other) in representatives)
            if (Fingerprints.Tanimoto(mine, other) >= settings.Similarity) return representative;
        fingerprint = mine;
        return scaffold;
    }

    private static ulong[] Fingerprint(string scaffold)
    {
        using var molecule = Molecule.FromSmiles(scaffold);
        return Fingerprints.Morgan(molecule);
    }

    /// <summary>Whether a bucket holds <c>bucket_size</c> molecules, so that its next ones score 0.</summary>
    public bool IsFull(string bucketKey) => settings.Kind != "none" && buckets.GetValueOrDefault(bucketKey) >= settings.BucketSize;

    /// <summary>Whether a canonical SMILES was scored in an earlier step.</summary>
    public bool Seen(string canonical) => seen.Contains(canonical);

    public DiversityFilterState State() => new([.. buckets.Select(kv => new ScaffoldCount(kv.Key, kv.Value))], [.. seen]);

    public void Restore(DiversityFilterState state)
    {
        buckets.Clear();
        foreach (var b in state.Buckets) buckets[b.Scaffold] = b.Count;
        representatives.Clear();
        // The buckets were saved in the order they were made, which is the representatives' order.
        if (settings.Kind == "similar_scaffold")
            representatives.AddRange(state.Buckets.Where(b => b.Scaffold.Length > 0).Select(b => (b.Scaffold, Fingerprint(b.Scaffold))));
        seen.Clear();
        seen.UnionWith(state.Seen);
    }
}

public sealed record ScaffoldCount(string Scaffold, int Count);

public sealed record DiversityFilterState(List<ScaffoldCount> Buckets, List<string> Seen);
