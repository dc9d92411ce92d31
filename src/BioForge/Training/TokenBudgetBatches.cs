using BioForge.Runtime;
namespace BioForge.Training;

/// <summary>
/// The documents of one epoch, grouped into batches under a token budget: a seeded shuffle, then length bucketing
/// within windows of shuffled documents (little padding), then a seeded shuffle of the batches. Batch k of epoch e is
/// a pure function of (seed, e, k) and the document lengths, so training resumes mid-epoch exactly.
/// </summary>
internal static class TokenBudgetBatches
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
