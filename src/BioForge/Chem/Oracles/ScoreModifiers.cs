namespace BioForge.Chem.Oracles;

/// <summary>GuacaMol's score modifiers (<c>guacamol/score_modifier.py</c>) and the means that combine objectives.</summary>
internal static class ScoreModifiers
{
    /// <summary>exp(−½((x − μ)/σ)²).</summary>
    public static double Gaussian(double x, double mu, double sigma) => Math.Exp(-0.5 * Math.Pow((x - mu) / sigma, 2));

    /// <summary>1 up to μ, then falls as a Gaussian (GuacaMol's MinGaussianModifier: rewards x ≤ μ).</summary>
    public static double MinGaussian(double x, double mu, double sigma) => Gaussian(Math.Max(x, mu), mu, sigma);

    /// <summary>Rises as a Gaussian up to μ, then 1 (GuacaMol's MaxGaussianModifier: rewards x ≥ μ).</summary>
    public static double MaxGaussian(double x, double mu, double sigma) => Gaussian(Math.Min(x, mu), mu, sigma);

    /// <summary>The line through (lower, 0) and (upper, 1), clipped to [0, 1] (GuacaMol's ClippedScoreModifier).</summary>
    public static double Clipped(double x, double upper, double lower = 0)
    {
        // Slope and intercept as GuacaMol computes them, so the rounding is the same.
        double slope = 1 / (upper - lower);
        double intercept = 1 - slope * upper;
        return Math.Clamp(slope * x + intercept, 0, 1);
    }

    /// <summary>exp(mean(log xᵢ)) as scipy's gmean: 0 when any part is 0.</summary>
    public static double GeometricMean(ReadOnlySpan<double> values)
    {
        double sum = 0;
        foreach (double v in values) sum += Math.Log(v);
        return Math.Exp(sum / values.Length);
    }

    public static double ArithmeticMean(ReadOnlySpan<double> values)
    {
        double sum = 0;
        foreach (double v in values) sum += v;
        return sum / values.Length;
    }
}
