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
        Assert.Equal(16 + 100 + 16 + 24 + 16, width);
        Assert.Equal(16 + 100 + 16, height);

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
        int row = 16 * (1 + width * 3) + 1;
        Assert.Equal(new byte[] { 253, 231, 37 }, raw[(row + 16 * 3)..(row + 16 * 3 + 3)]);
        Assert.Equal(new byte[] { 68, 1, 84 }, raw[(row + 26 * 3)..(row + 26 * 3 + 3)]);
    }

    private static int BigEndian(byte[] b, int o) => (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
}
