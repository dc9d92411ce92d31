using System.Text.Json;
using BioForge.IO;

namespace BioForge.Tests;

/// <summary>The commands end to end, in process: outputs on good input, one clear line and exit 2 on bad input.</summary>
public sealed class CliTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        _ = TestData.Cpu;
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Cli.Cli.Run([.. args, "--device", "cpu", "--threads", "2"], output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static string Fasta(string text)
    {
        string path = Path.Combine(TestData.TempDirectory(), "in.fasta");
        File.WriteAllText(path, text);
        return path;
    }

    private static void AssertFails((int Code, string Out, string Err) result, string expected, string? notCreated = null)
    {
        Assert.Equal(2, result.Code);
        Assert.StartsWith("error: ", result.Err);
        Assert.Contains(expected, result.Err);
        Assert.Single(result.Err.TrimEnd().Split('\n'));
        if (notCreated is not null)
        {
            Assert.False(File.Exists(notCreated), $"{notCreated} was left behind");
            Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(notCreated)!, "*.tmp"));
        }
    }

    [Fact]
    public void EmbedWritesCsvNpyAndSafetensors()
    {
        string input = Fasta(">x desc\nMKTAYIAKQR\n>y\nGSHMLEDPV\n>z\nMK\n");
        string dir = TestData.TempDirectory();

        var csv = Run("embed", "--model", TestData.EsmTiny, "--in", input, "--out", Path.Combine(dir, "e.csv"));
        Assert.Equal(0, csv.Code);
        Assert.Contains("embedded 3 sequences", csv.Out);
        var lines = File.ReadAllLines(Path.Combine(dir, "e.csv"));
        Assert.Equal(4, lines.Length);
        Assert.Equal(65, lines[0].Split(',').Length);
        Assert.StartsWith("y,", lines[2]);

        Assert.Equal(0, Run("embed", "--model", TestData.EsmTiny, "--in", input, "--out", Path.Combine(dir, "e.npy")).Code);
        byte[] npy = File.ReadAllBytes(Path.Combine(dir, "e.npy"));
        Assert.Equal(128 + 3 * 64 * 4, npy.Length);
        Assert.Contains("'shape': (3, 64)", System.Text.Encoding.ASCII.GetString(npy, 10, 118));
        float first = BitConverter.ToSingle(npy, 128);
        Assert.Equal(float.Parse(lines[1].Split(',')[1], System.Globalization.CultureInfo.InvariantCulture), first);

        Assert.Equal(0, Run("embed", "--model", TestData.EsmTiny, "--in", input, "--out", Path.Combine(dir, "e.safetensors")).Code);
        using (var pooled = SafetensorsFile.Open(Path.Combine(dir, "e.safetensors")))
        {
            Assert.Equal([3L, 64L], pooled["embeddings"].Shape);
            Assert.Equal(["x", "y", "z"], JsonSerializer.Deserialize<string[]>(pooled.Metadata["ids"])!);
        }

        Assert.Equal(0, Run("embed", "--model", TestData.EsmTiny, "--in", input, "--out", Path.Combine(dir, "r.safetensors"), "--pool", "none").Code);
        using var perResidue = SafetensorsFile.Open(Path.Combine(dir, "r.safetensors"));
        Assert.Equal([10L, 64L], perResidue["x"].Shape);
        Assert.Equal([2L, 64L], perResidue["z"].Shape);
    }

    [Fact]
    public void EmbedRejectsBadInputWithOneLine()
    {
        string dir = TestData.TempDirectory();
        string output = Path.Combine(dir, "e.csv");
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(""), "--out", output), "no FASTA records", output);
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(">a\nMK\n>b\nMKZ9\n"), "--out", output), "in.fasta:4: record 'b': invalid residue '9' at column 4", output);
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(">long\n" + new string('A', 1100) + "\n"), "--out", output), "record 'long' (line 1) has 1100 residues", output);
        AssertFails(Run("embed", "--model", "/no/such/dir", "--in", Fasta(">a\nMK\n"), "--out", output), "model directory /no/such/dir does not exist", output);
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(">a\nMK\n"), "--out", Path.Combine(dir, "e.txt")), "unknown output format");
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(">a\nMK\n"), "--out", Path.Combine(dir, "e.npy"), "--pool", "none"), "different length per record");

        string corrupt = TestData.TempDirectory();
        foreach (var f in Directory.GetFiles(TestData.EsmTiny)) File.Copy(f, Path.Combine(corrupt, Path.GetFileName(f)));
        File.WriteAllBytes(Path.Combine(corrupt, "model.safetensors"), [0x10, 0, 0, 0, 0, 0, 0, 0, (byte)'{']);
        AssertFails(Run("embed", "--model", corrupt, "--in", Fasta(">a\nMK\n"), "--out", output), "invalid safetensors file", output);
    }

    [Fact]
    public void FillMaskListsRankedResidues()
    {
        var result = Run("fill-mask", "--model", TestData.EsmTiny, "--seq", "MKT<mask>IAKQ<mask>", "--top-k", "3");
        Assert.Equal(0, result.Code);
        var rows = result.Out.Trim().Split('\n');
        Assert.Equal("position\trank\ttoken\tprobability", rows[0]);
        Assert.Equal(7, rows.Length);
        Assert.StartsWith("4\t1\t", rows[1]);
        Assert.StartsWith("9\t3\t", rows[6]);
        AssertFails(Run("fill-mask", "--model", TestData.EsmTiny, "--seq", "MKTIAK"), "no <mask> token");
    }

    [Fact]
    public void ContactsWritesMatrixAndPicture()
    {
        string dir = TestData.TempDirectory();
        string csv = Path.Combine(dir, "map.csv"), png = Path.Combine(dir, "map.png");
        var result = Run("contacts", "--model", TestData.EsmTiny, "--seq", "MKTAYIAKQRQISFVKSHFSRQ", "--out", csv, "--png", png);
        Assert.Equal(0, result.Code);
        var lines = File.ReadAllLines(csv);
        Assert.Equal(23, lines.Length);
        Assert.StartsWith("residue,M1,K2,T3", lines[0]);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(png)[..4]);
        AssertFails(Run("contacts", "--model", TestData.EsmTiny, "--seq", "MK1", "--out", csv), "invalid residue '1' at position 3");
    }

    [Fact]
    public void ScoreVariantsReportsSpearmanWhenMeasuredScoresExist()
    {
        string dir = TestData.TempDirectory();
        string table = Path.Combine(dir, "dms.csv");
        File.WriteAllText(table, "mutant,DMS_score\nK2R,0.5\nA4G,-1.0\nK2R:A4G,-0.2\n\"Y5F\",0.1\n");
        string output = Path.Combine(dir, "scores.csv");
        var result = Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--in", table, "--out", output);
        Assert.Equal(0, result.Code);
        Assert.Contains("scored 4 variants at 3 sites", result.Out);
        Assert.Contains("Spearman rho vs DMS_score:", result.Out);
        Assert.Equal("mutant,esm_score,DMS_score", File.ReadLines(output).First());

        var inline = Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--mutations", "K2R,A4G:Y5F", "--out", output);
        Assert.Equal(0, inline.Code);
        Assert.Equal(3, File.ReadAllLines(output).Length);

        string untouched = Path.Combine(dir, "bad.csv");
        AssertFails(Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--mutations", "A2G", "--out", untouched), "the wild type has K at position 2, not A", untouched);
        File.WriteAllText(table, "mutant,DMS_score\nK2R,0.5\nT3A,abc\n");
        AssertFails(Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--in", table, "--out", untouched), "dms.csv:3: DMS_score 'abc' is not a number", untouched);
        AssertFails(Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--out", untouched), "exactly one of --mutations or --in");
    }

    [Fact]
    public void UsageErrorsExitNonZero()
    {
        Assert.NotEqual(0, Run("embed", "--in", "x.fasta").Code);
        Assert.NotEqual(0, Run("no-such-command").Code);
        AssertFails(Run("bench", "embed", "--length", "2000"), "at most 1024 residues");
        var output = new StringWriter();
        Assert.Equal(0, Cli.Cli.Run(["env"], output, new StringWriter()));
        Assert.Contains("libtorch:", output.ToString());
    }
}
