namespace BioForge.Proteins;

/// <summary>
/// Families of protein sequences by single linkage: two sequences are one family when their local alignment (BLAST's
/// scoring, <see cref="LocalAlignment"/>) is at least <c>identity</c> identical over <see cref="Coverage"/> of the
/// shorter one (identity over coverage, as UniRef and MMseqs2 cluster; coverage of the shorter, so a domain construct
/// joins its full-length protein). Only pairs that share enough 4-mers to reach that identity are aligned (a k-mer
/// prefilter, as MMseqs2's, set loose: half the 4-mers that <c>identity</c> would keep if substitutions fell at random).
/// </summary>
internal static class SequenceFamilies
{
    /// <summary>Share of the shorter sequence the alignment must span (a domain construct and its full-length protein pair).</summary>
    public const double Coverage = 0.9;

    /// <summary>Each sequence's family, numbered 0, 1, … in order of each family's first sequence (case ignored).</summary>
    public static int[] Group(IReadOnlyList<string> sequences, double identity)
    {
        int n = sequences.Count;
        var upper = sequences.Select(s => s.ToUpperInvariant()).ToArray();
        var kmers = upper.Select(Kmers).ToArray();
        var parent = Enumerable.Range(0, n).ToArray();
        int Root(int i)
        {
            while (parent[i] != i) i = parent[i] = parent[parent[i]];
            return i;
        }
        double needed = 0.5 * Coverage * Math.Pow(identity, 4);
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
            {
                int a = Root(i), b = Root(j);
                if (a == b) continue; // already one family: single linkage needs no alignment
                if (upper[i] != upper[j])
                {
                    if (Shared(kmers[i], kmers[j]) < needed * Math.Min(kmers[i].Length, kmers[j].Length)) continue;
                    var (shorter, longer) = upper[i].Length <= upper[j].Length ? (upper[i], upper[j]) : (upper[j], upper[i]);
                    var alignment = LocalAlignment.Align(shorter, longer);
                    if (alignment.Identity < identity || alignment.Coverage < Coverage) continue;
                }
                parent[Math.Max(a, b)] = Math.Min(a, b);
            }
        var number = new Dictionary<int, int>();
        return [.. Enumerable.Range(0, n).Select(i => number.TryGetValue(Root(i), out int k) ? k : number[Root(i)] = number.Count)];
    }

    /// <summary>The sequence's distinct 4-mers of letters, sorted (each letter 5 bits).</summary>
    private static int[] Kmers(string sequence)
    {
        var set = new HashSet<int>();
        for (int i = 0; i + 4 <= sequence.Length; i++)
        {
            int code = 0;
            for (int k = 0; k < 4; k++) code = (code << 5) | ((sequence[i + k] - 'A') & 31);
            set.Add(code);
        }
        return [.. set.Order()];
    }

    private static int Shared(int[] a, int[] b)
    {
        int shared = 0;
        for (int i = 0, j = 0; i < a.Length && j < b.Length;)
        {
            if (a[i] == b[j])
            {
                shared++;
                i++;
                j++;
            }
            else if (a[i] < b[j]) i++;
            else j++;
        }
        return shared;
    }
}
