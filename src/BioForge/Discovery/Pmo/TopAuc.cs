namespace BioForge.Discovery.Pmo;

/// <summary>
/// The PMO benchmark's sample-efficiency score, AUC top-k, as <c>mol_opt</c> (Gao et al. 2022) computes it from the
/// scores of the counted oracle calls in call order: every <c>every</c> calls the mean of the k best scores so far
/// (of all of them while there are fewer than k); the area under that curve by the trapezoid rule, starting from 0
/// at call 0, with a last, possibly shorter, segment up to the final call; a run that stopped before its budget keeps
/// its last value up to the budget; divided by the budget, so a run at 1 from the first call scores just under 1.
/// (A plain mean of the points, as the benchmark is often described, differs from the published numbers by the
/// trapezoid's half segment.)
/// </summary>
internal static class TopAuc
{
    public const int Every = 100;

    /// <param name="scores">The scores of the counted calls, in call order; calls past <paramref name="budget"/> count only in the last segment, as in mol_opt.</param>
    /// <param name="finished">mol_opt's final figure (true): a run that stopped early is extended to the budget at its last value.</param>
    public static double Compute(IReadOnlyList<double> scores, int budget, int top = 10, int every = Every, bool finished = true)
    {
        if (budget < 1 || top < 1 || every < 1) throw new ArgumentOutOfRangeException(nameof(budget), "budget, top and every must be positive");
        if (scores.Count == 0) return 0;
        double area = 0, previous = 0;
        int reached = 0;
        var best = new TopK(top);
        int limit = Math.Min(scores.Count, budget);
        // Points strictly before the last call (or the budget); the final point always uses every call.
        for (int point = every; point < limit; point += every)
        {
            for (; reached < point; reached++) best.Add(scores[reached]);
            double now = best.Mean;
            area += every * (now + previous) / 2;
            previous = now;
        }
        int counted = reached;
        for (; reached < scores.Count; reached++) best.Add(scores[reached]);
        double last = best.Mean;
        area += (scores.Count - counted) * (last + previous) / 2;
        if (finished && scores.Count < budget) area += (budget - scores.Count) * last;
        return area / budget;
    }

    /// <summary>The running top-k mean after every <paramref name="every"/> calls and after the last one (a curve to plot).</summary>
    public static IReadOnlyList<(int Calls, double TopMean)> Curve(IReadOnlyList<double> scores, int top = 10, int every = Every)
    {
        var points = new List<(int, double)>();
        var best = new TopK(top);
        for (int i = 0; i < scores.Count; i++)
        {
            best.Add(scores[i]);
            if ((i + 1) % every == 0 || i == scores.Count - 1) points.Add((i + 1, best.Mean));
        }
        return points;
    }

    /// <summary>The mean of the k best scores of all calls (of all of them when fewer).</summary>
    public static double TopMean(IEnumerable<double> scores, int top = 10)
    {
        var best = new TopK(top);
        foreach (double s in scores) best.Add(s);
        return best.Mean;
    }

    /// <summary>The k largest values seen, kept in a min-heap.</summary>
    private sealed class TopK(int k)
    {
        private readonly PriorityQueue<double, double> heap = new();
        private double sum;

        public double Mean => heap.Count == 0 ? 0 : sum / heap.Count;

        public void Add(double value)
        {
            if (heap.Count < k)
            {
                heap.Enqueue(value, value);
                sum += value;
            }
            else if (value > heap.Peek())
            {
                sum += value - heap.Dequeue();
                heap.Enqueue(value, value);
            }
        }
    }
}
