using System.Net;
using System.Text;
using static System.FormattableString;

namespace BioForge.Imaging;

/// <summary>
/// Small inline SVG charts for self-contained reports (no scripts, no fonts to fetch): histograms, scatter plots and
/// line plots with labelled axes and round-number ticks.
/// </summary>
internal static class SvgChart
{
    private const int Width = 420, Height = 280, Left = 52, Right = 14, Top = 28, Bottom = 44;

    public static string Histogram(IReadOnlyList<double> values, string title, string xLabel, int bins = 24)
    {
        var finite = values.Where(double.IsFinite).ToArray();
        if (finite.Length == 0) return Empty(title);
        double min = finite.Min(), max = finite.Max();
        if (max - min < 1e-9) max = min + 1;
        var counts = new int[bins];
        foreach (double v in finite) counts[Math.Min(bins - 1, (int)((v - min) / (max - min) * bins))]++;
        var svg = Start(title, xLabel, "molecules", min, max, 0, counts.Max());
        double barWidth = (double)(Width - Left - Right) / bins;
        for (int b = 0; b < bins; b++)
        {
            double h = (double)counts[b] / counts.Max() * (Height - Top - Bottom);
            svg.Append(Invariant($"<rect x=\"{Left + b * barWidth + 0.5:F1}\" y=\"{Height - Bottom - h:F1}\" width=\"{barWidth - 1:F1}\" height=\"{h:F1}\" fill=\"#4c78a8\"><title>{min + b * (max - min) / bins:G4} – {min + (b + 1) * (max - min) / bins:G4}: {counts[b]}</title></rect>"));
        }
        return svg.Append("</svg>").ToString();
    }

    public static string Scatter(IReadOnlyList<double> xs, IReadOnlyList<double> ys, string title, string xLabel, string yLabel, IReadOnlyList<string>? labels = null)
    {
        if (xs.Count == 0) return Empty(title);
        var (x0, x1) = Range(xs);
        var (y0, y1) = Range(ys);
        var svg = Start(title, xLabel, yLabel, x0, x1, y0, y1);
        for (int i = 0; i < xs.Count; i++)
            if (double.IsFinite(xs[i]) && double.IsFinite(ys[i]))
                svg.Append(Invariant($"<circle cx=\"{X(xs[i], x0, x1):F1}\" cy=\"{Y(ys[i], y0, y1):F1}\" r=\"3.5\" fill=\"#f58518\" fill-opacity=\"0.75\"><title>{Escape(labels?[i] ?? "")} ({xs[i]:G4}, {ys[i]:G4})</title></circle>"));
        return svg.Append("</svg>").ToString();
    }

    public static string Line(IReadOnlyList<double> xs, IReadOnlyList<double> ys, string title, string xLabel, string yLabel)
    {
        if (xs.Count == 0) return Empty(title);
        var (x0, x1) = Range(xs);
        var (y0, y1) = Range(ys);
        var svg = Start(title, xLabel, yLabel, x0, x1, Math.Min(0, y0), y1);
        foreach (string points in Runs(xs, ys, x => X(x, x0, x1), y => Y(y, Math.Min(0, y0), y1)))
            svg.Append(Polyline(points, "#54a24b", 2, ""));
        return svg.Append("</svg>").ToString();
    }

    /// <summary>A run of points as a line; a run of one point (between two missing values) as a dot, which a polyline would not draw.</summary>
    private static string Polyline(string points, string colour, double width, string title) => points.Contains(' ')
        ? Invariant($"<polyline points=\"{points}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"{width}\">{title}</polyline>")
        : Invariant($"<circle cx=\"{points.Split(',')[0]}\" cy=\"{points.Split(',')[1]}\" r=\"{width * 1.5}\" fill=\"{colour}\">{title}</circle>");

    /// <summary>
    /// The finite points of a curve as SVG coordinate lists, one per unbroken run: a missing value (NaN, as an older
    /// run's metrics give for a key it did not log) breaks the line, where a "NaN" coordinate stops a browser drawing it.
    /// </summary>
    private static IEnumerable<string> Runs(IReadOnlyList<double> xs, IReadOnlyList<double> ys, Func<double, double> toX, Func<double, double> toY)
    {
        var run = new List<string>();
        for (int i = 0; i <= xs.Count; i++)
        {
            if (i < xs.Count && double.IsFinite(xs[i]) && double.IsFinite(ys[i]))
            {
                run.Add(Invariant($"{toX(xs[i]):F1},{toY(ys[i]):F1}"));
                continue;
            }
            if (run.Count > 0) yield return string.Join(" ", run);
            run.Clear();
        }
    }

    /// <summary>Several curves on shared axes, each with its own colour and a legend entry (e.g. one per benchmark task).</summary>
    public static string Lines(IReadOnlyList<(string Label, IReadOnlyList<double> Xs, IReadOnlyList<double> Ys)> series, string title, string xLabel, string yLabel)
    {
        if (series.Count == 0 || series.All(s => s.Xs.Count == 0)) return Empty(title);
        var (x0, x1) = Range([.. series.SelectMany(s => s.Xs)]);
        var (y0, y1) = Range([.. series.SelectMany(s => s.Ys)]);
        y0 = Math.Min(0, y0);
        var svg = Start(title, xLabel, yLabel, x0, x1, y0, y1);
        for (int k = 0; k < series.Count; k++)
        {
            var (label, xs, ys) = series[k];
            string colour = Palette[k % Palette.Length];
            foreach (string points in Runs(xs, ys, x => X(x, x0, x1), y => Y(y, y0, y1)))
                svg.Append(Polyline(points, colour, 1.5, $"<title>{Escape(label)}</title>"));
        }
        // The legend sits to the right of the plot, so the chart grows wider with it.
        var legend = new StringBuilder();
        for (int k = 0; k < series.Count; k++)
            legend.Append(Invariant($"<rect x=\"{Width + 4}\" y=\"{Top + k * 13}\" width=\"10\" height=\"3\" fill=\"{Palette[k % Palette.Length]}\"/><text x=\"{Width + 18}\" y=\"{Top + k * 13 + 5}\" font-size=\"10\">{Escape(series[k].Label)}</text>"));
        int legendWidth = 190, height = Math.Max(Height, Top + series.Count * 13 + 8);
        svg.Replace(Invariant($"viewBox=\"0 0 {Width} {Height}\" width=\"{Width}\" height=\"{Height}\""),
            Invariant($"viewBox=\"0 0 {Width + legendWidth} {height}\" width=\"{Width + legendWidth}\" height=\"{height}\""));
        return svg.Append(legend).Append("</svg>").ToString();
    }

    private static readonly string[] Palette = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac"];

    private static (double, double) Range(IReadOnlyList<double> values)
    {
        var finite = values.Where(double.IsFinite).ToArray();
        double min = finite.Length == 0 ? 0 : finite.Min(), max = finite.Length == 0 ? 1 : finite.Max();
        double span = max - min, scale = Math.Max(Math.Abs(min), Math.Abs(max));
        // One value (a single hit) or values equal but for rounding: a range around them, not one of 1e-9 whose ticks all
        // print the same number (and whose positions lose their digits at large values).
        double pad = span > scale * 1e-9 ? span * 0.05 : Math.Max(scale * 0.05, 0.5);
        return (min - pad, max + pad);
    }

    private static double X(double v, double min, double max) => Left + (v - min) / (max - min) * (Width - Left - Right);

    private static double Y(double v, double min, double max) => Height - Bottom - (v - min) / (max - min) * (Height - Top - Bottom);

    private static StringBuilder Start(string title, string xLabel, string yLabel, double x0, double x1, double y0, double y1)
    {
        var svg = new StringBuilder(Invariant($"<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {Width} {Height}\" width=\"{Width}\" height=\"{Height}\" role=\"img\" aria-label=\"{Escape(title)}\" font-family=\"sans-serif\" font-size=\"11\">"));
        svg.Append(Invariant($"<text x=\"{Width / 2}\" y=\"16\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">{Escape(title)}</text>"));
        svg.Append(Invariant($"<line x1=\"{Left}\" y1=\"{Height - Bottom}\" x2=\"{Width - Right}\" y2=\"{Height - Bottom}\" stroke=\"#333\"/><line x1=\"{Left}\" y1=\"{Top}\" x2=\"{Left}\" y2=\"{Height - Bottom}\" stroke=\"#333\"/>"));
        foreach (double t in Ticks(x0, x1))
            svg.Append(Invariant($"<text x=\"{X(t, x0, x1):F1}\" y=\"{Height - Bottom + 14}\" text-anchor=\"middle\">{t:G4}</text>"));
        foreach (double t in Ticks(y0, y1))
            svg.Append(Invariant($"<text x=\"{Left - 4}\" y=\"{Y(t, y0, y1) + 4:F1}\" text-anchor=\"end\">{t:G4}</text><line x1=\"{Left}\" x2=\"{Width - Right}\" y1=\"{Y(t, y0, y1):F1}\" y2=\"{Y(t, y0, y1):F1}\" stroke=\"#eee\"/>"));
        svg.Append(Invariant($"<text x=\"{(Left + Width - Right) / 2}\" y=\"{Height - 8}\" text-anchor=\"middle\">{Escape(xLabel)}</text>"));
        svg.Append(Invariant($"<text transform=\"translate(13 {(Top + Height - Bottom) / 2}) rotate(-90)\" text-anchor=\"middle\">{Escape(yLabel)}</text>"));
        return svg;
    }

    /// <summary>About five round-number ticks between <paramref name="min"/> and <paramref name="max"/>.</summary>
    private static IEnumerable<double> Ticks(double min, double max)
    {
        double raw = (max - min) / 5, magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw))), step = magnitude * (raw / magnitude < 2 ? 2 : raw / magnitude < 5 ? 5 : 10);
        for (double t = Math.Ceiling(min / step) * step; t <= max + step * 1e-9; t += step) yield return Math.Abs(t) < step * 1e-9 ? 0 : Math.Round(t, 10);
    }

    private static string Empty(string title) => $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"40\"><text x=\"4\" y=\"24\" font-family=\"sans-serif\">{Escape(title)}: no data</text></svg>";

    private static string Escape(string text) => WebUtility.HtmlEncode(text);

}
