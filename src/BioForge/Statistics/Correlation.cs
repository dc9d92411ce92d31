namespace BioForge.Statistics;

public static class Correlation
{
    public static double Pearson(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        if (x.Count != y.Count) throw new ArgumentException("x and y differ in length");
        int n = x.Count;
        if (n < 2) return double.NaN;
        double mx = x.Average(), my = y.Average(), sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < n; i++)
        {
            double dx = x[i] - mx, dy = y[i] - my;
            sxy += dx * dy;
            sxx += dx * dx;
            syy += dy * dy;
        }
        return sxx == 0 || syy == 0 ? double.NaN : sxy / Math.Sqrt(sxx * syy);
    }

    /// <summary>
    /// Spearman's ρ: Pearson correlation of ranks, ties given their average rank (as scipy.stats.spearmanr); NaN when
    /// either side holds a NaN, as scipy propagates it (ranked, a NaN would sort first and count as a real value).
    /// </summary>
    public static double Spearman(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        if (x.Count != y.Count) throw new ArgumentException("x and y differ in length");
        return AnyNaN(x) || AnyNaN(y) ? double.NaN : Pearson(Ranks(x), Ranks(y));
    }

    internal static bool AnyNaN(IReadOnlyList<double> values)
    {
        for (int i = 0; i < values.Count; i++)
            if (double.IsNaN(values[i])) return true;
        return false;
    }

    public static double[] Ranks(IReadOnlyList<double> values)
    {
        var order = Enumerable.Range(0, values.Count).OrderBy(i => values[i]).ToArray();
        var ranks = new double[values.Count];
        for (int start = 0; start < order.Length;)
        {
            int end = start;
            while (end + 1 < order.Length && values[order[end + 1]] == values[order[start]]) end++;
            double rank = (start + end) / 2.0 + 1;
            for (int k = start; k <= end; k++) ranks[order[k]] = rank;
            start = end + 1;
        }
        return ranks;
    }
}
