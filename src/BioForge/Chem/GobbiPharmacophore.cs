namespace BioForge.Chem;

/// <summary>
/// The Gobbi–Poppinger 2D pharmacophore fingerprint (Biotech. Bioeng. 61, 47, 1998) as RDKit's
/// <c>Generate.Gen2DFingerprint(mol, Gobbi_Pharm2D.factory)</c>: every 2- and 3-point combination of feature atoms
/// (8 families) whose pairwise topological distances are all in [2, 100) sets one bit, numbered by its families and
/// binned distances exactly as RDKit's <c>SigFactory.GetBitIdx</c> numbers it (so bit sets compare with RDKit's).
/// Thread-safe: the compiled feature queries are only read.
/// </summary>
internal sealed class GobbiPharmacophore : IDisposable
{
    // Gobbi_Pharm2D.py's feature definitions, by family in RDKit's (sorted) family order: AG, AR, BG, HA, HD, LH, RR, X.
    private static readonly string[] FamilySmarts =
    [
        "[$([C,S](=[O,S,P])-[O;H1])]",
        "[$([a;D3](@*)(@*)*)]",
        "[$([N;H2&+0][$([C,a]);!$([C,a](=O))]),$([N;H1&+0]([$([C,a]);!$([C,a](=O))])[$([C,a]);!$([C,a](=O))]),$([N;H0&+0]([C;!$(C(=O))])([C;!$(C(=O))])[C;!$(C(=O))]),$([N,n;X2;+0])]",
        "[$([O,S;H1;v2]-[!$(*=[O,N,P,S])]),$([O,S;H0;v2]),$([O,S;-]),$([N&v3;H1,H2]-[!$(*=[O,N,P,S])]),$([N;v3;H0]),$([n,o,s;+0]),F]",
        "[$([N;!H0;v3]),$([N;!H0;+1;v4]),$([O,S;H1;+0]),$([n;H1;+0])]",
        "[$([C;H2,H1](!=*)[C;H2,H1][C;H2,H1][$([C;H1,H2,H3]);!$(C=*)]),$(C([C;H2,H3])([C;H2,H3])[C;H2,H3])]",
        "[$([A;D3](@*)(@*)*)]",
        "[!#1;!#6;!#7;!#8;!#9;!#16;!#17;!#35;!#53]",
    ];

    // Gobbi_Pharm2D.defaultBins: [low, high) in bonds.
    private static readonly (int Low, int High)[] Bins = [(2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8), (8, 100)];

    private readonly SmartsQuery[] families;
    private readonly int[][] combinations2;
    private readonly int[][] combinations3;
    private readonly Dictionary<(int, int, int), int> scaffolds3 = [];
    private readonly int start3;

    public GobbiPharmacophore()
    {
        families = [.. FamilySmarts.Select(s => new SmartsQuery(s))];
        int f = families.Length;
        combinations2 = IndexCombinations(f, 2);
        combinations3 = IndexCombinations(f, 3);
        // Three-point scaffolds: bin triples in lexicographic order that can satisfy the triangle inequality
        // (Utils.GetPossibleScaffolds with trianglePruneBins); a bit's scaffold number is its rank in this list.
        for (int a = 0; a < Bins.Length; a++)
            for (int b = 0; b < Bins.Length; b++)
                for (int c = 0; c < Bins.Length; c++)
                    if (Bins[a].High + Bins[b].High >= Bins[c].Low && Bins[b].High + Bins[c].High >= Bins[a].Low && Bins[c].High + Bins[a].High >= Bins[b].Low)
                        scaffolds3[(a, b, c)] = scaffolds3.Count;
        start3 = combinations2.Length * Bins.Length;
    }

    /// <summary>Number of possible bits (RDKit's <c>GetSigSize()</c>).</summary>
    public int Size => start3 + combinations3.Length * scaffolds3.Count;

    /// <summary>The set bits of the molecule's fingerprint.</summary>
    public IReadOnlySet<int> Fingerprint(Molecule molecule)
    {
        var matches = families.Select(molecule.SubstructureMatches).ToArray();
        var bits = new HashSet<int>();
        if (matches.All(m => m.Count == 0)) return bits;
        var distances = molecule.DistanceMatrix();

        // Distance between two feature matches: the shortest between their atoms; null when below 2 or from 100 on.
        int? Distance(int[] a, int[] b)
        {
            double shortest = Bins[^1].High;
            foreach (int i in a)
                foreach (int j in b)
                    shortest = Math.Min(shortest, distances[i, j]);
            int d = (int)shortest;
            return d < Bins[0].Low || d >= Bins[^1].High ? null : d;
        }

        // RDKit pairs distinct matches only (Utils.GetUniqueCombinations); a repeated match is 0 bonds from itself and
        // falls out at the distance check, and the order of matches of one family does not change the bit, so
        // combinations in increasing match order within a family give the same set.
        for (int p = 0; p < combinations2.Length; p++)
        {
            int[] perm = combinations2[p];
            var first = matches[perm[0]];
            var second = matches[perm[1]];
            for (int i = 0; i < first.Count; i++)
                for (int j = perm[1] == perm[0] ? i + 1 : 0; j < second.Count; j++)
                    if (Distance(first[i], second[j]) is int d)
                        bits.Add(p * Bins.Length + Bin(d));
        }
        for (int p = 0; p < combinations3.Length; p++)
        {
            int[] perm = combinations3[p];
            var (m0, m1, m2) = (matches[perm[0]], matches[perm[1]], matches[perm[2]]);
            for (int i = 0; i < m0.Count; i++)
                for (int j = perm[1] == perm[0] ? i + 1 : 0; j < m1.Count; j++)
                {
                    if (Distance(m0[i], m1[j]) is not int d01) continue;
                    for (int k = perm[2] == perm[1] ? j + 1 : 0; k < m2.Count; k++)
                    {
                        if (Distance(m0[i], m2[k]) is not int d02 || Distance(m1[j], m2[k]) is not int d12) continue;
                        var (a, b, c) = OrderTriangle(perm, d01, d02, d12);
                        if (!scaffolds3.TryGetValue((Bin(a), Bin(b), Bin(c)), out int scaffold))
                            throw new InvalidOperationException($"pharmacophore distances {a}, {b}, {c} break the triangle inequality");
                        bits.Add(start3 + p * scaffolds3.Count + scaffold);
                    }
                }
        }
        return bits;
    }

    private static int Bin(int distance)
    {
        for (int i = 0; i < Bins.Length; i++)
            if (distance >= Bins[i].Low && distance < Bins[i].High) return i;
        throw new InvalidOperationException($"distance {distance} is in no pharmacophore bin");
    }

    // Non-decreasing index tuples in lexicographic order (Utils.GetIndexCombinations): a tuple's rank is what
    // Utils.CountUpTo computes.
    private static int[][] IndexCombinations(int items, int slots)
    {
        var result = new List<int[]>();
        void Extend(List<int> prefix, int from)
        {
            if (prefix.Count == slots)
            {
                result.Add([.. prefix]);
                return;
            }
            for (int x = from; x < items; x++)
            {
                prefix.Add(x);
                Extend(prefix, x);
                prefix.RemoveAt(prefix.Count - 1);
            }
        }
        Extend([], 0);
        return [.. result];
    }

    /// <summary>
    /// The canonical order of a triangle's distances (d01, d02, d12) when features repeat (Utils.OrderTriangle), so
    /// that one triangle gives one bit whichever way its points were listed. The feature tuple is non-decreasing, so
    /// RDKit's reordering of it leaves it as it is.
    /// </summary>
    private static (int, int, int) OrderTriangle(int[] features, int d0, int d1, int d2)
    {
        int distinct = features.Distinct().Count();
        if (distinct == 3) return (d0, d1, d2);
        int[] dists = [d0, d1, d2];
        int[] reorder;
        if (distinct == 1)
        {
            int s0 = d0 + d1, s1 = d0 + d2, s2 = d1 + d2;
            int max = Math.Max(s0, Math.Max(s1, s2));
            if (s0 == max) reorder = d0 > d1 ? [0, 1, 2] : [1, 0, 2];
            else if (s1 == max) reorder = d0 > d2 ? [0, 2, 1] : [2, 0, 1];
            else reorder = d1 > d2 ? [1, 2, 0] : [2, 1, 0];
        }
        else if (features[0] == features[1]) reorder = d1 > d2 ? [0, 1, 2] : [0, 2, 1];
        else if (features[0] == features[2]) reorder = d0 > d2 ? [0, 1, 2] : [2, 1, 0];
        else reorder = d0 > d1 ? [0, 1, 2] : [1, 0, 2];
        return (dists[reorder[0]], dists[reorder[1]], dists[reorder[2]]);
    }

    public void Dispose()
    {
        foreach (var query in families) query.Dispose();
    }
}
