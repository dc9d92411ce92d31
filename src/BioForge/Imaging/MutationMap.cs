using System.Text;
using static System.FormattableString;

namespace BioForge.Imaging;

/// <summary>
/// A deep mutational scan as a picture: one column per position of the wild type, one row per amino acid, each cell
/// the variant's score in a diverging scale (blue: worse than the wild type, red: better, white: neutral; the wild
/// type's own cells outlined). SVG, so every cell carries its variant and score as a tooltip and the letters stay sharp.
/// </summary>
public static class MutationMap
{
    /// <summary>Rows by side-chain kind (hydrophobic, aromatic, small and polar, charged), as DMS maps are usually drawn.</summary>
    public const string AminoAcids = "AVLIMFWYCGPSTNQHDEKR";

    private const int Cell = 10, Left = 30, Top = 44, Right = 110, Bottom = 36;

    /// <param name="scores">Score of each single substitution, by 1-based position and mutant letter; missing cells stay grey.</param>
    /// <param name="indexBase">The number the first residue carries in labels and tooltips, as in the variants' names.</param>
    public static string Svg(string wildType, IReadOnlyDictionary<(int Position, char Mutant), double> scores, string title, int indexBase = 1)
    {
        int columns = wildType.Length;
        double low = Math.Min(-1e-9, scores.Values.Where(double.IsFinite).DefaultIfEmpty(0).Min());
        double high = Math.Max(1e-9, scores.Values.Where(double.IsFinite).DefaultIfEmpty(0).Max());
        int width = Left + columns * Cell + Right, height = Top + AminoAcids.Length * Cell + Bottom;
        var svg = new StringBuilder();
        svg.Append(Invariant($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"10\">"));
        svg.Append(Invariant($"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/><text x=\"{Left}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{Escape(title)}</text>"));
        for (int row = 0; row < AminoAcids.Length; row++)
            svg.Append(Invariant($"<text x=\"{Left - 6}\" y=\"{Top + row * Cell + Cell - 2}\" text-anchor=\"end\">{AminoAcids[row]}</text>"));
        int step = Heatmap.TickStep(columns);
        for (int position = 1; position <= columns; position++)
        {
            double x = Left + (position - 1) * Cell;
            char wild = char.ToUpperInvariant(wildType[position - 1]);
            int label = position - 1 + indexBase;
            if (columns <= 200 || position % step == 0)
                svg.Append(Invariant($"<text x=\"{x + Cell / 2.0}\" y=\"{Top - 4}\" text-anchor=\"middle\" font-size=\"8\">{wild}</text>"));
            if (label % step == 0 && label > 0)
                svg.Append(Invariant($"<text x=\"{x + Cell / 2.0}\" y=\"{Top + AminoAcids.Length * Cell + 14}\" text-anchor=\"middle\">{label}</text>"));
            for (int row = 0; row < AminoAcids.Length; row++)
            {
                char mutant = AminoAcids[row];
                double y = Top + row * Cell;
                if (mutant == wild)
                {
                    svg.Append(Invariant($"<rect x=\"{x + 0.5}\" y=\"{y + 0.5}\" width=\"{Cell - 1}\" height=\"{Cell - 1}\" fill=\"white\" stroke=\"black\" stroke-width=\"1\"><title>{wild}{label} (wild type)</title></rect>"));
                    continue;
                }
                bool known = scores.TryGetValue((position, mutant), out double score) && double.IsFinite(score);
                string fill = known ? Colour(score, low, high) : "#d9d9d9";
                string tip = known ? Invariant($"{wild}{label}{mutant}: {score:F3}") : $"{wild}{label}{mutant}: not scored";
                svg.Append(Invariant($"<rect x=\"{x}\" y=\"{y}\" width=\"{Cell}\" height=\"{Cell}\" fill=\"{fill}\"><title>{tip}</title></rect>"));
            }
        }
        // The colour bar: the lowest score at the bottom, 0 in the middle, the highest at the top.
        int barLeft = Left + columns * Cell + 24, barHeight = AminoAcids.Length * Cell;
        for (int i = 0; i < barHeight; i++)
        {
            double t = 1 - (double)i / (barHeight - 1), value = t >= 0.5 ? (t - 0.5) * 2 * high : (0.5 - t) * 2 * low;
            svg.Append(Invariant($"<rect x=\"{barLeft}\" y=\"{Top + i}\" width=\"14\" height=\"1.2\" fill=\"{Colour(value, low, high)}\"/>"));
        }
        svg.Append(Invariant($"<rect x=\"{barLeft}\" y=\"{Top}\" width=\"14\" height=\"{barHeight}\" fill=\"none\" stroke=\"black\"/>"));
        foreach (var (value, y) in new[] { (high, Top), (0.0, Top + barHeight / 2), (low, Top + barHeight) })
            svg.Append(Invariant($"<text x=\"{barLeft + 18}\" y=\"{y + 3}\">{value:0.##}</text>"));
        svg.Append(Invariant($"<text x=\"{Left}\" y=\"{height - 6}\">{indexBase switch { 0 => "position (0-based)", 1 => "position", _ => $"position (the first residue is {indexBase})" }} · cell: score of the substitution (masked marginal, log p(mutant) − log p(wild type)); outlined: the wild type</text>"));
        return svg.Append("</svg>\n").ToString();
    }

    /// <summary>White at 0, towards blue (#2166ac) down to <paramref name="low"/> and red (#b2182b) up to <paramref name="high"/>.</summary>
    private static string Colour(double value, double low, double high)
    {
        var (target, t) = value < 0 ? ((33, 102, 172), Math.Clamp(value / low, 0, 1)) : ((178, 24, 43), Math.Clamp(value / high, 0, 1));
        int Mix(int to) => (int)Math.Round(255 + t * (to - 255));
        return Invariant($"#{Mix(target.Item1):x2}{Mix(target.Item2):x2}{Mix(target.Item3):x2}");
    }

    private static string Escape(string text) => System.Net.WebUtility.HtmlEncode(text);

}
