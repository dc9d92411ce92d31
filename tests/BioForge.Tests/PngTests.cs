using System.IO.Compression;
using BioForge.Imaging;

namespace BioForge.Tests;

public sealed class PngTests
{
    [Fact]
    public void HeatmapIsAValidPngOfTheExpectedSize()
    {
        var values = new float[10, 10];
        for (int i = 0; i < 10; i++) values[i, i] = 1;
        string path = Path.Combine(TestData.TempDirectory(), "h.png");
        Heatmap.WritePng(path, values, targetSize: 100);
        byte[] png = File.ReadAllBytes(path);
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        int width = BigEndian(png, 16), height = BigEndian(png, 20);
        var (layout, _) = Heatmap.Render(values, targetSize: 100);
        Assert.Equal((layout.Width, layout.Height), (width, height));
        int left = layout.PlotLeft, top = layout.PlotTop;

        // Walk the chunks, check every CRC, and inflate the image data.
        int offset = 8;
        var idat = new MemoryStream();
        while (offset < png.Length)
        {
            int length = BigEndian(png, offset);
            string type = System.Text.Encoding.ASCII.GetString(png, offset + 4, 4);
            uint crc = System.IO.Hashing.Crc32.HashToUInt32(png.AsSpan(offset + 4, 4 + length));
            Assert.Equal(crc, (uint)BigEndian(png, offset + 8 + length));
            if (type == "IDAT") idat.Write(png, offset + 8, length);
            offset += 12 + length;
        }
        idat.Position = 0;
        using var inflated = new MemoryStream();
        new ZLibStream(idat, CompressionMode.Decompress).CopyTo(inflated);
        byte[] raw = inflated.ToArray();
        Assert.Equal(height * (1 + width * 3), raw.Length);
        // The top-left cell is on the diagonal (1.0 → viridis yellow), its neighbour off it (0.0 → dark purple).
        int row = top * (1 + width * 3) + 1;
        Assert.Equal(new byte[] { 253, 231, 37 }, raw[(row + left * 3)..(row + left * 3 + 3)]);
        Assert.Equal(new byte[] { 68, 1, 84 }, raw[(row + (left + 10) * 3)..(row + (left + 10) * 3 + 3)]);
    }

    [Fact]
    public void HeatmapHasAFramedPlotResidueTicksAndALabelledColourScale()
    {
        var values = new float[30, 30];
        var (layout, rgb) = Heatmap.Render(values, targetSize: 300);
        bool Black(int x, int y) => rgb[(y * layout.Width + x) * 3] == 0 && rgb[(y * layout.Width + x) * 3 + 1] == 0 && rgb[(y * layout.Width + x) * 3 + 2] == 0;
        int plot = layout.Cell * 30;
        Assert.Equal(5, layout.TickStep); // 30 residues: ticks at 5, 10, … 30
        // A frame just outside the cells, on all four sides.
        Assert.True(Black(layout.PlotLeft - 1, layout.PlotTop + plot / 2) && Black(layout.PlotLeft + plot, layout.PlotTop + plot / 2));
        Assert.True(Black(layout.PlotLeft + plot / 2, layout.PlotTop - 1) && Black(layout.PlotLeft + plot / 2, layout.PlotTop + plot));
        // The tick of residue 5 below the plot and left of it, each with a number next to it.
        int x5 = layout.PlotLeft + 4 * layout.Cell + layout.Cell / 2, y5 = layout.PlotTop + 4 * layout.Cell + layout.Cell / 2;
        Assert.True(Black(x5, layout.PlotTop + plot + 2));
        Assert.True(Black(layout.PlotLeft - 3, y5));
        Assert.Contains(Enumerable.Range(layout.PlotTop + plot + 6, 20), y => Enumerable.Range(x5 - 6, 12).Any(x => Black(x, y)));
        Assert.Contains(Enumerable.Range(0, layout.PlotLeft - 8), x => Enumerable.Range(y5 - 7, 14).Any(y => Black(x, y)));
        // The colour bar: 1 (yellow) at the top, 0 (purple) at the bottom, framed, with labels to its right.
        Assert.Equal([253, 231, 37], rgb.AsSpan(((layout.PlotTop) * layout.Width + layout.BarLeft + 5) * 3, 3).ToArray());
        Assert.Equal([68, 1, 84], rgb.AsSpan(((layout.PlotTop + plot - 1) * layout.Width + layout.BarLeft + 5) * 3, 3).ToArray());
        Assert.Contains(Enumerable.Range(layout.BarLeft + 30, layout.Width - layout.BarLeft - 30), x => Enumerable.Range(layout.PlotTop, plot).Any(y => Black(x, y)));
        Assert.Equal(1, Heatmap.TickStep(8));
        Assert.Equal(100, Heatmap.TickStep(1000));
    }

    private static int BigEndian(byte[] b, int o) => (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
}

public sealed class SvgChartTests
{
    /// <summary>A missing value breaks a curve into runs; written as "NaN", it stopped the browser drawing the whole line.</summary>
    [Fact]
    public void MissingValuesBreakTheLineInsteadOfWritingNaN()
    {
        string line = BioForge.Imaging.SvgChart.Line([1, 2, 3, 4], [0.5, double.NaN, 0.9, 1.0], "t", "x", "y");
        Assert.DoesNotContain("NaN", line, StringComparison.Ordinal);
        Assert.Equal(1, System.Text.RegularExpressions.Regex.Count(line, "<polyline"));
        Assert.Equal(1, System.Text.RegularExpressions.Regex.Count(line, "<circle")); // the lone first point, a dot
        string lines = BioForge.Imaging.SvgChart.Lines([("a", [1.0, 2, 3], [double.NaN, 1, 2])], "t", "x", "y");
        Assert.DoesNotContain("NaN", lines, StringComparison.Ordinal);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(lines, "<polyline"));
        string scatter = BioForge.Imaging.SvgChart.Scatter([1, double.NaN, 3], [1, 2, 3], "t", "x", "y");
        Assert.DoesNotContain("NaN", scatter, StringComparison.Ordinal);
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Count(scatter, "<circle"));
    }

    /// <summary>
    /// A single point (a report with one hit) gets a range around it: padded by 1e-9, it had six ticks all reading
    /// "350.4", one drawn past the plot; at 1e12 the positions were NaN.
    /// </summary>
    [Theory]
    [InlineData(350.4, 2.1)]
    [InlineData(1e12, 0)]
    public void OnePointGetsDistinctTicksInsideThePlot(double x, double y)
    {
        string scatter = BioForge.Imaging.SvgChart.Scatter([x], [y], "t", "x", "y");
        Assert.DoesNotContain("NaN", scatter, StringComparison.Ordinal);
        var xTicks = System.Text.RegularExpressions.Regex.Matches(scatter, "<text x=\"([0-9.]+)\" y=\"[0-9.]+\" text-anchor=\"middle\">([^<]+)</text>")
            .Select(m => (X: double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), Label: m.Groups[2].Value))
            .Where(t => t.Label != "t" && t.Label != "x").ToList();
        Assert.InRange(xTicks.Count, 2, 12);
        Assert.Equal(xTicks.Count, xTicks.Select(t => t.Label).Distinct().Count());
        Assert.All(xTicks, t => Assert.InRange(t.X, 52, 406)); // the plot between its margins
    }
}
