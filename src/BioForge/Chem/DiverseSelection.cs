namespace BioForge.Chem;

/// <summary>
/// A diverse pick from a ranked list by greedy sphere exclusion: walking from the best, a molecule is kept only when
/// no molecule kept before it is more similar than a threshold (Tanimoto on Morgan radius-2 bits, 1024 of them, the
/// fingerprint of MOSES' internal diversity). An optimizer's top N by score alone is mostly close analogues of a few
/// hits; a chemist wants the best of each series instead.
/// </summary>
internal static class DiverseSelection
{
    /// <summary>
    /// Indices into <paramref name="rankedSmiles"/> (best first) of at most <paramref name="count"/> molecules, no two
    /// more similar than <paramref name="maxSimilarity"/>, in rank order. Unreadable SMILES are passed over; fewer
    /// than <paramref name="count"/> come back when the list holds fewer such molecules.
    /// </summary>
    public static IReadOnlyList<int> Pick(IReadOnlyList<string> rankedSmiles, int count, double maxSimilarity)
    {
        if (count < 0) throw new BioForgeException($"diverse pick: count {count} must be non-negative");
        if (!(maxSimilarity is > 0 and <= 1)) throw new BioForgeException($"diverse pick: maximum similarity {maxSimilarity} must be in (0, 1]");
        var picked = new List<int>(count);
        var fingerprints = new List<ulong[]>(count);
        for (int i = 0; i < rankedSmiles.Count && picked.Count < count; i++)
        {
            if (!Molecule.TryFromSmiles(rankedSmiles[i], out var parsed, out _)) continue;
            ulong[] fingerprint;
            using (parsed!) fingerprint = Fingerprints.Morgan(parsed!, MosesMetrics.Radius, MosesMetrics.Bits);
            if (fingerprints.Any(f => Fingerprints.Tanimoto(f, fingerprint) > maxSimilarity)) continue;
            picked.Add(i);
            fingerprints.Add(fingerprint);
        }
        return picked;
    }
}
