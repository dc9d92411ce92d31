namespace BioForge.Statistics;

/// <summary>How well predictions match labels: the numbers fine-tuning reports per split.</summary>
internal static class TaskMetrics
{
    /// <summary>RMSE, MAE, R² (1 − SSE/SST, can be negative), Pearson r and Spearman ρ.</summary>
    public static Dictionary<string, double> Regression(IReadOnlyList<double> truth, IReadOnlyList<double> predicted)
    {
        if (truth.Count != predicted.Count) throw new ArgumentException("truth and predictions differ in length");
        int n = truth.Count;
        if (n == 0) return [];
        double mean = truth.Average(), sse = 0, sst = 0, absolute = 0;
        for (int i = 0; i < n; i++)
        {
            double error = predicted[i] - truth[i];
            sse += error * error;
            absolute += Math.Abs(error);
            sst += (truth[i] - mean) * (truth[i] - mean);
        }
        return new Dictionary<string, double>
        {
            ["rmse"] = Math.Sqrt(sse / n),
            ["mae"] = absolute / n,
            ["r2"] = sst == 0 ? double.NaN : 1 - sse / sst,
            ["pearson"] = Correlation.Pearson(truth, predicted),
            ["spearman"] = Correlation.Spearman(truth, predicted),
        };
    }

    /// <summary>
    /// Accuracy, and AUROC: of the positive class (index 1) for two classes, else the mean one-vs-rest AUROC over the
    /// classes present with both positives and negatives (macro, as scikit-learn's <c>ovr</c>).
    /// </summary>
    /// <param name="probabilities">Per example, one probability per class.</param>
    public static Dictionary<string, double> Classification(IReadOnlyList<int> truth, IReadOnlyList<double[]> probabilities)
    {
        if (truth.Count != probabilities.Count) throw new ArgumentException("truth and predictions differ in length");
        if (truth.Count == 0) return [];
        int classes = probabilities[0].Length;
        int correct = 0;
        for (int i = 0; i < truth.Count; i++)
            if (ArgMax(probabilities[i]) == truth[i]) correct++;
        double auroc;
        if (classes == 2) auroc = Auroc(truth.Select(t => t == 1).ToList(), probabilities.Select(p => p[1]).ToList());
        else
        {
            var perClass = Enumerable.Range(0, classes)
                .Select(c => Auroc(truth.Select(t => t == c).ToList(), probabilities.Select(p => p[c]).ToList()))
                .Where(double.IsFinite).ToList();
            auroc = perClass.Count == 0 ? double.NaN : perClass.Average();
        }
        return new Dictionary<string, double> { ["accuracy"] = (double)correct / truth.Count, ["auroc"] = auroc };
    }

    /// <summary>
    /// Area under the ROC curve as the Mann–Whitney U statistic over ranks (ties share their average rank): the chance
    /// that a random positive scores above a random negative. NaN when either class is absent, or when a score is NaN
    /// (ranks would place it by its position in the input).
    /// </summary>
    public static double Auroc(IReadOnlyList<bool> positive, IReadOnlyList<double> score)
    {
        long positives = positive.Count(p => p), negatives = positive.Count - positives;
        if (positives == 0 || negatives == 0 || score.Any(double.IsNaN)) return double.NaN;
        var ranks = Correlation.Ranks(score);
        double rankSum = 0;
        for (int i = 0; i < ranks.Length; i++)
            if (positive[i]) rankSum += ranks[i];
        return (rankSum - positives * (positives + 1) / 2.0) / ((double)positives * negatives);
    }

    public static int ArgMax(double[] values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }
}
