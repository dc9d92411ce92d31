namespace BioForge.Training;

/// <summary>Counter-based random numbers: every draw is a pure function of its coordinates, so runs resume exactly.</summary>
public static class StatelessRandom
{
    /// <summary>SplitMix64 finaliser over a combination of the coordinates.</summary>
    public static ulong Hash(ulong seed, long a, long b = 0, long c = 0)
    {
        ulong z = seed;
        foreach (long x in (ReadOnlySpan<long>)[a, b, c]) z = Mix(z + 0x9E3779B97F4A7C15UL * ((ulong)x + 1));
        return z;
    }

    /// <summary>A double in [0, 1).</summary>
    public static double Unit(ulong seed, long a, long b = 0, long c = 0) => (Hash(seed, a, b, c) >> 11) * (1.0 / (1UL << 53));

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

/// <summary>
/// The documents of one epoch, grouped into batches under a token budget: a seeded shuffle, then length bucketing
/// within windows of shuffled documents (little padding), then a seeded shuffle of the batches. Batch k of epoch e is
/// a pure function of (seed, e, k) and the document lengths, so training resumes mid-epoch exactly.
/// </summary>
public static class TokenBudgetBatches
{
    public static IReadOnlyList<int[]> ForEpoch(IReadOnlyList<int> lengths, int maxTokens, ulong seed, int epoch, int window = 4096)
    {
        if (maxTokens <= 0) throw new BioForgeException($"token budget must be positive (got {maxTokens})");
        int[] order = Permutation(lengths.Count, seed, epoch, stream: 0);
        var batches = new List<int[]>();
        for (int start = 0; start < order.Length; start += window)
        {
            var bucket = order.Skip(start).Take(window).OrderBy(i => lengths[i]).ThenBy(i => i).ToArray();
            var current = new List<int>();
            int longest = 0;
            foreach (int doc in bucket)
            {
                int candidate = Math.Max(longest, lengths[doc]);
                if (current.Count > 0 && (long)(current.Count + 1) * candidate > maxTokens)
                {
                    batches.Add([.. current]);
                    current.Clear();
                    candidate = lengths[doc];
                }
                current.Add(doc);
                longest = candidate;
            }
            if (current.Count > 0) batches.Add([.. current]);
        }
        int[] batchOrder = Permutation(batches.Count, seed, epoch, stream: 1);
        return batchOrder.Select(i => batches[i]).ToList();
    }

    /// <summary>Fisher–Yates shuffle of 0..n-1 driven by <see cref="StatelessRandom"/>.</summary>
    public static int[] Permutation(int n, ulong seed, int epoch, int stream)
    {
        var result = Enumerable.Range(0, n).ToArray();
        for (int i = n - 1; i > 0; i--)
        {
            int j = (int)(StatelessRandom.Hash(seed, epoch, stream, i) % (ulong)(i + 1));
            (result[i], result[j]) = (result[j], result[i]);
        }
        return result;
    }
}
