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
    /// Accuracy; AUROC and AUPRC (average precision): of the positive class (index 1) for two classes, else the mean
    /// one-vs-rest value over the classes present with both positives and negatives (macro, as scikit-learn's
    /// <c>ovr</c>); and the Matthews correlation of the predicted classes (multiclass: Gorodkin's R_K, as scikit-learn's
    /// <c>matthews_corrcoef</c>). AUPRC and MCC are what imbalanced assays (most actives are rare) are read by: a
    /// classifier that calls everything inactive has accuracy 0.95 on 5 % actives, MCC 0 and AUPRC 0.05.
    /// </summary>
    /// <param name="probabilities">Per example, one probability per class.</param>
    public static Dictionary<string, double> Classification(IReadOnlyList<int> truth, IReadOnlyList<double[]> probabilities)
    {
        if (truth.Count != probabilities.Count) throw new ArgumentException("truth and predictions differ in length");
        if (truth.Count == 0) return [];
        int classes = probabilities[0].Length;
        var predicted = probabilities.Select(ArgMax).ToList();
        int correct = truth.Where((t, i) => predicted[i] == t).Count();
        return new Dictionary<string, double>
        {
            ["accuracy"] = (double)correct / truth.Count,
            ["auroc"] = OneVersusRest(truth, probabilities, classes, Auroc),
            ["auprc"] = OneVersusRest(truth, probabilities, classes, AveragePrecision),
            ["mcc"] = Matthews(truth, predicted, classes),
        };
    }

    /// <summary>The positive class's score for two classes; else the mean over the classes where it is defined.</summary>
    private static double OneVersusRest(IReadOnlyList<int> truth, IReadOnlyList<double[]> probabilities, int classes,
        Func<IReadOnlyList<bool>, IReadOnlyList<double>, double> score)
    {
        if (classes == 2) return score([.. truth.Select(t => t == 1)], [.. probabilities.Select(p => p[1])]);
        var perClass = Enumerable.Range(0, classes)
            .Select(c => score([.. truth.Select(t => t == c)], [.. probabilities.Select(p => p[c])]))
            .Where(double.IsFinite).ToList();
        return perClass.Count == 0 ? double.NaN : perClass.Average();
    }

    /// <summary>
    /// Average precision, scikit-learn's <c>average_precision_score</c>: Σ (Rₖ − Rₖ₋₁)·Pₖ over the distinct scores from
    /// the highest down (tied scores are one threshold), no interpolation. NaN when there is no positive or a score is NaN
    /// (scikit-learn answers 0 with a warning for no positive, and counts that 0 in a macro mean; here such a class is left out of it).
    /// </summary>
    public static double AveragePrecision(IReadOnlyList<bool> positive, IReadOnlyList<double> score)
    {
        long positives = positive.Count(p => p);
        if (positives == 0 || score.Any(double.IsNaN)) return double.NaN;
        var order = Enumerable.Range(0, score.Count).OrderByDescending(i => score[i]).ToArray();
        double precisionSum = 0;
        long truePositives = 0, seen = 0, recalledBefore = 0;
        for (int k = 0; k < order.Length; k++)
        {
            seen++;
            if (positive[order[k]]) truePositives++;
            if (k + 1 < order.Length && score[order[k + 1]] == score[order[k]]) continue; // a tie: one threshold
            precisionSum += (double)(truePositives - recalledBefore) * truePositives / seen;
            recalledBefore = truePositives;
        }
        return precisionSum / positives;
    }

    /// <summary>
    /// The Matthews correlation coefficient of predicted against true classes, for any number of classes:
    /// (c·s − Σ pₖtₖ) / √((s² − Σ pₖ²)(s² − Σ tₖ²)) with c correct of s, pₖ and tₖ the predicted and true counts of class
    /// k. 0 where the denominator is 0 (one class predicted or present), as scikit-learn answers.
    /// </summary>
    public static double Matthews(IReadOnlyList<int> truth, IReadOnlyList<int> predicted, int classes)
    {
        var trueCounts = new double[classes];
        var predictedCounts = new double[classes];
        double correct = 0, s = truth.Count;
        for (int i = 0; i < truth.Count; i++)
        {
            trueCounts[truth[i]]++;
            predictedCounts[predicted[i]]++;
            if (truth[i] == predicted[i]) correct++;
        }
        double cross = 0, predictedSquares = 0, trueSquares = 0;
        for (int k = 0; k < classes; k++)
        {
            cross += predictedCounts[k] * trueCounts[k];
            predictedSquares += predictedCounts[k] * predictedCounts[k];
            trueSquares += trueCounts[k] * trueCounts[k];
        }
        double denominator = Math.Sqrt((s * s - predictedSquares) * (s * s - trueSquares));
        return denominator == 0 ? 0 : (correct * s - cross) / denominator;
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
