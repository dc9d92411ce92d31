using System.Diagnostics;
using BioForge.Chem;

namespace BioForge.Tests;

public sealed class ChemTests
{
    /// <summary>
    /// A salt's parent, neutralized, has its own logP and TPSA: RDKit caches both on a molecule, the Uncharger's copy kept
    /// the charged piece's (read while the pieces were ranked), and screening filtered and predicted on acetate's values.
    /// </summary>
    [Fact]
    public void ANeutralizedParentHasItsOwnDescriptorsNotTheChargedOnes()
    {
        foreach (var (salt, parentSmiles) in new[] { ("CC(=O)[O-].[Na+]", "CC(=O)O"), ("C[NH3+].[Cl-]", "CN") })
        {
            using var mixture = Molecule.FromSmiles(salt);
            using var piece = mixture.LargestFragment()!;
            _ = piece.Descriptors(); // as screening's filters read it before neutralizing
            using var neutral = piece.Neutralized();
            using var parent = Molecule.FromSmiles(parentSmiles);
            Assert.Equal(parent.ToSmiles(), neutral.ToSmiles());
            Assert.Equal(parent.Descriptors().LogP, neutral.Descriptors().LogP, 9);
            Assert.Equal(parent.Descriptors().Tpsa, neutral.Descriptors().Tpsa, 9);
        }
    }

    /// <summary>
    /// The parent is RDKit's (<c>rdMolStandardize.LargestFragmentChooser(preferOrganic=True)</c>, values from Debian's
    /// python3-rdkit 2022.09): atoms counted with their hydrogens, so amphetamine (23) beats its tosylate (19, though
    /// 11 heavy atoms to 10), and pyridine (11) its oxalate (8).
    /// </summary>
    [Theory]
    [InlineData("CC(N)Cc1ccccc1.Cc1ccc(cc1)S(=O)(=O)O", "CC(N)Cc1ccccc1")]
    [InlineData("OC(=O)C(=O)O.c1ccncc1", "c1ccncc1")]
    [InlineData("Cl.CN1CCC[C@H]1c1cccnc1", "CN1CCC[C@H]1c1cccnc1")]
    [InlineData("[Na+].[Cl-]", "[Cl-]")]
    [InlineData("CCO.CC(C)O", "CC(C)O")]
    public void ASaltsParentIsTheFragmentRDKitsStandardizerChooses(string mixture, string parent)
    {
        using var molecule = Molecule.FromSmiles(mixture);
        using var chosen = molecule.LargestFragment();
        Assert.Equal(parent, chosen!.ToSmiles());
    }

    [Fact]
    public void AStandardizedMoleculeIsTheNeutralParentOrNullWhenAlreadySo()
    {
        foreach (var (given, expected) in new[] { ("CC(=O)[O-].[Na+]", "CC(=O)O"), ("C[NH3+]", "CN"), ("CCO.Cl", "CCO"), ("C[N+](C)(C)C.[Cl-]", "C[N+](C)(C)C") })
        {
            using var molecule = Molecule.FromSmiles(given);
            using var standardized = molecule.Standardized();
            using var parent = Molecule.FromSmiles(expected);
            Assert.Equal(parent.ToSmiles(), standardized!.ToSmiles());
        }
        using var neutral = Molecule.FromSmiles("CC(=O)O");
        Assert.Null(neutral.Standardized());
    }

    [Fact]
    public void InvalidSmilesComeWithRDKitsReason()
    {
        Assert.False(Molecule.TryFromSmiles("C1CC", out _, out string? ring));
        Assert.Contains("unclosed ring", ring);
        Assert.False(Molecule.TryFromSmiles("C(C)(C)(C)(C)C", out _, out string? valence));
        Assert.Contains("valence", valence);
        Assert.False(Molecule.TryFromSmiles("c1cccc1", out _, out string? kekule));
        Assert.Contains("kekulize", kekule, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("invalid SMILES 'xyz'", Assert.Throws<BioForgeException>(() => Molecule.FromSmiles("xyz")).Message);
        Assert.Contains("invalid SMARTS", Assert.Throws<BioForgeException>(() => new SmartsQuery("[C")).Message);
    }

    /// <summary>
    /// A molecule table's broken row is an error naming its line, not a row read as something else (<c>CC"O,eth</c> read
    /// as the invalid SMILES <c>CCO,eth</c>, its name lost); quoted fields with commas and doubled quotes still read.
    /// </summary>
    [Theory]
    [InlineData("CC\"O,eth", "t.csv:2: a quote inside an unquoted field at column 3")]
    [InlineData("\"c1ccccc1,benz", "t.csv:2: a quoted field is not closed on its line")]
    [InlineData("\"CCO\"x,eth", "t.csv:2: text after a closing quote at column 6")]
    [InlineData("CCO,eth,extra", "t.csv:2: 3 fields, the header has 2")]
    [InlineData("CCO", "t.csv:2: 1 fields, the header has 2")]
    public void BrokenTableRowsAreErrorsNamingTheLine(string row, string expected)
    {
        string path = Path.Combine(TestData.TempDirectory(), "t.csv");
        File.WriteAllText(path, $"smiles,name\n{row}\n");
        Assert.EndsWith(expected, Assert.Throws<BioForgeException>(() => MoleculeSource.Read(path).ToList()).Message);
        File.WriteAllText(path, "smiles,name\n\"CC(=O)O\", \"acetic acid, \"\"vinegar\"\"\"\n");
        var record = Assert.Single(MoleculeSource.Read(path));
        Assert.Equal(("CC(=O)O", "acetic acid, \"vinegar\""), (record.Text, record.Properties[MoleculeSource.NameProperty]));
    }

    /// <summary>RDKit reads what follows a space as a name: "O garbage" would be the pattern O. Spaces around a pattern are dropped.</summary>
    [Fact]
    public void ASmartsWithASpaceIsRefused()
    {
        Assert.Contains("invalid SMARTS 'O garbage': space at position 2: a SMARTS holds no whitespace", Assert.Throws<BioForgeException>(() => new SmartsQuery("O garbage")).Message);
        Assert.Contains("space at position 6: a reaction SMARTS holds no whitespace", Assert.Throws<BioForgeException>(() => new Reaction("[C:1] >>[C:1]O")).Message);
        using var padded = new SmartsQuery(" cO ");
        Assert.Equal("cO", padded.Smarts);
    }

    /// <summary>A V3000 MOL block of an n-carbon chain with the given counts record(s).</summary>
    private static string V3000Chain(int n, string counts, string title = "chain")
    {
        var block = new System.Text.StringBuilder($"{title}\n  BioForge\n\n  0  0  0     0  0            999 V3000\nM  V30 BEGIN CTAB\n{counts}\nM  V30 BEGIN ATOM\n");
        for (int i = 1; i <= n; i++) block.Append(System.Globalization.CultureInfo.InvariantCulture, $"M  V30 {i} C 0 0 0 0\n");
        block.Append("M  V30 END ATOM\nM  V30 BEGIN BOND\n");
        for (int i = 1; i < n; i++) block.Append(System.Globalization.CultureInfo.InvariantCulture, $"M  V30 {i} 1 {i} {i + 1}\n");
        return block.Append("M  V30 END BOND\nM  V30 END CTAB\nM  END\n").ToString();
    }

    /// <summary>
    /// A MOL block declaring more atoms than RDKit handles quickly is refused before it is parsed, as a long SMILES is
    /// (V2000's three-digit count stops at 999; larger molecules are written as V3000).
    /// </summary>
    [Fact]
    public void OversizedMolBlocksAreRefusedFromTheirCountsLine()
    {
        string v3000 = "big\n  BioForge\n\n  0  0  0     0  0            999 V3000\nM  V30 BEGIN CTAB\nM  V30 COUNTS 5000 4999 0 0 0\nM  END\n";
        Assert.False(Molecule.TryFromMolBlock(v3000, out _, out string? error));
        Assert.Equal("MOL block of 5000 atoms is larger than the 1000 accepted", error);
        Assert.False(Molecule.TryFromMolBlock(v3000.Replace("COUNTS 5000", "COUNTS 99999999999"), out _, out error));
        Assert.Equal($"MOL block of {int.MaxValue} atoms is larger than the 1000 accepted", error);
        // The atoms are counted too: a COUNTS record continued on the next line (read as a count by RDKit, not by a
        // look at the line), one in the title, or one that understates no longer lets 1,100 atoms through.
        Assert.False(Molecule.TryFromMolBlock(V3000Chain(1100, "M  V30 COUNTS -\nM  V30 1100 1099 0 0 0"), out _, out error));
        Assert.Equal("MOL block of 1100 atoms is larger than the 1000 accepted", error);
        Assert.False(Molecule.TryFromMolBlock(V3000Chain(1100, "M  V30 COUNTS 5 4 0 0 0", title: "M  V30 COUNTS 5 4 0 0 0"), out _, out error));
        Assert.Equal("MOL block of 1100 atoms is larger than the 1000 accepted", error);
        // … while a continued COUNTS record of a small molecule reads as RDKit reads it.
        Assert.True(Molecule.TryFromMolBlock(V3000Chain(5, "M  V30 COUNTS -\nM  V30 5 4 0 0 0"), out var pentane, out error), error);
        using (pentane) Assert.Equal("CCCCC", pentane!.ToSmiles());
        // A block of no atoms is no molecule (RDKit reads it as an empty one).
        const string empty = "empty\n  BioForge\n\n  0  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n";
        Assert.False(Molecule.TryFromMolBlock(empty, out _, out error));
        Assert.Equal("MOL block has no atoms", error);
    }

    /// <summary>
    /// RDKit reads this SMILES but cannot sanitize it a second time, nor read back its own canonical SMILES; MOSES and
    /// GuacaMol sanitize twice and call it invalid, and so does BioForge (validity, PMO oracles, screening).
    /// </summary>
    [Fact]
    public void AMoleculeRDKitCannotSanitizeTwiceIsInvalid()
    {
        Assert.False(Molecule.TryFromSmiles("CC[n-]1CCCCN1C(=O)c1ccc(CSC)cc1", out _, out string? reason));
        Assert.StartsWith("RDKit reads it but cannot sanitize it again: Explicit valence", reason);
        using var moses = new MosesMetrics();
        Assert.Equal(0.75, moses.Compute(["CCO", "CC[n-]1CCCCN1C(=O)c1ccc(CSC)cc1", "c1ccccc1O", "CCN"]).Validity);
    }

    [Fact]
    public void SmilesOutsidePrintableAsciiAreInvalidNamingTheCharacterAndPosition()
    {
        // RDKit stopped at the emoji and read "C😀C" as methane, reported valid.
        Assert.False(Molecule.TryFromSmiles("C😀C", out var molecule, out string? emoji));
        Assert.Null(molecule);
        Assert.Equal("character '😀' (U+1F600) at position 2 is not printable ASCII", emoji);
        Assert.False(Molecule.TryFromSmiles("CCé", out _, out string? accent));
        Assert.Contains("(U+00E9) at position 3", accent);
        Assert.False(Molecule.TryFromSmiles("C\tC", out _, out string? tab));
        Assert.Contains("(U+0009) at position 2", tab);
        Assert.False(Molecule.TryFromSmiles("C\u00a0C", out _, out _));
        // RDKit ends a SMILES at a space and keeps the rest as a name: "C C" was methane, reported valid.
        Assert.False(Molecule.TryFromSmiles("C C", out _, out string? space));
        Assert.StartsWith("space at position 2", space);
        Assert.False(Molecule.TryFromSmiles("CCO ", out _, out string? trailing));
        Assert.StartsWith("space at position 4", trailing);
        Assert.Contains("U+1F600", Assert.Throws<BioForgeException>(() => Molecule.FromSmiles("C😀C")).Message);
        var record = new MoleculeRecord("C😀C", "C😀C", false, 1, new Dictionary<string, string>());
        Assert.False(record.TryParse(out _, out _));
        using var table = new PropertyTable();
        Assert.False(table.Compute(record).Valid);
    }

    [Fact]
    public void SdfBlocksWithoutSeparatorsAreAnErrorNamingTheLineNeverDropped()
    {
        string one = string.Join("\n", File.ReadAllText(TestData.Path("chem", "small.sdf")).Split('\n').TakeWhile(l => l.TrimEnd('\r') != "M  END")) + "\nM  END\n";
        string path = Path.Combine(TestData.TempDirectory(), "joined.sdf");
        File.WriteAllText(path, one + one + one + "$$$$\n");
        int second = one.Split('\n').Length; // 1-based line of the second block's title
        var e = Assert.Throws<BioForgeException>(() => MoleculeSource.Read(path).ToList());
        Assert.Contains($"{path}:{second}:", e.Message);
        Assert.Contains("$$$$", e.Message);

        // Data items still end at a blank line, and separated records read as before.
        File.WriteAllText(path, one + "> <activity>\n1.5\n\n> <note>\ntwo\nlines\n\n$$$$\n" + one + "$$$$\n");
        var records = MoleculeSource.Read(path).ToList();
        Assert.Equal(2, records.Count);
        Assert.Equal("1.5", records[0].Properties["activity"]);
        Assert.Equal("two\nlines", records[0].Properties["note"]);
    }

    [Fact]
    public void MoleculeFilesWithOverlongLinesFailWhileReading()
    {
        string dir = TestData.TempDirectory();
        string smi = Path.Combine(dir, "long.smi.gz");
        using (var gz = new System.IO.Compression.GZipStream(File.Create(smi), System.IO.Compression.CompressionLevel.Fastest))
        {
            gz.Write("CCO\n"u8);
            var chunk = new byte[1 << 20];
            Array.Fill(chunk, (byte)'C');
            for (int i = 0; i < 64; i++) gz.Write(chunk); // one 64 MB line
        }
        var e = Assert.Throws<BioForgeException>(() => MoleculeSource.Read(smi).ToList());
        Assert.StartsWith($"{smi}:2: line longer than", e.Message);
        string csv = Path.Combine(dir, "long.csv");
        File.WriteAllText(csv, "smiles,name\nCCO,a\n" + new string('C', MoleculeSource.MaxLineLength + 1) + ",b\n");
        Assert.StartsWith($"{csv}:3: line longer than", Assert.Throws<BioForgeException>(() => MoleculeSource.Read(csv).ToList()).Message);
    }

    [Fact]
    public void RandomSmilesAreValidReproducibleAndVaried()
    {
        using var m = Molecule.FromSmiles("CC(=O)Oc1ccccc1C(=O)O");
        var variants = Enumerable.Range(0, 20).Select(i => m.ToRandomSmiles((uint)i)).ToList();
        Assert.Equal(variants[3], m.ToRandomSmiles(3));
        // Seed 0 too (RDKit reseeds only for a positive seed; 0 drew on from wherever the generator was), and the
        // seeds 2^31 apart differ.
        Assert.Equal(variants[0], m.ToRandomSmiles(0));
        Assert.Equal(Enumerable.Range(0, 8).Select(i => m.ToRandomSmiles((uint)i)), Enumerable.Range(0, 8).Select(i => m.ToRandomSmiles((uint)i)));
        Assert.NotEqual(Enumerable.Range(0, 8).Select(i => m.ToRandomSmiles((uint)i)), Enumerable.Range(0, 8).Select(i => m.ToRandomSmiles((uint)i + 0x80000000u)));
        Assert.True(variants.Distinct().Count() > 5);
        foreach (var s in variants)
        {
            using var back = Molecule.FromSmiles(s);
            Assert.Equal(m.ToSmiles(), back.ToSmiles());
        }
    }

    [Fact]
    public void ReadsSdfRecordsWithPropertiesAndKeepsBadRecords()
    {
        var records = MoleculeSource.Read(TestData.Path("chem", "small.sdf")).ToList();
        Assert.Equal(["aspirin", "caffeine", "L-alanine", "pentavalent"], records.Select(r => r.Label));
        Assert.Equal("1.5", records[1].Properties["activity"]);
        Assert.True(records[0].TryParse(out var aspirin, out _));
        using (aspirin) Assert.Equal("CC(=O)Oc1ccccc1C(=O)O", aspirin!.ToSmiles());
        Assert.True(records[2].TryParse(out var alanine, out _));
        using (alanine) Assert.Equal("C[C@H](N)C(=O)O", alanine!.ToSmiles());
        Assert.False(records[3].TryParse(out _, out string? error));
        Assert.Contains("valence", error);
        // A separator with trailing blanks (some exporters pad lines) ends its record, as RDKit reads it.
        string padded = Path.Combine(TestData.TempDirectory(), "padded.sdf");
        File.WriteAllText(padded, File.ReadAllText(TestData.Path("chem", "small.sdf")).Replace("$$$$\n", "$$$$  \n", StringComparison.Ordinal));
        Assert.Equal(records.Select(r => r.Label), MoleculeSource.Read(padded).Select(r => r.Label));

        // A spreadsheet's semicolon-separated export: columns, not one field a row (whose header matched as the SMILES column).
        string semicolons = Path.Combine(TestData.TempDirectory(), "semicolons.csv");
        File.WriteAllText(semicolons, "smiles;name\nCCO;ethanol\nc1ccccc1O;phenol\n");
        Assert.Equal(["CCO", "c1ccccc1O"], MoleculeSource.Read(semicolons).Select(r => r.Text));
        Assert.Equal("phenol", MoleculeSource.Read(semicolons).Last().Properties[MoleculeSource.NameProperty]);

        // The last record without its '$$$$' is named from its data items and held to --id-column as the others are.
        string text = File.ReadAllText(TestData.Path("chem", "small.sdf"));
        string unterminated = Path.Combine(TestData.TempDirectory(), "unterminated.sdf");
        File.WriteAllText(unterminated, text[..text.LastIndexOf("$$$$", StringComparison.Ordinal)].Replace("pentavalent\n", "\n", StringComparison.Ordinal) + ">  <id>\nP5\n\n");
        Assert.Equal("P5", MoleculeSource.Read(unterminated).Last().Properties[MoleculeSource.NameProperty]);
        Assert.Contains("the record has no 'activity' data item", Assert.Throws<BioForgeException>(() => MoleculeSource.Read(unterminated, idColumn: "activity").ToList()).Message);

        // RDKit counts a record's lines from its title; the message names the file's line, where a reader finds it.
        string[] lines = text.Split('\n');
        int title = Array.IndexOf(lines, "caffeine");
        lines[title + 4] = lines[title + 4][..20]; // the first atom line, cut short
        string cut = Path.Combine(TestData.TempDirectory(), "cut.sdf");
        File.WriteAllText(cut, string.Join('\n', lines));
        var caffeine = MoleculeSource.Read(cut).ElementAt(1);
        Assert.Equal(title + 1, caffeine.Line);
        Assert.False(caffeine.TryParse(out _, out string? cutError));
        Assert.Contains($"on line {title + 5} (line 5 of the record)", cutError);
    }

    [Fact]
    public void SimilaritySearchFindsTheQueryFirstAndAgreesWithPairwiseTanimoto()
    {
        string[] library = ["CCO", "CCCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "not a molecule", "OC(=O)c1ccccc1O", "CCN"];
        var index = FingerprintIndex.Build(library.Select((s, i) => new MoleculeRecord(s, s, false, i + 1, new Dictionary<string, string>())), threads: 2);
        Assert.Equal(6, index.Count);
        Assert.Single(index.Rejected);
        using var query = Molecule.FromSmiles("CC(=O)Oc1ccccc1C(=O)O");
        var fp = index.Fingerprint(query);
        var hits = index.Search(fp, 3, threads: 2);
        Assert.Equal("CC(=O)Oc1ccccc1C(=O)O", hits[0].Smiles);
        Assert.Equal(1.0, hits[0].Similarity);
        Assert.Equal("OC(=O)c1ccccc1O", hits[1].Smiles);
        Assert.Equal("line 6", hits[1].Id); // no name given: where it is
        for (int i = 0; i < index.Count; i++)
        {
            double expected = Fingerprints.Tanimoto(fp, index[i]);
            Assert.True(hits.All(h => h.Index != i || Math.Abs(h.Similarity - expected) < 1e-12));
        }
        Assert.True(hits[1].Similarity >= hits[2].Similarity);
    }

    [Fact]
    public void DepictionsAreSvgAndPng()
    {
        using var m = Molecule.FromSmiles("c1ccccc1O");
        string svg = m.ToSvg(300, 200, [6]);
        Assert.StartsWith("<?xml", svg);
        Assert.Contains("<svg", svg);
        byte[] png = m.ToPng(300, 200);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        Assert.Contains("outside the molecule", Assert.Throws<BioForgeException>(() => m.ToSvg(300, 200, [42])).Message);
    }

    [Fact]
    public void ParallelCallsGiveTheSameResultsAsSerialOnes()
    {
        var smiles = File.ReadLines(TestData.Path("chem", "reference.tsv")).Skip(2).Select(l => l.Split('\t')[0].Replace("\\\\", "\\")).ToList();
        using var table = new PropertyTable();
        var serial = smiles.Select(s => PropertyTable.FormatCsv(table.Compute(new MoleculeRecord(s, s, false, 0, new Dictionary<string, string>())))).ToList();
        for (int round = 0; round < 3; round++)
        {
            var parallel = new string[smiles.Count];
            Parallel.For(0, smiles.Count, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
                parallel[i] = PropertyTable.FormatCsv(table.Compute(new MoleculeRecord(smiles[i], smiles[i], false, 0, new Dictionary<string, string>()))));
            Assert.Equal(serial, parallel);
        }
    }
}

/// <summary>Runs alone (no other test allocating in the process) so resident-memory growth means something.</summary>
[CollectionDefinition(nameof(FuzzTests), DisableParallelization = true)]
public sealed class FuzzTestsCollection;

[Collection(nameof(FuzzTests))]
public sealed class FuzzTests
{
    [Fact]
    public void FuzzedInputsNeverCrashOrLeak()
    {
        var random = new Random(12345);
        var seeds = File.ReadLines(TestData.Path("chem", "reference.tsv")).Skip(2).Select(l => l.Split('\t')[0]).Where(s => s.Length > 0).ToArray();
        const string alphabet = "CNOSPFIBrcnos()[]=#@+-\\/123456789%.*:$Hl ~!?\0é€";
        string Mutate()
        {
            var chars = seeds[random.Next(seeds.Length)].ToCharArray().ToList();
            int edits = random.Next(1, 5);
            for (int e = 0; e < edits && chars.Count > 0; e++)
            {
                int at = random.Next(chars.Count);
                switch (random.Next(3))
                {
                    case 0: chars[at] = alphabet[random.Next(alphabet.Length)]; break;
                    case 1: chars.RemoveAt(at); break;
                    default: chars.Insert(at, alphabet[random.Next(alphabet.Length)]); break;
                }
            }
            return new string(chars.ToArray());
        }
        string RandomText() => new(Enumerable.Range(0, random.Next(0, 40)).Select(_ => alphabet[random.Next(alphabet.Length)]).ToArray());

        long Rss()
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            using var self = Process.GetCurrentProcess();
            return self.WorkingSet64;
        }
        int valid = 0;
        long after20k = 0, handlesAt20k = 0;
        for (int i = 0; i < 100_000; i++)
        {
            string input = (i % 1000) switch
            {
                0 => new string('C', 20_000),
                1 => string.Concat(Enumerable.Repeat("C1CC1", 3000)),
                2 => "C(" + new string('(', 5000),
                3 => new string('C', 200) + string.Concat(Enumerable.Repeat("(C)", 100)),
                _ => i % 2 == 0 ? Mutate() : RandomText(),
            };
            if (i == 20_000)
            {
                after20k = Rss(); // collects garbage and runs pending finalizers first
                handlesAt20k = RDKitNative.bf_live_handles();
            }
            if (Molecule.TryFromSmiles(input, out var m, out string? error))
            {
                using (m) _ = m!.ToSmiles();
                valid++;
            }
            else
            {
                Assert.False(string.IsNullOrEmpty(error));
            }
        }
        Assert.False(Molecule.TryFromSmiles(new string('C', 20_000), out _, out string? tooLong));
        Assert.Contains("longer than the 1000 accepted", tooLong);
        long growth = Rss() - after20k;
        Assert.Equal(handlesAt20k, RDKitNative.bf_live_handles()); // every molecule made by the loop was freed
        Assert.InRange(valid, 1, 99_999);
        Assert.True(growth < 128L << 20, $"resident memory grew by {growth >> 20} MiB over 80k parses");
    }
}
