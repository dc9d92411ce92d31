namespace BioForge.Statistics;

/// <summary>
/// The metrics drug–target affinity papers report (DeepDTA, GraphDTA): mean squared error, concordance index, r²m,
/// Pearson and Spearman correlation, and AUPR of finding the binders.
/// </summary>
public static class AffinityMetrics
{
    /// <param name="binderThreshold">
    /// The measured affinity from which a pair is a binder, for <c>aupr</c>: pKd 7 for Davis, KIBA score 12.1
    /// (<see cref="Discovery.AffinityModel.BinderThreshold"/>).
    /// </param>
    public static Dictionary<string, double> All(IReadOnlyList<double> truth, IReadOnlyList<double> predicted, double binderThreshold) => new()
    {
        ["mse"] = MeanSquaredError(truth, predicted),
        ["ci"] = ConcordanceIndex(truth, predicted),
        ["rm2"] = Rm2(truth, predicted),
        ["pearson"] = Correlation.Pearson(truth, predicted),
        ["spearman"] = Correlation.Spearman(truth, predicted),
        ["aupr"] = BinderAupr(truth, predicted, binderThreshold),
    };

    /// <summary>
    /// How well the predictions rank the binders (truth ≥ the threshold) first: average precision over the predicted
    /// affinities as scores (scikit-learn's <c>average_precision_score</c>, no interpolation), the binary view of the
    /// benchmark that DeepDTA's successors report beside CI (thresholds pKd 7 and KIBA 12.1). Some of them integrate the
    /// curve with trapezoids (<c>auc(recall, precision)</c>), which reads a little higher; compare within one
    /// convention. NaN without a binder or with a NaN on either side.
    /// </summary>
    public static double BinderAupr(IReadOnlyList<double> truth, IReadOnlyList<double> predicted, double binderThreshold)
    {
        Check(truth, predicted);
        if (Correlation.AnyNaN(truth)) return double.NaN;
        return TaskMetrics.AveragePrecision([.. truth.Select(t => t >= binderThreshold)], predicted);
    }

    public static double MeanSquaredError(IReadOnlyList<double> truth, IReadOnlyList<double> predicted)
    {
        Check(truth, predicted);
        double sum = 0;
        for (int i = 0; i < truth.Count; i++) sum += (truth[i] - predicted[i]) * (truth[i] - predicted[i]);
        return truth.Count == 0 ? double.NaN : sum / truth.Count;
    }

    /// <summary>
    /// Concordance index (Gönen &amp; Heller 2005, as DeepDTA defines it): over all pairs whose true values differ, the
    /// fraction the predictions order the same way, tied predictions counting one half. O(n log n): the pairs are
    /// visited in order of truth, and a Fenwick tree over prediction ranks counts, for each value, the earlier (smaller)
    /// truths predicted lower or equal. NaN when either side holds a NaN (it has no order to count).
    /// </summary>
    public static double ConcordanceIndex(IReadOnlyList<double> truth, IReadOnlyList<double> predicted)
    {
        Check(truth, predicted);
        if (Correlation.AnyNaN(truth) || Correlation.AnyNaN(predicted)) return double.NaN;
        int n = truth.Count;
        var distinct = predicted.Distinct().Order().ToArray();
        var rank = new int[n];
        for (int i = 0; i < n; i++) rank[i] = Array.BinarySearch(distinct, predicted[i]) + 1;
        var tree = new long[distinct.Length + 1];
        void Add(int position)
        {
            for (; position < tree.Length; position += position & -position) tree[position]++;
        }
        long CountUpTo(int position)
        {
            long count = 0;
            for (; position > 0; position -= position & -position) count += tree[position];
            return count;
        }
        var order = Enumerable.Range(0, n).OrderBy(i => truth[i]).ToArray();
        double concordant = 0;
        long pairs = 0, inserted = 0;
        for (int start = 0; start < n;)
        {
            int end = start;
            while (end < n && truth[order[end]] == truth[order[start]]) end++;
            for (int k = start; k < end; k++)
            {
                int r = rank[order[k]];
                long below = CountUpTo(r - 1), equal = CountUpTo(r) - below;
                concordant += below + 0.5 * equal;
            }
            pairs += (long)(end - start) * inserted;
            // Equal truths are no pair: the group enters the tree only after all its members were scored.
            for (int k = start; k < end; k++) Add(rank[order[k]]);
            inserted += end - start;
            start = end;
        }
        return pairs == 0 ? double.NaN : concordant / pairs;
    }

    /// <summary>
    /// r²m (Roy et al. 2013) as DeepDTA's and GraphDTA's evaluation code computes it, so the numbers compare:
    /// r² · (1 − √|r²·r² − r0²·r0²|), with r² the squared Pearson correlation and r0² the coefficient of determination
    /// of the regression through the origin (truth ≈ k · prediction).
    /// </summary>
    public static double Rm2(IReadOnlyList<double> truth, IReadOnlyList<double> predicted)
    {
        Check(truth, predicted);
        double r = Correlation.Pearson(truth, predicted), r2 = r * r;
        double yp = 0, pp = 0, mean = truth.Count == 0 ? 0 : truth.Average();
        for (int i = 0; i < truth.Count; i++)
        {
            yp += truth[i] * predicted[i];
            pp += predicted[i] * predicted[i];
        }
        double k = yp / pp, residual = 0, total = 0;
        for (int i = 0; i < truth.Count; i++)
        {
            residual += (truth[i] - k * predicted[i]) * (truth[i] - k * predicted[i]);
            total += (truth[i] - mean) * (truth[i] - mean);
        }
        double r02 = 1 - residual / total;
        return r2 * (1 - Math.Sqrt(Math.Abs(r2 * r2 - r02 * r02)));
    }

    private static void Check(IReadOnlyList<double> truth, IReadOnlyList<double> predicted)
    {
        if (truth.Count != predicted.Count) throw new ArgumentException("truth and predictions differ in length");
    }
}
