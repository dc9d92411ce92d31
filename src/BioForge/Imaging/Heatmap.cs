using System.Collections.Frozen;
using BioForge.IO;

namespace BioForge.Imaging;

/// <summary>
/// Renders a square matrix of values in [0, 1] (a contact map) as a PNG heat map in viridis colours, with a framed
/// plot, residue-number ticks on both axes and a colour bar labelled 0, 0.5 and 1, so the picture reads on its own.
/// </summary>
public static class Heatmap
{
    // Anchor colours of matplotlib's viridis at 0, 0.25, 0.5, 0.75, 1 (perceptually uniform, colour-blind safe).
    private static readonly (double R, double G, double B)[] Viridis =
        [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)];

    private static readonly (byte R, byte G, byte B) Ink = (0, 0, 0);

    private const int TickLength = 5, BarWidth = 24, Gap = 24, Margin = 12;

    /// <summary>Where the parts of a rendered heat map lie, in pixels (for tests and callers that annotate).</summary>
    internal sealed record Layout(int Width, int Height, int PlotLeft, int PlotTop, int Cell, int Rows, int Columns, int BarLeft, int TickStep);

    public static void WritePng(string path, float[,] values, int targetSize = 720)
    {
        var (layout, rgb) = Render(values, targetSize);
        AtomicFile.Write(path, stream => Png.Write(stream, layout.Width, layout.Height, rgb));
    }

    internal static (Layout Layout, byte[] Rgb) Render(float[,] values, int targetSize = 720)
    {
        int rows = values.GetLength(0), cols = values.GetLength(1);
        int cell = Math.Max(1, targetSize / Math.Max(1, Math.Max(rows, cols)));
        int step = TickStep(Math.Max(rows, cols));
        int labelWidth = BitmapFont.Width(Math.Max(rows, cols).ToString(System.Globalization.CultureInfo.InvariantCulture));
        int left = Margin + labelWidth + 4 + TickLength, top = Margin;
        int plotWidth = cols * cell, plotHeight = rows * cell;
        int barLeft = left + plotWidth + Gap;
        int width = barLeft + BarWidth + TickLength + 4 + BitmapFont.Width("0.5") + Margin;
        int height = top + plotHeight + TickLength + 4 + BitmapFont.Height + Margin;
        var layout = new Layout(width, height, left, top, cell, rows, cols, barLeft, step);
        var rgb = new byte[width * height * 3];
        Array.Fill(rgb, (byte)255);

        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                Fill(rgb, width, left + c * cell, top + r * cell, cell, cell, Colour(values[r, c]));
        Frame(rgb, width, left, top, plotWidth, plotHeight);

        // Residue numbers are 1-based; a tick sits at the centre of its residue's cell.
        for (int residue = step; residue <= Math.Max(rows, cols); residue += step)
        {
            string label = residue.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (residue <= cols)
            {
                int x = left + (residue - 1) * cell + cell / 2;
                Fill(rgb, width, x, top + plotHeight, 1, TickLength, Ink);
                BitmapFont.Draw(rgb, width, label, x - BitmapFont.Width(label) / 2, top + plotHeight + TickLength + 3, Ink);
            }
            if (residue <= rows)
            {
                int y = top + (residue - 1) * cell + cell / 2;
                Fill(rgb, width, left - TickLength, y, TickLength, 1, Ink);
                BitmapFont.Draw(rgb, width, label, left - TickLength - 3 - BitmapFont.Width(label), y - BitmapFont.Height / 2, Ink);
            }
        }

        for (int y = 0; y < plotHeight; y++)
            Fill(rgb, width, barLeft, top + y, BarWidth, 1, Colour(1.0 - (double)y / Math.Max(1, plotHeight - 1))); // 1 at the top
        Frame(rgb, width, barLeft, top, BarWidth, plotHeight);
        foreach (var (value, label) in new[] { (1.0, "1"), (0.5, "0.5"), (0.0, "0") })
        {
            int y = top + (int)Math.Round((1 - value) * (plotHeight - 1));
            Fill(rgb, width, barLeft + BarWidth, y, TickLength, 1, Ink);
            BitmapFont.Draw(rgb, width, label, barLeft + BarWidth + TickLength + 3, Math.Clamp(y - BitmapFont.Height / 2, 0, height - BitmapFont.Height), Ink);
        }
        return (layout, rgb);
    }

    /// <summary>1, 2, 5, 10, 20, 50 … residues: the smallest step that gives at most ten ticks.</summary>
    internal static int TickStep(int length)
    {
        for (int scale = 1; ; scale *= 10)
            foreach (int m in (int[])[1, 2, 5])
                if (length / (m * scale) <= 10) return m * scale;
    }

    /// <summary>A value not known (NaN: a contact pair no window read) in light grey, apart from every colour of the scale.</summary>
    private static readonly (byte R, byte G, byte B) Unknown = (217, 217, 217);

    internal static (byte R, byte G, byte B) Colour(double value)
    {
        if (double.IsNaN(value)) return Unknown;
        double v = Math.Clamp(value, 0, 1) * (Viridis.Length - 1);
        int i = Math.Min((int)v, Viridis.Length - 2);
        double f = v - i;
        var (a, b) = (Viridis[i], Viridis[i + 1]);
        return ((byte)Math.Round(a.R + f * (b.R - a.R)), (byte)Math.Round(a.G + f * (b.G - a.G)), (byte)Math.Round(a.B + f * (b.B - a.B)));
    }

    /// <summary>A one-pixel line just outside the rectangle, so no cell is covered.</summary>
    private static void Frame(byte[] rgb, int width, int x, int y, int w, int h)
    {
        Fill(rgb, width, x - 1, y - 1, w + 2, 1, Ink);
        Fill(rgb, width, x - 1, y + h, w + 2, 1, Ink);
        Fill(rgb, width, x - 1, y - 1, 1, h + 2, Ink);
        Fill(rgb, width, x + w, y - 1, 1, h + 2, Ink);
    }

    internal static void Fill(byte[] rgb, int width, int x, int y, int w, int h, (byte R, byte G, byte B) c)
    {
        int height = rgb.Length / 3 / width;
        for (int yy = Math.Max(0, y); yy < Math.Min(height, y + h); yy++)
            for (int xx = Math.Max(0, x); xx < Math.Min(width, x + w); xx++)
            {
                int o = (yy * width + xx) * 3;
                rgb[o] = c.R;
                rgb[o + 1] = c.G;
                rgb[o + 2] = c.B;
            }
    }
}

/// <summary>A 5×7 pixel font for the digits and the decimal point of axis labels, drawn at twice its size.</summary>
internal static class BitmapFont
{
    private const int Scale = 2, Glyph = 5, Rows = 7, Spacing = 1;

    public const int Height = Rows * Scale;

    private static readonly FrozenDictionary<char, string[]> Glyphs = new Dictionary<char, string[]>()
    {
        ['0'] = [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
        ['1'] = ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
        ['2'] = [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
        ['3'] = ["####.", "....#", "....#", ".###.", "....#", "....#", "####."],
        ['4'] = ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
        ['5'] = ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
        ['6'] = ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."],
        ['7'] = ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
        ['8'] = [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],
        ['9'] = [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."],
        ['.'] = [".....", ".....", ".....", ".....", ".....", ".##..", ".##.."],
    }.ToFrozenDictionary();

    public static int Width(string text) => text.Length == 0 ? 0 : text.Length * (Glyph + Spacing) * Scale - Spacing * Scale;

    public static void Draw(byte[] rgb, int width, string text, int x, int y, (byte R, byte G, byte B) colour)
    {
        foreach (char ch in text)
        {
            var glyph = Glyphs[ch];
            for (int r = 0; r < Rows; r++)
                for (int c = 0; c < Glyph; c++)
                    if (glyph[r][c] == '#') Heatmap.Fill(rgb, width, x + c * Scale, y + r * Scale, Scale, Scale, colour);
            x += (Glyph + Spacing) * Scale;
        }
    }
}
