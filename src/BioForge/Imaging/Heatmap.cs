using BioForge.IO;

namespace BioForge.Imaging;

/// <summary>Renders a matrix of values in [0, 1] as a PNG heat map with a colour bar (viridis colours).</summary>
public static class Heatmap
{
    // Anchor colours of matplotlib's viridis at 0, 0.25, 0.5, 0.75, 1 (perceptually uniform, colour-blind safe).
    private static readonly (double R, double G, double B)[] Viridis =
        [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)];

    public static void WritePng(string path, float[,] values, int targetSize = 720)
    {
        int rows = values.GetLength(0), cols = values.GetLength(1);
        int cell = Math.Max(1, targetSize / Math.Max(rows, cols));
        const int margin = 16, gap = 16, barWidth = 24;
        int width = margin + cols * cell + gap + barWidth + margin;
        int height = margin + rows * cell + margin;
        var rgb = new byte[width * height * 3];
        Array.Fill(rgb, (byte)255);

        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                var colour = Colour(values[r, c]);
                for (int dy = 0; dy < cell; dy++)
                    for (int dx = 0; dx < cell; dx++)
                        Set(rgb, width, margin + c * cell + dx, margin + r * cell + dy, colour);
            }

        int barLeft = margin + cols * cell + gap, barHeight = rows * cell;
        for (int y = 0; y < barHeight; y++)
        {
            var colour = Colour(1.0 - (double)y / Math.Max(1, barHeight - 1)); // 1 at the top
            for (int x = 0; x < barWidth; x++) Set(rgb, width, barLeft + x, margin + y, colour);
        }
        AtomicFile.Write(path, stream => Png.Write(stream, width, height, rgb));
    }

    internal static (byte R, byte G, byte B) Colour(double value)
    {
        double v = double.IsNaN(value) ? 0 : Math.Clamp(value, 0, 1) * (Viridis.Length - 1);
        int i = Math.Min((int)v, Viridis.Length - 2);
        double f = v - i;
        var (a, b) = (Viridis[i], Viridis[i + 1]);
        return ((byte)Math.Round(a.R + f * (b.R - a.R)), (byte)Math.Round(a.G + f * (b.G - a.G)), (byte)Math.Round(a.B + f * (b.B - a.B)));
    }

    private static void Set(byte[] rgb, int width, int x, int y, (byte R, byte G, byte B) c)
    {
        int o = (y * width + x) * 3;
        rgb[o] = c.R;
        rgb[o + 1] = c.G;
        rgb[o + 2] = c.B;
    }
}
