using static TorchSharp.torch;

namespace BioForge.Statistics;

/// <summary>
/// Ridge regression for every penalty from one decomposition: with the centred features X = U S Vᵀ (thin SVD),
/// w(λ) = V diag(s / (s² + λ)) Uᵀ (y − ȳ) and the unpenalized intercept b = ȳ − x̄ · w. Cross-validating a grid of
/// penalties costs one SVD per fold instead of one d × d solve per fold and penalty.
/// </summary>
internal sealed class RidgePath
{
    private readonly int columns;
    private readonly double[] singular, projected, basis, featureMean; // s, Uᵀ(y − ȳ), Vᵀ [k, d] row-major, x̄
    private readonly double labelMean;

    /// <param name="features">Rows × <paramref name="columns"/>, row-major.</param>
    public RidgePath(double[] features, int columns, double[] labels)
    {
        int rows = labels.Length;
        if (rows == 0 || features.Length != (long)rows * columns) throw new ArgumentException($"{features.Length} feature values for {rows} rows × {columns} columns");
        this.columns = columns;
        using var scope = NewDisposeScope();
        var x = tensor(features, [rows, columns], ScalarType.Float64);
        var y = tensor(labels, ScalarType.Float64);
        var mean = x.mean([0L]);
        labelMean = y.mean().item<double>();
        var (u, s, vh) = linalg.svd(x - mean, fullMatrices: false);
        singular = s.data<double>().ToArray();
        projected = u.T.matmul(y - labelMean).data<double>().ToArray();
        basis = vh.contiguous().data<double>().ToArray();
        featureMean = mean.data<double>().ToArray();
    }

    public (double[] Weights, double Bias) Solve(double lambda)
    {
        if (!(lambda > 0)) throw new ArgumentOutOfRangeException(nameof(lambda), lambda, "the penalty must be positive");
        var weights = new double[columns];
        for (int k = 0; k < singular.Length; k++)
        {
            double coefficient = singular[k] / (singular[k] * singular[k] + lambda) * projected[k];
            for (int j = 0; j < columns; j++) weights[j] += basis[(long)k * columns + j] * coefficient;
        }
        double bias = labelMean;
        for (int j = 0; j < columns; j++) bias -= featureMean[j] * weights[j];
        return (weights, bias);
    }
}
