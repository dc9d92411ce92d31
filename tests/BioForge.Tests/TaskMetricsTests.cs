using BioForge.Statistics;

namespace BioForge.Tests;

public sealed class TaskMetricsTests
{
    [Fact]
    public void AurocCountsCorrectlyOrderedPairsWithTiesAsHalf()
    {
        // scikit-learn roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.75
        Assert.Equal(0.75, TaskMetrics.Auroc([false, false, true, true], [0.1, 0.4, 0.35, 0.8]), 12);
        Assert.Equal(1.0, TaskMetrics.Auroc([false, true], [0.2, 0.9]), 12);
        Assert.Equal(0.0, TaskMetrics.Auroc([false, true], [0.9, 0.2]), 12);
        Assert.Equal(0.5, TaskMetrics.Auroc([false, true, false, true], [0.3, 0.3, 0.3, 0.3]), 12);
        Assert.True(double.IsNaN(TaskMetrics.Auroc([true, true], [0.1, 0.2])));
        // A NaN score has no rank: ranked by its place in the input it gave 0.25 one way round and 0.75 the other.
        Assert.True(double.IsNaN(TaskMetrics.Auroc([false, true, false, true], [double.NaN, double.NaN, double.NaN, double.NaN])));
        Assert.True(double.IsNaN(TaskMetrics.Auroc([false, true, true], [0.1, double.NaN, 0.9])));
    }

    [Fact]
    public void MulticlassAurocIsTheMeanOfOneVersusRest()
    {
        int[] truth = [0, 1, 2, 2];
        double[][] p = [[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.1, 0.6, 0.3], [0.1, 0.1, 0.8]];
        var m = TaskMetrics.Classification(truth, p);
        // One-vs-rest: class 0 → 1.0; class 1 → positive 0.5 vs negatives {0.1, 0.6, 0.1} → 2/3; class 2 → {0.3, 0.8} vs {0.1, 0.3} → 0.875.
        Assert.Equal((1.0 + 2.0 / 3 + 0.875) / 3, m["auroc"], 12);
        Assert.Equal(0.75, m["accuracy"], 12);
        // Average precision per class: 1; 0.5 (the positive second, behind a negative); (1 + 2/3) / 2 (its second
        // positive tied with a negative: one threshold).
        Assert.Equal((1.0 + 0.5 + 5.0 / 6) / 3, m["auprc"], 12);
        // Predicted [0, 1, 1, 2]: 3 of 4 correct, true counts (1, 1, 2), predicted (1, 2, 1): (3·4 − 5) / √((16 − 6)(16 − 6)).
        Assert.Equal(0.7, m["mcc"], 12);
    }

    [Fact]
    public void AveragePrecisionAndMatthewsMatchScikitLearn()
    {
        // scikit-learn's documented examples: average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.8333…,
        // matthews_corrcoef([1, 1, 1, -1], [1, -1, 1, 1]) = −0.333…
        Assert.Equal(5.0 / 6, TaskMetrics.AveragePrecision([false, false, true, true], [0.1, 0.4, 0.35, 0.8]), 12);
        Assert.Equal(-1.0 / 3, TaskMetrics.Matthews([1, 1, 1, 0], [1, 0, 1, 1], 2), 12);
        // Tied scores are one threshold: all tied gives the prevalence (not 0.5 or 1 by input order).
        Assert.Equal(0.5, TaskMetrics.AveragePrecision([false, true, false, true], [0.3, 0.3, 0.3, 0.3]), 12);
        Assert.Equal(0.5, TaskMetrics.AveragePrecision([true, false, true, false], [0.3, 0.3, 0.3, 0.3]), 12);
        Assert.True(double.IsNaN(TaskMetrics.AveragePrecision([false, false], [0.1, 0.2])));
        Assert.True(double.IsNaN(TaskMetrics.AveragePrecision([false, true], [0.1, double.NaN])));

        // A classifier calling every one of 20 examples inactive, 1 active among them: accurate, yet no better than chance.
        var truth = Enumerable.Range(0, 20).Select(i => i == 7 ? 1 : 0).ToList();
        var m = TaskMetrics.Classification(truth, [.. truth.Select(_ => new[] { 0.9, 0.1 })]);
        Assert.Equal(0.95, m["accuracy"], 12);
        Assert.Equal(0.0, m["mcc"], 12); // scikit-learn answers 0 where the denominator is 0
        Assert.Equal(0.05, m["auprc"], 12);
        Assert.Equal(1.0, TaskMetrics.Matthews([0, 1, 2, 1], [0, 1, 2, 1], 3), 12);
    }

    [Fact]
    public void RegressionMetricsMatchHandComputedValues()
    {
        var m = TaskMetrics.Regression([1, 2, 3, 4], [1.5, 2, 2.5, 5]);
        Assert.Equal(Math.Sqrt((0.25 + 0 + 0.25 + 1) / 4), m["rmse"], 12);
        Assert.Equal((0.5 + 0 + 0.5 + 1) / 4, m["mae"], 12);
        Assert.Equal(1 - 1.5 / 5.0, m["r2"], 12);
        Assert.Equal(1.0, m["spearman"], 12);
    }

    /// <summary>The median of an even count is the mean of the middle two (the applicability note printed the upper one).</summary>
    [Fact]
    public void QuantilesInterpolateAsNumpyDoes()
    {
        double[] similarities = [0.020, 0.025, 0.036, 0.060, 0.100, 0.152, 0.169, 1.000];
        Assert.Equal(0.080, Quantile.OfSorted(similarities, 0.5), 12);
        Assert.Equal(0.036, Quantile.OfSorted(similarities[..5], 0.5), 12);
        Assert.Equal(0.0235, Quantile.OfSorted(similarities, 0.1), 12); // numpy.quantile: 0.02 + 0.7·0.005
    }
}
