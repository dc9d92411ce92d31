using BioForge.Chem;
using BioForge.FineTuning;

namespace BioForge.Tests;

public sealed class LabelledDataTests
{
    private static List<LabelledRow> Rows(params string[] smiles) => [.. smiles.Select((s, i) => new LabelledRow("t.csv", i + 2, s, "1"))];

    /// <summary>The separator comes from the file's own name: a folder called x.tsv.d made every CSV in it tab-separated.</summary>
    [Fact]
    public void ACsvInAFolderNamedTsvIsReadWithCommas()
    {
        string folder = Path.Combine(TestData.TempDirectory(), "old.tsv.d");
        Directory.CreateDirectory(folder);
        string csv = Path.Combine(folder, "m.csv");
        File.WriteAllLines(csv, ["smiles,label", "CCO,1.5", "CCN,2"]);
        var rows = LabelledData.Read(csv, "smiles", "label");
        Assert.Equal(["CCO", "CCN"], rows.Select(r => r.Sequence));
        Assert.Equal(',', BioForge.IO.Csv.Separator(csv, "smiles,label"));
        Assert.Equal('\t', BioForge.IO.Csv.Separator(Path.Combine(folder, "m.tsv.gz"), "smiles"));
    }

    [Fact]
    public void RandomSplitIsASeededPartition()
    {
        var rows = Rows([.. Enumerable.Range(0, 100).Select(i => new string('C', i + 1))]);
        var split = LabelledData.Random(rows, 0.1, 0.2, seed: 3);
        Assert.Equal((70, 10, 20), (split.Train.Count, split.Valid.Count, split.Test.Count));
        Assert.Equal(100, split.Train.Concat(split.Valid).Concat(split.Test).Select(r => r.Line).Distinct().Count());
        Assert.Equal(split.Test.Select(r => r.Line), LabelledData.Random(rows, 0.1, 0.2, seed: 3).Test.Select(r => r.Line));
        Assert.NotEqual(split.Test.Select(r => r.Line), LabelledData.Random(rows, 0.1, 0.2, seed: 4).Test.Select(r => r.Line));
    }

    [Fact]
    public void ScaffoldSplitKeepsEachScaffoldInOnePart()
    {
        // Benzene derivatives (scaffold c1ccccc1) ×5, pyridines ×3, cyclohexanes ×2, acyclic ×2 (empty scaffold), one unparsable.
        var rows = Rows("Cc1ccccc1", "Oc1ccccc1", "Nc1ccccc1", "Clc1ccccc1", "c1ccccc1", "Cc1ccncc1", "Oc1ccncc1", "c1ccncc1",
            "CC1CCCCC1", "OC1CCCCC1", "CCO", "CCN", "C1CC");
        var split = LabelledData.Scaffold(rows, 0.2, 0.2);
        Assert.Equal(rows.Count, split.Train.Count + split.Valid.Count + split.Test.Count);
        string Scaffold(LabelledRow r)
        {
            if (!Molecule.TryFromSmiles(r.Sequence, out var m, out _)) return $"invalid {r.Line}";
            using (m) return m!.MurckoScaffold();
        }
        var parts = new[] { split.Train, split.Valid, split.Test }.Select(p => p.Select(Scaffold).ToHashSet()).ToList();
        Assert.Empty(parts[0].Intersect(parts[1]));
        Assert.Empty(parts[0].Intersect(parts[2]));
        Assert.Empty(parts[1].Intersect(parts[2]));
        Assert.Contains("c1ccccc1", parts[0]); // the largest group trains
        // Protein sequences are no molecules: each would be a group of one, and the split the file's order.
        var proteins = Rows("MKTAYIAKQR", "GSHMLEDPVA", "MKLVVLGAGG", "CCO");
        Assert.Contains("RDKit reads no molecule in 3 of the 4 rows (the first: 'MKTAYIAKQR'); use data.split random",
            Assert.Throws<BioForgeException>(() => LabelledData.Scaffold(proteins, 0.25, 0.25)).Message);
    }

    /// <summary>
    /// Largest first, test gets only singleton scaffolds and validation the pairs; balanced (Chemprop's), the big group
    /// still trains, but test draws pairs too, and the seed moves the split.
    /// </summary>
    [Fact]
    public void BalancedScaffoldSplitDrawsValidationAndTestAlike()
    {
        string[] benzenes = ["Cc1ccccc1", "CCc1ccccc1", "CCCc1ccccc1", "CCCCc1ccccc1", "CCCCCc1ccccc1", "Oc1ccccc1", "Nc1ccccc1", "Clc1ccccc1",
            "Fc1ccccc1", "Brc1ccccc1", "Ic1ccccc1", "OCc1ccccc1", "NCc1ccccc1", "COc1ccccc1", "CNc1ccccc1", "N#Cc1ccccc1", "OC(=O)c1ccccc1",
            "CC(=O)c1ccccc1", "Sc1ccccc1", "CSc1ccccc1"];
        string[] pairs = ["Cc1ccncc1", "Oc1ccncc1", "CC1CCCCC1", "OC1CCCCC1", "Cc1ccc2ccccc2c1", "Oc1ccc2ccccc2c1", "CC1CCNCC1", "OC1CCNCC1",
            "CC1CCOCC1", "OC1CCOCC1"];
        string[] singletons = ["CC1CC1", "CC1CCC1", "CC1CCCC1", "CC1CCCCCC1", "CC1CCCCCCC1", "CC1CCOC1", "CC1CCNC1", "CC1CCSC1", "Cc1ccoc1", "Cc1ccsc1"];
        var rows = Rows([.. benzenes, .. pairs, .. singletons]);
        bool HasPair(IReadOnlyList<LabelledRow> part) => part.Any(r => pairs.Contains(r.Sequence));

        var largestFirst = LabelledData.Scaffold(rows, 0.2, 0.2);
        Assert.All(largestFirst.Test, r => Assert.Contains(r.Sequence, singletons));
        Assert.True(HasPair(largestFirst.Valid));

        var tests = new HashSet<string>();
        bool testDrewAPair = false;
        for (ulong seed = 0; seed < 10; seed++)
        {
            var split = LabelledData.Scaffold(rows, 0.2, 0.2, seed);
            Assert.Equal(rows.Count, split.Train.Count + split.Valid.Count + split.Test.Count);
            Assert.All(benzenes, b => Assert.Contains(split.Train, r => r.Sequence == b)); // larger than half a part: trains
            foreach (var pair in pairs.Chunk(2)) // a scaffold's molecules share their part
                Assert.Single(new[] { split.Train, split.Valid, split.Test }, part => part.Any(r => pair.Contains(r.Sequence)));
            Assert.Equal(split.Test.Select(r => r.Line), LabelledData.Scaffold(rows, 0.2, 0.2, seed).Test.Select(r => r.Line));
            testDrewAPair |= HasPair(split.Test);
            tests.Add(string.Join(",", split.Test.Select(r => r.Line).Order()));
        }
        Assert.True(testDrewAPair, "no seed put a two-molecule scaffold in test");
        Assert.True(tests.Count > 5, $"10 seeds gave {tests.Count} test parts");
    }

    /// <summary>
    /// Copies of one compound — a replicate, its salt, a stereoisomer (features that cannot tell them apart) — fall on one
    /// side of a random split: spread over both, the test part measured molecules the model had fitted (ESOL has two such
    /// pairs in a 20 % test part, BBBP 88 groups). Rows without copies go where a shuffle of rows puts them, as before.
    /// </summary>
    [Fact]
    public void CopiesOfOneCompoundShareTheirPartOfARandomSplit()
    {
        var distinct = Enumerable.Range(0, 60).Select(i => new string('C', i + 1) + "O").ToList();
        var copies = new[] { "CC(=O)O", "CC(=O)[O-].[Na+]", "OC(C)=O", "C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O", "CC(N)C(=O)O" };
        var rows = Rows([.. distinct, .. copies]);
        for (ulong seed = 0; seed < 20; seed++)
        {
            var split = LabelledData.Random(rows, 0.2, 0.2, seed);
            string Part(string smiles) => split.Train.Any(r => r.Sequence == smiles) ? "train" : split.Valid.Any(r => r.Sequence == smiles) ? "valid" : "test";
            Assert.Single(copies[..3].Select(Part).Distinct());
            Assert.Single(copies[3..].Select(Part).Distinct());
            Assert.Equal(rows.Count, split.Train.Count + split.Valid.Count + split.Test.Count);
        }
        // Without copies the split is the shuffle of rows it always was (seeded results stay as they were).
        var plain = Rows([.. distinct]);
        var before = Enumerable.Range(0, plain.Count).OrderBy(i => BioForge.Runtime.StatelessRandom.Hash(3, i, 0x5717)).Take(12).Select(i => plain[i].Line);
        Assert.Equal(before, LabelledData.Random(plain, 0.2, 0.2, seed: 3).Test.Select(r => r.Line));
    }

    /// <summary>Stereoisomers and salts share a scaffold group: with stereochemistry in the key, cis- and trans-decalins were two series.</summary>
    [Fact]
    public void ScaffoldKeysLeaveOutStereochemistryAndCounterIons()
    {
        var keys = new[] { "C1CC[C@H]2CCCC[C@@H]2C1", "C1CC[C@@H]2CCCC[C@@H]2C1", "OC[C@H]1CC[C@@H]2CCCC[C@@H]2C1", "[NH3+]CC1CCC2CCCCC2C1.[Cl-]" }
            .Select(s => LabelledData.Keys(new LabelledRow("t.csv", 2, s, "1")).Scaffold).Distinct().ToList();
        Assert.Equal(["C1CCC2CCCCC2C1"], keys);
        Assert.Equal(("NCC1CCC2CCCCC2C1", "C1CCC2CCCCC2C1"), LabelledData.Keys(new LabelledRow("t.csv", 2, "[NH3+]C[C@H]1CCC2CCCCC2C1.[Cl-]", "1")));
        Assert.Equal(("MKTAYIAKQR", (string?)null), LabelledData.Keys(new LabelledRow("t.csv", 2, "MKTAYIAKQR", "1")));
        // A protein written in lower case is the one the tokenizer reads (it upper-cases residues): one key, one side of a split.
        Assert.Equal(("MKTAYIAKQR", (string?)null), LabelledData.Keys(new LabelledRow("t.csv", 2, "mktayiakqr", "1")));
        Assert.Equal(("MKTAYIAKQR", (string?)null), LabelledData.Keys(new LabelledRow("t.csv", 2, "MKTAYIAKQR", "1"), readMolecules: false));
    }
}
