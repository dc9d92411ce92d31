namespace BioForge.Statistics;

internal static class Quantile
{
    /// <summary>The q-quantile of sorted values by linear interpolation between order statistics (numpy's default): the median of an even count is the mean of the middle two.</summary>
    public static double OfSorted(IReadOnlyList<double> sorted, double q)
    {
        double h = (sorted.Count - 1) * q;
        int lo = (int)Math.Floor(h);
        return lo + 1 < sorted.Count ? sorted[lo] + (h - lo) * (sorted[lo + 1] - sorted[lo]) : sorted[lo];
    }
}
