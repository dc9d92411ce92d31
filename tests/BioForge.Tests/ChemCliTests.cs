using BioForge.Chem;

namespace BioForge.Tests;

public sealed class ChemCliTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Cli.Cli.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static string Write(string name, string text)
    {
        string path = Path.Combine(TestData.TempDirectory(), name);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>The rules by the names --allow-alert takes (RDKit's catalogues in Python: 105 Brenk rules; acrylanilide matches these three).</summary>
    [Fact]
    public void AlertsListsTheRulesAndThoseAMoleculeMatches()
    {
        var (code, text, error) = Run("chem", "alerts", "--catalog", "brenk");
        Assert.True(code == 0, error);
        var rules = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(105, rules.Length);
        Assert.Contains("BRENK:Michael_acceptor_1", rules);
        (code, text, error) = Run("chem", "alerts");
        Assert.True(code == 0, error);
        Assert.Equal(585, text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length); // PAINS and Brenk, the rules screening knows
        (code, text, error) = Run("chem", "alerts", "--smiles", "C=CC(=O)Nc1ccccc1", "--catalog", "all");
        Assert.True(code == 0, error);
        Assert.Equal(["BRENK:Michael_acceptor_1", "NIH:acrylate", "NIH:halo_acrylate"], text.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(2, Run("chem", "alerts", "--catalog", "zinc").Code);
    }

    /// <summary>Ethanol as an SDF record with an empty title line.</summary>
    private const string Ethanol = "\n     RDKit          2D\n\n  3  2  0  0  0  0  0  0  0  0999 V2000\n    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
        + "    1.2990    0.7500    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n    2.5981   -0.0000    0.0000 O   0  0  0  0  0  0  0  0  0  0  0  0\n  1  2  1  0\n  2  3  1  0\nM  END\n";

    /// <summary>Molecules are named by the column or SDF data item asked for; an SDF record without a title takes a usual name item.</summary>
    [Fact]
    public void MoleculesAreNamedByTheIdColumnOrDataItem()
    {
        const string ethanol = Ethanol;
        string sdf = Write("lib.sdf", ethanol + ">  <Catalog_ID>\nCAT-1\n\n>  <zinc_id>\nZINC42\n\n$$$$\n" + "named\n" + ethanol[1..] + ">  <Catalog_ID>\nCAT-2\n\n$$$$\n");
        string Name(MoleculeRecord r) => r.Properties.GetValueOrDefault(MoleculeSource.NameProperty, r.Label);
        Assert.Equal(["ZINC42", "named"], MoleculeSource.Read(sdf).Select(Name)); // no title: the zinc_id item; else the title
        Assert.Equal(["CAT-1", "CAT-2"], MoleculeSource.Read(sdf, idColumn: "catalog_id").Select(Name));
        var e = Assert.Throws<BioForgeException>(() => MoleculeSource.Read(sdf, idColumn: "zinc_id").ToList());
        Assert.EndsWith("lib.sdf:18: the record has no 'zinc_id' data item", e.Message);

        string csv = Write("lib.csv", "smiles,name,vendor_code\nCCO,ethanol,V-7\n");
        Assert.Equal(["V-7"], MoleculeSource.Read(csv, idColumn: "Vendor_Code").Select(Name));
        Assert.Contains("no 'catalog' column in the header (smiles, name, vendor_code)", Assert.Throws<BioForgeException>(() => MoleculeSource.Read(csv, idColumn: "catalog").ToList()).Message);
        Assert.Contains("a SMILES file has no columns", Assert.Throws<BioForgeException>(() => MoleculeSource.Read(Write("lib.smi", "CCO x\n"), idColumn: "id").ToList()).Message);
        // So is a SMILES column, which was ignored in silence.
        Assert.Contains("a SMILES column (mol) is for CSV/TSV tables; this file holds one SMILES per line",
            Assert.Throws<BioForgeException>(() => MoleculeSource.Read(Write("lib.smi", "CCO x\n"), smilesColumn: "mol").ToList()).Message);
    }

    [Fact]
    public void PropsKeepsOneRowPerInputInOrderWithReasons()
    {
        string input = Write("in.smi", "CCO ethanol\nC1CC\n\nc1ccccc1O\n[Na+].[Cl-]\n");
        string output = Path.Combine(TestData.TempDirectory(), "props.csv");
        var result = Run("chem", "props", "--in", input, "--out", output, "--threads", "2");
        Assert.True(result.Code == 0, result.Err);
        Assert.Contains("4 molecules (3 valid, 1 invalid)", result.Out);
        var lines = File.ReadAllLines(output);
        Assert.Equal("input,valid,canonical,molwt,logp,tpsa,hbd,hba,rotb,qed,sa,pains,error,name", lines[0]);
        Assert.Equal(5, lines.Length);
        Assert.StartsWith("CCO,1,CCO,46.069,", lines[1]);
        Assert.EndsWith(",ethanol", lines[1]); // the .smi name column is kept
        Assert.EndsWith(",", lines[3]);
        Assert.StartsWith("C1CC,0,,", lines[2]);
        Assert.Contains("unclosed ring", lines[2]);
        Assert.StartsWith("c1ccccc1O,1,Oc1ccccc1,", lines[3]);
        Assert.StartsWith("[Na+].[Cl-],1,[Cl-].[Na+],", lines[4]);
    }

    [Fact]
    public void PropsReadsCsvColumnsAndSdfRecords()
    {
        string csv = Write("in.csv", "id,SMILES,label\n1,CCN,a\n2,\"C(=O)O\",b\n");
        string output = Path.Combine(TestData.TempDirectory(), "props.csv");
        Assert.Equal(0, Run("chem", "props", "--in", csv, "--out", output).Code);
        Assert.Equal(3, File.ReadAllLines(output).Length);
        var missing = Run("chem", "props", "--in", csv, "--out", output, "--smiles-column", "smi");
        Assert.Equal(2, missing.Code);
        Assert.Contains("no 'smi' column", missing.Err);

        Assert.Equal(0, Run("chem", "props", "--in", TestData.Path("chem", "small.sdf"), "--out", output).Code);
        var rows = File.ReadAllLines(output);
        Assert.Equal(5, rows.Length);
        Assert.StartsWith("aspirin,1,CC(=O)Oc1ccccc1C(=O)O,", rows[1]);
        Assert.StartsWith("pentavalent,0,", rows[4]);
    }

    [Fact]
    public void SimilarAndDepictWork()
    {
        string library = Write("lib.smi", "CCO\nC1CC\nCCCO\nc1ccccc1O\nOC(=O)c1ccccc1O salicylic acid\nCC(=O)Oc1ccccc1C(=O)O aspirin\n");
        string csv = Path.Combine(TestData.TempDirectory(), "hits.csv");
        var result = Run("chem", "similar", "--index", library, "--query", "CC(=O)Oc1ccccc1C(=O)O", "--top", "2", "--out", csv);
        Assert.Equal(0, result.Code);
        var lines = result.Out.Trim().Split('\n');
        Assert.Equal("rank\tsimilarity\tline\tid\tsmiles", lines[0]);
        Assert.Equal("1\t1.0000\t6\taspirin\tCC(=O)Oc1ccccc1C(=O)O", lines[1]); // line 6 of the file, although line 2 was unparsable; named as the file names it
        Assert.Equal(3, lines.Length);
        Assert.Equal(["rank,similarity,line,id,smiles", "1,1.0000,6,aspirin,CC(=O)Oc1ccccc1C(=O)O", "2,0.4483,5,salicylic acid,OC(=O)c1ccccc1O"], File.ReadAllLines(csv)); // 0.4483: RDKit's own Tanimoto of the two
        // --top past the library asks for all of it (the heaps were sized by it: 2^31 slots were an internal error).
        var all = Run("chem", "similar", "--index", library, "--query", "CCO", "--top", "2147483647");
        Assert.True(all.Code == 0, all.Err);
        Assert.Equal(6, all.Out.Trim().Split('\n').Length); // the header and the 5 readable molecules
        var nothing = Run("chem", "similar", "--index", Write("bad.smi", "C1CC\nxyz\n"), "--query", "CCO");
        Assert.Equal(2, nothing.Code);
        Assert.Contains("no molecule RDKit can read (2 unparsable), so nothing to search", nothing.Err);

        string svg = Path.Combine(TestData.TempDirectory(), "m.svg");
        Assert.Equal(0, Run("chem", "depict", "--smiles", "c1ccccc1O", "--out", svg, "--highlight", "6").Code);
        Assert.Contains("<svg", File.ReadAllText(svg));
        var bad = Run("chem", "depict", "--smiles", "C1CC", "--out", svg);
        Assert.Equal(2, bad.Code);
        Assert.Equal("error: --smiles 'C1CC': SMILES Parse Error: unclosed ring for input: 'C1CC'", bad.Err.Trim());
        var tiny = Run("chem", "depict", "--smiles", "CCO", "--out", Path.Combine(TestData.TempDirectory(), "t.svg"), "--width", "0");
        Assert.Equal((2, "error: --width must be 50–2000 pixels (got 0)"), (tiny.Code, tiny.Err.Trim()));
    }

    [Fact]
    public void MetricsWritesMosesKeys()
    {
        string gen = Write("gen.smi", "CCO\nc1ccccc1\nC1CC\n");
        string output = Path.Combine(TestData.TempDirectory(), "m.json");
        var result = Run("chem", "metrics", "--gen", gen, "--train", gen, "--out", output);
        Assert.True(result.Code == 0, result.Err);
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(output));
        Assert.Equal(2.0 / 3, json.RootElement.GetProperty("valid").GetDouble(), 12);
        Assert.Equal(0, json.RootElement.GetProperty("Novelty").GetDouble());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, json.RootElement.GetProperty("SNN").ValueKind);
        Assert.Equal(System.Text.Json.JsonValueKind.Null, json.RootElement.GetProperty("unique@1000").ValueKind);
        Assert.Contains("note: unique@1000 and unique@10000 are null: they need at least 1,000 and 10,000 valid molecules (--gen has 2 valid of 3)", result.Err);
        Assert.Equal(2, Run("chem", "metrics", "--gen", Write("empty.smi", ""), "--out", output).Code);

        // An empty sample, as `generate` writes one (its end token), is an invalid sample, counted.
        Assert.Equal(0, Run("chem", "metrics", "--gen", Write("blank.smi", "CCO\n<eos>\nc1ccccc1\n"), "--out", output).Code);
        using (var blank = System.Text.Json.JsonDocument.Parse(File.ReadAllText(output)))
        {
            Assert.Equal(3, blank.RootElement.GetProperty("generated").GetInt32());
            Assert.Equal(2.0 / 3, blank.RootElement.GetProperty("valid").GetDouble(), 12);
        }
        // An SDF's molecules are molecules (their MOL blocks were read as SMILES, all invalid).
        string sdf = Write("gen.sdf", Ethanol + "$$$$\n" + Ethanol + "$$$$\n");
        Assert.Equal(0, Run("chem", "metrics", "--gen", sdf, "--train", gen, "--out", output).Code);
        using (var fromSdf = System.Text.Json.JsonDocument.Parse(File.ReadAllText(output)))
        {
            Assert.Equal(1, fromSdf.RootElement.GetProperty("valid").GetDouble());
            Assert.Equal(0, fromSdf.RootElement.GetProperty("Novelty").GetDouble()); // ethanol is in the training set
        }
        // Two columns that say SMILES: which one is named, not guessed; --smiles-column picks it for every table.
        string table = Write("gen.csv", "id,raw_smiles,canonical_smiles\na,OCC,CCO\nb,C1CC,C1CC1\n");
        var ambiguous = Run("chem", "metrics", "--gen", table, "--out", output);
        Assert.Equal(2, ambiguous.Code);
        Assert.Contains("no column is named smiles and 2 hold the word (raw_smiles, canonical_smiles); name one with --smiles-column", ambiguous.Err);
        Assert.Contains("or rename the others", ambiguous.Err); // embed, quickstart and bench similarity read tables without the option
        Assert.Equal(0, Run("chem", "metrics", "--gen", table, "--train", gen, "--smiles-column", "canonical_smiles", "--out", output).Code);
        using (var picked = System.Text.Json.JsonDocument.Parse(File.ReadAllText(output)))
            Assert.Equal(1, picked.RootElement.GetProperty("valid").GetDouble());
        // With no valid sample, a training set without a molecule is still refused (it was never read).
        string invalid = Write("invalid.smi", "C1CC\n");
        var unread = Run("chem", "metrics", "--gen", invalid, "--train", invalid, "--out", output);
        Assert.Equal(2, unread.Code);
        Assert.Contains("has no valid molecule", unread.Err);
        var none = Run("chem", "metrics", "--gen", invalid, "--ref", gen, "--out", output);
        Assert.True(none.Code == 0, none.Err);
        Assert.Contains("note: IntDiv, IntDiv2, Filters, SNN, Frag, Scaf are null: there is no valid molecule to measure", none.Err);
    }

    [Fact]
    public void NonAsciiSmilesAreInvalidInEveryCommand()
    {
        string input = Write("emoji.smi", "C😀C methane?\nCCO\n");
        string output = Path.Combine(TestData.TempDirectory(), "props.csv");
        Assert.Equal(0, Run("chem", "props", "--in", input, "--out", output).Code);
        var rows = File.ReadAllLines(output);
        Assert.StartsWith("C😀C,0,,", rows[1]);
        Assert.Contains("character '😀' (U+1F600) at position 2 is not printable ASCII", rows[1]);

        var depict = Run("chem", "depict", "--smiles", "C😀C", "--out", Path.Combine(TestData.TempDirectory(), "m.svg"));
        Assert.Equal(2, depict.Code);
        Assert.Contains("(U+1F600) at position 2", depict.Err);
        var similar = Run("chem", "similar", "--index", input, "--query", "C😀C");
        Assert.Equal(2, similar.Code);
        Assert.Contains("(U+1F600) at position 2", similar.Err);
        var hits = Run("chem", "similar", "--index", input, "--query", "CCO");
        Assert.Contains("1 unparsable skipped", hits.Err);
        var badBits = Run("chem", "similar", "--index", input, "--query", "CCO", "--bits", "100");
        Assert.Equal((2, "error: --bits 100: must be a multiple of 64 from 64 to 65536"), (badBits.Code, badBits.Err.Trim()));
        // A size no fingerprint uses took 1.6 GB for a two-molecule index.
        Assert.Contains("--bits 2147483584: must be a multiple of 64 from 64 to 65536", Run("chem", "similar", "--index", input, "--query", "CCO", "--bits", "2147483584").Err);
        Assert.Contains("--radius -1: must be 0 to 10", Run("chem", "similar", "--index", input, "--query", "CCO", "--radius", "-1").Err);
        string json = Path.Combine(TestData.TempDirectory(), "m.json");
        Assert.Equal(0, Run("chem", "metrics", "--gen", input, "--out", json).Code);
        Assert.Contains("\"valid\": 0.5", File.ReadAllText(json));
    }

    [Fact]
    public void SmilesWithASpaceAreInvalidInEveryCommandWhileNameColumnsStillSplit()
    {
        // A .smi line's name follows the first space and stays a name; inside a table's SMILES field a space is an error.
        string smi = Write("named.smi", "CCO ethanol\n");
        string table = Write("spaced.csv", "smiles,name\nC C,methane?\nCCO,ethanol\n");
        string output = Path.Combine(TestData.TempDirectory(), "props.csv");
        Assert.Equal(0, Run("chem", "props", "--in", smi, "--out", output).Code);
        Assert.StartsWith("CCO,1,CCO,", File.ReadAllLines(output)[1]);
        Assert.EndsWith(",ethanol", File.ReadAllLines(output)[1]);
        Assert.Equal(0, Run("chem", "props", "--in", table, "--out", output).Code);
        var rows = File.ReadAllLines(output);
        Assert.StartsWith("C C,0,,", rows[1]);
        Assert.Contains("space at position 2", rows[1]);
        Assert.StartsWith("CCO,1,", rows[2]);

        var depict = Run("chem", "depict", "--smiles", "C C", "--out", Path.Combine(TestData.TempDirectory(), "m.svg"));
        Assert.Equal(2, depict.Code);
        Assert.Contains("space at position 2", depict.Err);
        var similar = Run("chem", "similar", "--index", smi, "--query", "CC O");
        Assert.Equal(2, similar.Code);
        Assert.Contains("space at position 3", similar.Err);
    }

    [Fact]
    public void DepictHighlightsTheMatchesOfASmarts()
    {
        string dir = TestData.TempDirectory();
        string bySmarts = Path.Combine(dir, "smarts.svg"), byIndex = Path.Combine(dir, "index.svg"), plain = Path.Combine(dir, "plain.svg");
        Assert.Equal(0, Run("chem", "depict", "--smiles", "c1ccccc1O", "--out", plain).Code);
        var result = Run("chem", "depict", "--smiles", "c1ccccc1O", "--out", bySmarts, "--highlight", "[OX2H]");
        Assert.True(result.Code == 0, result.Err);
        Assert.Equal(0, Run("chem", "depict", "--smiles", "c1ccccc1O", "--out", byIndex, "--highlight", "6").Code);
        Assert.Equal(File.ReadAllText(byIndex), File.ReadAllText(bySmarts));
        Assert.NotEqual(File.ReadAllText(plain), File.ReadAllText(bySmarts));
        var none = Run("chem", "depict", "--smiles", "CCO", "--out", bySmarts, "--highlight", "c1ccccc1");
        Assert.Equal(2, none.Code);
        Assert.Contains("matches no atom", none.Err);
        var bad = Run("chem", "depict", "--smiles", "CCO", "--out", bySmarts, "--highlight", "[C");
        Assert.Equal(2, bad.Code);
        Assert.Contains("--highlight", bad.Err);
    }

    [Fact]
    public void EmptyBinaryAndUnwritableInputsAreErrors()
    {
        string dir = TestData.TempDirectory();
        string output = Path.Combine(dir, "props.csv");
        var empty = Run("chem", "props", "--in", Write("empty.smi", ""), "--out", output);
        Assert.Equal(2, empty.Code);
        Assert.Contains("empty.smi: the file holds no molecules", empty.Err);
        Assert.False(File.Exists(output));
        Assert.Equal(2, Run("chem", "props", "--in", Write("blank.csv", "smiles\n\n"), "--out", output).Code);

        string binary = Path.Combine(dir, "picture.smi");
        File.WriteAllBytes(binary, [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d]);
        var bin = Run("chem", "props", "--in", binary, "--out", output);
        Assert.Equal(2, bin.Code);
        Assert.Contains("picture.smi:1:1: not UTF-8 text (a byte UTF-8 does not allow: a binary file", bin.Err); // the PNG signature's 0x89
        File.WriteAllBytes(binary, [(byte)'C', (byte)'C', 0x0a, (byte)'O', 0, 0x0a]);
        Assert.Contains("picture.smi:2: binary data (a NUL byte)", Run("chem", "props", "--in", binary, "--out", output).Err);
        Assert.Equal(2, Run("chem", "metrics", "--gen", binary, "--out", Path.Combine(dir, "m.json")).Code);

        // /proc refuses new files even to root; the message used to name the hidden temporary file instead.
        const string unwritable = "/proc/bioforge-props.csv";
        var denied = Run("chem", "props", "--in", Write("ok.smi", "CCO\n"), "--out", unwritable);
        Assert.Equal(2, denied.Code);
        Assert.StartsWith($"error: --out {unwritable}: ", denied.Err);
        Assert.DoesNotContain(".tmp", denied.Err);
        Assert.Single(denied.Err.TrimEnd().Split('\n'));
    }
}
