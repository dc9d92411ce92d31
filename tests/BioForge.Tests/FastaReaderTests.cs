using System.IO.Compression;
using System.Text;
using BioForge.IO;

namespace BioForge.Tests;

public sealed class FastaReaderTests
{
    private static string Write(string text, bool gzip = false)
    {
        string path = Path.Combine(TestData.TempDirectory(), gzip ? "x.fasta.gz" : "x.fasta");
        if (!gzip)
        {
            File.WriteAllText(path, text);
            return path;
        }
        using var stream = File.Create(path);
        using var gz = new GZipStream(stream, CompressionLevel.Fastest);
        gz.Write(Encoding.UTF8.GetBytes(text));
        return path;
    }

    [Theory]
    [InlineData(false, "\n")]
    [InlineData(true, "\n")]
    [InlineData(false, "\r\n")]
    public void ReadsMultiLineRecords(bool gzip, string newline)
    {
        string text = string.Join(newline, ">sp|P1| first protein", "MKTAY", "iakqr", "", ">second", "GSHM*", "");
        string path = Write(text, gzip);
        var records = FastaReader.Read(path).ToList();
        Assert.Equal(2, records.Count);
        Assert.Equal(new FastaRecord("sp|P1|", "first protein", "MKTAYiakqr", 1) { Where = $"{path}:1" }, records[0]);
        Assert.Equal(new FastaRecord("second", "", "GSHM", 5) { Where = $"{path}:5" }, records[1]);
    }

    /// <summary>
    /// Gzip files are checked as gzip checks them: one cut short (a download that stopped) or damaged is an error
    /// naming the file, never a shorter corpus; several members one after another (bgzip, <c>cat a.gz b.gz</c>) read
    /// as one file.
    /// </summary>
    [Fact]
    public void TruncatedOrDamagedGzipIsAnErrorAndMembersFollowOneAnother()
    {
        var random = new Random(3);
        string text = string.Concat(Enumerable.Range(0, 40).Select(i => $">r{i}\n{new string([.. Enumerable.Range(0, 300).Select(_ => "ACDEFGHIKLMNPQRSTVWY"[random.Next(20)])])}\n"));
        byte[] whole = File.ReadAllBytes(Write(text, gzip: true));

        string path = Path.Combine(TestData.TempDirectory(), "cut.fasta.gz");
        File.WriteAllBytes(path, whole[..(whole.Length / 2)]);
        Assert.Equal($"{path}: the gzip data ends early (the file is truncated; download or copy it again)",
            Assert.Throws<BioForgeException>(() => FastaReader.Read(path).ToList()).Message);
        File.WriteAllBytes(path, whole[..^4]); // all of the data, the length in the trailer missing
        Assert.Throws<BioForgeException>(() => FastaReader.Read(path).ToList());

        byte[] damaged = [.. whole];
        damaged[whole.Length / 2] ^= 0xff;
        File.WriteAllBytes(path, damaged);
        Assert.StartsWith($"{path}: corrupt gzip data in member 1 (", Assert.Throws<BioForgeException>(() => FastaReader.Read(path).ToList()).Message);

        int middle = text.IndexOf(">r20", StringComparison.Ordinal);
        File.WriteAllBytes(path, [.. File.ReadAllBytes(Write(text[..middle], gzip: true)), .. File.ReadAllBytes(Write(text[middle..], gzip: true))]);
        Assert.Equal(FastaReader.Read(Write(text)).Select(r => r.Sequence), FastaReader.Read(path).Select(r => r.Sequence));

        // Zero padding after the last member (tape blocks) reads as gunzip reads it; other bytes there are damage.
        File.WriteAllBytes(path, [.. whole, .. new byte[100_000]]);
        Assert.Equal(40, FastaReader.Read(path).Count());
        File.WriteAllBytes(path, [.. whole, .. new byte[70_000], 7]);
        Assert.Equal($"{path}: data after gzip member 1 is neither another member nor zero padding",
            Assert.Throws<BioForgeException>(() => FastaReader.Read(path).ToList()).Message);
    }

    /// <summary>
    /// A '*' is a terminal stop codon only at the end of the record: one ending an inner line (a stop where the line
    /// wraps) is as invalid as one inside a line, not silently dropped with the two halves joined.
    /// </summary>
    /// <summary>
    /// A Latin-1 byte (a spreadsheet export's 'é') is an error at its line and column, not a name silently holding
    /// U+FFFD; a U+FFFD the UTF-8 text itself holds is read as written.
    /// </summary>
    [Fact]
    public void BytesThatAreNotUtf8AreAnErrorAtTheirLineAndColumn()
    {
        string path = Write("");
        File.WriteAllBytes(path, [.. Encoding.UTF8.GetBytes(">first\nMKT\n>prot"), 0xE9, .. Encoding.UTF8.GetBytes("ine\nMKV\n")]);
        var e = Assert.Throws<BioForgeException>(() => FastaReader.Read(path).ToList());
        Assert.Equal($"{path}:3:6: not UTF-8 text (a byte UTF-8 does not allow: a binary file, or a spreadsheet's Latin-1 export? iconv -f latin1 -t utf-8 converts one)", e.Message);
        File.WriteAllText(path, ">prot\uFFFDine\nMKV\n");
        Assert.Equal("prot\uFFFDine", Assert.Single(FastaReader.Read(path)).Id);
    }

    [Fact]
    public void AStopCodonIsDroppedOnlyAtTheEndOfItsRecord()
    {
        var records = FastaReader.Read(Write(">a\nMKTAY\nIAK*\n\n>b\nGS*\n")).ToList();
        Assert.Equal(["MKTAYIAK", "GS"], records.Select(r => r.Sequence));
        var error = Assert.Throws<BioForgeException>(() => FastaReader.Read(Write(">x\nMKTAY*\nIAKQR\n")).ToList());
        Assert.EndsWith(":2: record 'x': invalid residue '*' at column 6", error.Message);
        // Read without an alphabet, the '*' stays where it was.
        Assert.Equal("MKTAY*IAKQR", Assert.Single(FastaReader.Read(Write(">x\nMKTAY*\nIAKQR\n"), alphabet: null)).Sequence);
    }

    [Fact]
    public void AFileWhoseLastLineHasNoLineBreakIsReadToTheEnd()
    {
        // The reader asked for a line after the unterminated last one and failed with ArgumentOutOfRangeException.
        Assert.Equal("MKTAY", Assert.Single(FastaReader.Read(Write(">a\nMKTAY"))).Sequence);
        Assert.Equal("MK", FastaReader.Read(Write(">a\nMKT\n>b\nMK", gzip: true)).Last().Sequence);
        string smi = Path.Combine(TestData.TempDirectory(), "x.smi");
        File.WriteAllText(smi, "CCO ethanol\nCCN");
        Assert.Equal(["CCO", "CCN"], BioForge.Chem.MoleculeSource.Read(smi).Select(r => r.Text));
    }

    [Fact]
    public void ASmilesFilesHeaderLineIsSkippedAndAColumnIsNamedInAnyCase()
    {
        string smi = Path.Combine(TestData.TempDirectory(), "h.smi");
        File.WriteAllText(smi, "SMILES Name\nCCO ethanol\n");
        var record = Assert.Single(BioForge.Chem.MoleculeSource.Read(smi));
        Assert.Equal(("CCO", 2), (record.Text, record.Line));
        string csv = Path.Combine(TestData.TempDirectory(), "t.csv");
        File.WriteAllText(csv, "id,structure\nx,CCN\n");
        Assert.Equal("CCN", Assert.Single(BioForge.Chem.MoleculeSource.Read(csv, "Structure")).Text);
    }

    [Fact]
    public void StreamsWithoutReadingAhead()
    {
        // The second record is broken; the first must still come out before the error.
        var records = FastaReader.Read(Write(">a\nMK\n>b\nM1K\n")).GetEnumerator();
        Assert.True(records.MoveNext());
        Assert.Equal("a", records.Current.Id);
        Assert.Throws<BioForgeException>(() => records.MoveNext());
    }

    [Fact]
    public void ReportsInvalidResidueWithRecordLineAndColumn()
    {
        string path = Write(">ok\nMKT\n>bad one\nMKT\nAA1A\n");
        var e = Assert.Throws<BioForgeException>(() => FastaReader.Read(path).ToList());
        Assert.Equal($"{path}:5: record 'bad': invalid residue '1' at column 3", e.Message);
        // Columns of an indented line are counted as written, not in the trimmed text.
        path = Write(">a\n    MK1A\n");
        e = Assert.Throws<BioForgeException>(() => FastaReader.Read(path).ToList());
        Assert.Equal($"{path}:2: record 'a': invalid residue '1' at column 7", e.Message);
    }

    [Fact]
    public void ReportsEmptyRecordsAndEmptyFiles()
    {
        string path = Write(">a\nMK\n>empty\n>c\nMK\n");
        Assert.Equal($"{path}:3: record 'empty' has an empty sequence", Assert.Throws<BioForgeException>(() => FastaReader.Read(path).ToList()).Message);
        Assert.Contains("no FASTA records", Assert.Throws<BioForgeException>(() => FastaReader.Read(Write("")).ToList()).Message);
        Assert.Contains("before the first '>'", Assert.Throws<BioForgeException>(() => FastaReader.Read(Write("MKT\n>a\nMK\n")).ToList()).Message);
        Assert.Contains("not found", Assert.Throws<BioForgeException>(() => FastaReader.Read("/nonexistent.fasta")).Message);
    }

    [Fact]
    public void AGzipBombFailsAtTheLengthLimitNamingFileAndRecord()
    {
        // A record far longer than any protein, compressed ~1000:1; the reader must stop at the limit, not at the end.
        string path = Path.Combine(TestData.TempDirectory(), "bomb.fasta.gz");
        using (var gz = new GZipStream(File.Create(path), CompressionLevel.Fastest))
        {
            gz.Write(">ok\nMKT\n>bomb\n"u8);
            var chunk = new byte[1 << 20];
            Array.Fill(chunk, (byte)'A');
            for (int i = 0; i < 8; i++) gz.Write(chunk); // one 8 MB line
        }
        var e = Assert.Throws<BioForgeException>(() => FastaReader.Read(path).ToList());
        Assert.Equal($"{path}:4: record 'bomb' is longer than {FastaReader.MaxSequenceLength:N0} residues", e.Message);

        string lines = Write(">ok\nMKT\n>long\n" + string.Concat(Enumerable.Repeat(new string('A', 60) + "\n", FastaReader.MaxSequenceLength / 60 + 2)));
        Assert.Equal($"{lines}:{3 + FastaReader.MaxSequenceLength / 60 + 1}: record 'long' is longer than {FastaReader.MaxSequenceLength:N0} residues", Assert.Throws<BioForgeException>(() => FastaReader.Read(lines).ToList()).Message);
        Assert.Single(FastaReader.Read(Write(">max\n" + new string('A', FastaReader.MaxSequenceLength) + "\n")));
    }
}
