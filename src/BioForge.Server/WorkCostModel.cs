using System.Collections.Concurrent;

namespace BioForge.Server;

/// <summary>
/// Predicted seconds of each kind of device work as a fixed part plus a part per unit, fitted by least squares over its
/// recent pieces (older ones weigh less, so the fit follows a change of load). One rate per unit alone priced a large
/// request by the small ones before it: a fill-mask of 20 residues costs mostly its fixed part, so after a run of
/// them a 1,000-residue request was predicted about ten times its time and other requests were shed with 503.
/// Only the device thread adds pieces; request threads read the fitted line, which is replaced whole.
/// </summary>
internal sealed class WorkCostModel
{
    /// <summary>Weight an older piece keeps at each new one: about the last five pieces decide.</summary>
    private const double Forgetting = 0.8;

    /// <summary>The spread of sizes (standard deviation over mean) below which the two parts are not told apart.</summary>
    private const double MinSpread = 0.2;

    private readonly ConcurrentDictionary<string, Line> lines = new();
    private readonly Dictionary<string, Sums> sums = new();

    /// <summary>Whether any piece of <paramref name="kind"/> has been measured.</summary>
    public bool Knows(string kind) => lines.ContainsKey(kind);

    /// <summary>Predicted time of a piece; zero for no units and for a kind not measured yet.</summary>
    public TimeSpan Predict(WorkSize size) =>
        size.Units > 0 && lines.TryGetValue(size.Kind, out var line) ? TimeSpan.FromSeconds(line.Fixed + line.PerUnit * size.Units) : TimeSpan.Zero;

    /// <summary>Folds a measured piece into its kind's fit (device thread only).</summary>
    public void Add(WorkSize size, TimeSpan elapsed)
    {
        if (size.Units <= 0) return;
        if (!sums.TryGetValue(size.Kind, out var s)) sums[size.Kind] = s = new Sums();
        s.Add(size.Units, elapsed.TotalSeconds);
        lines[size.Kind] = s.Fit();
    }

    private readonly record struct Line(double Fixed, double PerUnit);

    /// <summary>Exponentially weighted sums of units x and seconds y.</summary>
    private sealed class Sums
    {
        private double weight, x, y, xx, xy;

        public void Add(double units, double seconds)
        {
            weight = Forgetting * weight + 1;
            x = Forgetting * x + units;
            y = Forgetting * y + seconds;
            xx = Forgetting * xx + units * units;
            xy = Forgetting * xy + units * seconds;
        }

        public Line Fit()
        {
            double meanX = x / weight, meanY = y / weight;
            double varianceX = xx / weight - meanX * meanX;
            // Pieces of nearly one size cannot separate the two parts (timing noise tilts the line any way, and a flat one
            // priced a piece ten times larger at a quarter of its time); nor can a line that comes out below zero. The time
            // is then taken as proportional to the units, which prices larger pieces high rather than low: a 503 too
            // early, never a 504.
            if (varianceX >= MinSpread * MinSpread * meanX * meanX)
            {
                double perUnit = (xy / weight - meanX * meanY) / varianceX;
                double fixedPart = meanY - perUnit * meanX;
                if (perUnit >= 0 && fixedPart >= 0) return new Line(fixedPart, perUnit);
            }
            return new Line(0, meanY / meanX);
        }
    }
}
