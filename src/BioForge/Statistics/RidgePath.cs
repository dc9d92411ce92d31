using BioForge.Runtime;
using static TorchSharp.torch;

namespace BioForge.Statistics;

/// <summary>
/// Ridge regression for every penalty from one decomposition: with the centred features X and XᵀX = V diag(e) Vᵀ,
/// w(λ) = V diag(1 / (e + λ)) Vᵀ Xᵀ(y − ȳ) and the unpenalized intercept b = ȳ − x̄ · w. Cross-validating a grid of
/// penalties costs one decomposition per fold instead of one solve per fold and penalty. With fewer rows than columns
/// the decomposition is the thin SVD X = U S Vᵀ (e = s², Vᵀ Xᵀ y = S Uᵀ y: cheap for a few hundred molecules); with more,
/// the d × d eigendecomposition of XᵀX, so the decomposition's memory does not grow with the rows (the features are held
/// twice, as given and centred).
/// </summary>
internal sealed class RidgePath
{
    private readonly int columns, rank;
    private readonly double[] eigenvalues, projected, basis, featureMean; // e, Vᵀ Xᵀ(y − ȳ), V [d, k] row-major, x̄
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
        var centred = x - mean;
        var target = y.Add(-labelMean);
        Tensor values, vectors, along;
        if (rows < columns)
        {
            var (u, singular, vh) = linalg.svd(centred, fullMatrices: false);
            (values, vectors, along) = (singular.Squared(), vh.T, singular * u.T.matmul(target));
        }
        else
        {
            (values, vectors) = linalg.eigh(centred.T.matmul(centred));
            along = vectors.T.matmul(centred.T.matmul(target));
        }
        rank = (int)values.shape[0];
        // XᵀX is positive semi-definite: a rounding error's negative eigenvalue is a zero one.
        eigenvalues = [.. values.data<double>().ToArray().Select(e => Math.Max(0, e))];
        projected = along.data<double>().ToArray();
        basis = vectors.contiguous().data<double>().ToArray();
        featureMean = mean.data<double>().ToArray();
    }

    public (double[] Weights, double Bias) Solve(double lambda)
    {
        if (!(lambda > 0)) throw new ArgumentOutOfRangeException(nameof(lambda), lambda, "the penalty must be positive");
        var coefficients = eigenvalues.Select((e, k) => projected[k] / (e + lambda)).ToArray();
        var weights = new double[columns];
        for (int j = 0; j < columns; j++)
        {
            double sum = 0;
            for (int k = 0; k < rank; k++) sum += basis[(long)j * rank + k] * coefficients[k];
            weights[j] = sum;
        }
        double bias = labelMean;
        for (int j = 0; j < columns; j++) bias -= featureMean[j] * weights[j];
        return (weights, bias);
    }
}
