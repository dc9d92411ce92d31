namespace BioForge.Discovery;

/// <summary>
/// REINVENT's identical-Murcko-scaffold diversity filter: molecules scoring at least the minimum fill a bucket per
/// scaffold; once a bucket holds <c>bucket_size</c> molecules, further molecules with that scaffold score 0, and so
/// does a molecule already seen in an earlier step. The agent is thus paid for new chemotypes, not for repeating one.
/// </summary>
public sealed class DiversityFilter(OptimizeConfig.DiversityFilterSection settings)
{
    private readonly Dictionary<string, int> buckets = new(StringComparer.Ordinal);
    private readonly HashSet<string> seen = new(StringComparer.Ordinal);

    public int Scaffolds => buckets.Count;

    /// <summary>The score the agent learns from for each molecule of one batch (in order); updates the buckets.</summary>
    public double[] Apply(IReadOnlyList<ScoredMolecule> batch)
    {
        var result = new double[batch.Count];
        var thisBatch = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < batch.Count; i++)
        {
            var m = batch[i];
            if (!m.Valid)
                continue;
            bool repeated = seen.Contains(m.Canonical!) && !thisBatch.Contains(m.Canonical!);
            thisBatch.Add(m.Canonical!);
            if (settings.Kind == "none")
            {
                result[i] = m.Score;
                continue;
            }
            if (repeated) continue;
            string scaffold = m.Scaffold ?? "";
            if (m.Score >= settings.MinimumScore)
            {
                int count = buckets.GetValueOrDefault(scaffold) + 1;
                buckets[scaffold] = count;
                if (count > settings.BucketSize) continue;
            }
            result[i] = m.Score;
        }
        seen.UnionWith(thisBatch);
        return result;
    }

    /// <summary>Whether a canonical SMILES was scored in an earlier step.</summary>
    public bool Seen(string canonical) => seen.Contains(canonical);

    public DiversityFilterState State() => new([.. buckets.Select(kv => new ScaffoldCount(kv.Key, kv.Value))], [.. seen]);

    public void Restore(DiversityFilterState state)
    {
        buckets.Clear();
        foreach (var b in state.Buckets) buckets[b.Scaffold] = b.Count;
        seen.Clear();
        seen.UnionWith(state.Seen);
    }
}

public sealed record ScaffoldCount(string Scaffold, int Count);

public sealed record DiversityFilterState(List<ScaffoldCount> Buckets, List<string> Seen);
