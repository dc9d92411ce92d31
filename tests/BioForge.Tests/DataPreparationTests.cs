using BioForge.IO;
using BioForge.Runtime;
using BioForge.Tokenizers;
using BioForge.Training;

namespace BioForge.Tests;

public sealed class DataPreparationTests
{
    private static List<int[]> ReadAll(string prefix)
    {
        using var reader = new TokenStore.Reader(prefix);
        return Enumerable.Range(0, reader.Count).Select(reader.Document).ToList();
    }

    [Fact]
    public void ProteinCorpusSplitsDeterministicallyAndKeepsEveryDocument()
    {
        string fasta = Path.Combine(TestData.TempDirectory(), "p.fasta");
        var sequences = Enumerable.Range(0, 200).Select(i => new string("ACDEFGHIKLMNPQRSTVWY"[i % 20], 5 + i % 7)).ToList();
        File.WriteAllText(fasta, string.Concat(sequences.Select((s, i) => $">p{i}\n{s}\n")));
        string a = TestData.TempDirectory(), b = TestData.TempDirectory();
        var corpus = DataPreparation.Prepare(fasta, CorpusKind.Protein, a, 0.2, seed: 3);
        DataPreparation.Prepare(fasta, CorpusKind.Protein, b, 0.2, seed: 3);

        Assert.Equal(200, corpus.Train.Documents + corpus.Validation.Documents);
        Assert.InRange(corpus.Validation.Documents, 20, 60);
        Assert.Equal(ReadAll(Path.Combine(a, "valid")), ReadAll(Path.Combine(b, "valid")));
        var expectedValid = sequences.Where(s => StatelessRandom.Unit(3, DataPreparation.ContentKey(s)) < 0.2).Select(s => EsmTokenizer.Esm2.Encode(s)).ToList();
        Assert.Equal(expectedValid, ReadAll(Path.Combine(a, "valid")));
        // 200 records of 140 distinct sequences: every copy on the side of the others.
        var valid = ReadAll(Path.Combine(a, "valid")).Select(t => string.Join(',', t)).ToHashSet();
        Assert.DoesNotContain(ReadAll(Path.Combine(a, "train")), t => valid.Contains(string.Join(',', t)));
        Assert.True(expectedValid.Count > valid.Count, "the corpus must hold copies in validation for this test to mean anything");
        Assert.True(File.Exists(Path.Combine(a, "vocab.txt")) && File.Exists(Path.Combine(a, "summary.json")));

        // An empty folder that is there is written into, not replaced: a link to scratch space stays the link, and the
        // corpus lands where it points.
        string scratch = TestData.TempDirectory(), link = Path.Combine(TestData.TempDirectory(), "corpus");
        Directory.CreateSymbolicLink(link, scratch);
        DataPreparation.Prepare(fasta, CorpusKind.Protein, link, 0.2, seed: 3);
        Assert.NotNull(new DirectoryInfo(link).LinkTarget);
        Assert.Equal(ReadAll(Path.Combine(a, "valid")), ReadAll(Path.Combine(scratch, "valid")));
    }

    [Fact]
    public void SmilesCorpusDecodesBackToItsInput()
    {
        string smi = Path.Combine(TestData.TempDirectory(), "m.smi");
        string[] molecules = ["CCO", "c1ccccc1Cl", "CC(=O)Oc1ccccc1C(=O)O", "F/C=C\\F"];
        File.WriteAllLines(smi, molecules);
        string dir = TestData.TempDirectory();
        DataPreparation.Prepare(smi, CorpusKind.Smiles, dir, 0, seed: 0);
        var vocabulary = SmilesVocabulary.Load(Path.Combine(dir, SmilesVocabulary.FileName));
        Assert.Equal(molecules, ReadAll(Path.Combine(dir, "train")).Select(d => vocabulary.Decode(d.Select(t => (long)t))));

        // A named SMILES column is the tables' among the inputs; a .smi beside them is read by lines as before.
        string csv = Path.Combine(TestData.TempDirectory(), "m.csv");
        File.WriteAllText(csv, "id,mol\na,CCN\n");
        string mixed = TestData.TempDirectory();
        DataPreparation.Prepare([csv, smi], CorpusKind.Smiles, mixed, 0, seed: 0, smilesColumn: "mol");
        var mixedVocabulary = SmilesVocabulary.Load(Path.Combine(mixed, SmilesVocabulary.FileName));
        Assert.Equal(["CCN", .. molecules], ReadAll(Path.Combine(mixed, "train")).Select(d => mixedVocabulary.Decode(d.Select(t => (long)t))));
        Assert.Contains("no input is a CSV/TSV table", Assert.Throws<BioForgeException>(() => DataPreparation.Prepare([smi], CorpusKind.Smiles, TestData.TempDirectory(), 0, seed: 0, smilesColumn: "mol")).Message);
        // Said, not ignored or doubled: a SMILES column for a FASTA corpus, one file given twice, a SMILES column named twice.
        Assert.Contains("--smiles-column mol applies to SMILES corpora", Assert.Throws<BioForgeException>(() => DataPreparation.Prepare([smi], CorpusKind.Protein, TestData.TempDirectory(), 0, seed: 0, smilesColumn: "mol")).Message);
        Assert.Contains($"--in {smi} is given twice", Assert.Throws<BioForgeException>(() => DataPreparation.Prepare([smi, smi], CorpusKind.Smiles, TestData.TempDirectory(), 0, seed: 0)).Message);
        string twice = Path.Combine(TestData.TempDirectory(), "twice.csv");
        File.WriteAllText(twice, "smiles,smiles\nCCO,CCN\n");
        Assert.Contains("names the SMILES column 'smiles' twice", Assert.Throws<BioForgeException>(() => DataPreparation.Prepare([twice], CorpusKind.Smiles, TestData.TempDirectory(), 0, seed: 0)).Message);
    }

    /// <summary>A molecule written two ways (merged sources, a kekulized copy) is one molecule: both spellings fall on
    /// one side of the split, and each is kept as written.</summary>
    [Fact]
    public void TwoSpellingsOfOneMoleculeFallOnOneSideOfTheSplit()
    {
        var molecules = Enumerable.Range(1, 80).Select(n => (Forward: new string('C', n) + "O", Backward: "O" + new string('C', n))).ToList();
        string smi = Path.Combine(TestData.TempDirectory(), "spellings.smi");
        File.WriteAllLines(smi, molecules.SelectMany(m => new[] { m.Forward, m.Backward }));
        string dir = TestData.TempDirectory();
        DataPreparation.Prepare(smi, CorpusKind.Smiles, dir, 0.3, seed: 5);
        var vocabulary = SmilesVocabulary.Load(Path.Combine(dir, SmilesVocabulary.FileName));
        List<string> Side(string name) => [.. ReadAll(Path.Combine(dir, name)).Select(d => vocabulary.Decode(d.Select(t => (long)t))!)];
        var (train, valid) = (Side("train"), Side("valid"));
        Assert.Equal(160, train.Count + valid.Count);
        Assert.All(molecules, m => Assert.Equal(train.Contains(m.Forward), train.Contains(m.Backward)));
        Assert.InRange(valid.Count, 20, 80);
        // Keyed by the text as written, some pairs would have been split: the test would pass without the rule otherwise.
        Assert.Contains(molecules, m => StatelessRandom.Unit(5, DataPreparation.ContentKey(m.Forward)) < 0.3 != StatelessRandom.Unit(5, DataPreparation.ContentKey(m.Backward)) < 0.3);
    }

    /// <summary>SMILES RDKit cannot read would teach the model to write them: left out, counted, the first named.</summary>
    [Fact]
    public void UnreadableSmilesAreLeftOutAndCounted()
    {
        string smi = Path.Combine(TestData.TempDirectory(), "mixed.smi");
        File.WriteAllLines(smi, ["CCO", "C1CC", "c1cccc1", "CCN"]);
        string dir = TestData.TempDirectory();
        var corpus = DataPreparation.Prepare(smi, CorpusKind.Smiles, dir, 0, seed: 0);
        var vocabulary = SmilesVocabulary.Load(Path.Combine(dir, SmilesVocabulary.FileName));
        Assert.Equal(["CCO", "CCN"], ReadAll(Path.Combine(dir, "train")).Select(d => vocabulary.Decode(d.Select(t => (long)t))));
        Assert.Equal(2, corpus.Unreadable);
        Assert.StartsWith($"{smi}:2: 'C1CC' (", corpus.FirstUnreadable);
        Assert.Equal(2, System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "summary.json")))!["skipped_unreadable"]!.GetValue<long>());
        // A line the tokenizer cannot split, RDKit's molecule (ring bond %(100)) or not ("CC[Xe"), is one more left out,
        // not the end of the corpus.
        File.WriteAllLines(smi, ["CCO", "C%(100)CCCCC%(100)", "CC[Xe", "CCN"]);
        string split = TestData.TempDirectory();
        var splitCorpus = DataPreparation.Prepare(smi, CorpusKind.Smiles, split, 0, seed: 0);
        Assert.Equal(2, splitCorpus.Unreadable);
        Assert.StartsWith($"{smi}:2: 'C%(100)CCCCC%(100)' (", splitCorpus.FirstUnreadable);
        Assert.Contains("no token covers '%' at position 2", splitCorpus.FirstUnreadable);
        Assert.Equal(2, splitCorpus.Train.Documents);
        File.WriteAllLines(smi, ["C1CC", "C(C"]);
        string none = TestData.TempDirectory();
        Assert.Contains("no molecule is left to train on: 2 do not read as molecules or as SMILES tokens (the first: ", Assert.Throws<BioForgeException>(() => DataPreparation.Prepare(smi, CorpusKind.Smiles, none, 0, seed: 0)).Message);
        // Both reasons at once are both named.
        File.WriteAllLines(smi, ["C1CC", "[U]"]);
        var both = Assert.Throws<BioForgeException>(() => DataPreparation.Prepare([smi], CorpusKind.Smiles, TestData.TempDirectory(), 0, seed: 0,
            vocabulary: Path.Combine(Repository.Root, "models", "smiles-llama-small"))).Message;
        Assert.Contains("1 do not read as molecules or as SMILES tokens", both);
        Assert.Contains("1 cannot be written with the vocabulary of --vocab (the first unknown token: ", both);
        Assert.Empty(Directory.EnumerateFileSystemEntries(none));
    }

    [Fact]
    public void BadInputStopsWithTheLineAndLeavesNoCorpus()
    {
        string fasta = Path.Combine(TestData.TempDirectory(), "bad.fasta");
        File.WriteAllText(fasta, ">a\nMKT\n>b\nMK<foo>\n");
        string dir = TestData.TempDirectory();
        var e = Assert.Throws<BioForgeException>(() => DataPreparation.Prepare(fasta, CorpusKind.Protein, dir, 0.1, seed: 0));
        Assert.Contains("bad.fasta:4: record 'b': invalid residue '<'", e.Message);
        Assert.Empty(Directory.GetFiles(dir));
        // A folder the preparation made itself goes with the failure; one that was there stays (empty, as above).
        string made = Path.Combine(TestData.TempDirectory(), "corpus");
        Assert.Throws<BioForgeException>(() => DataPreparation.Prepare(fasta, CorpusKind.Protein, made, 0.1, seed: 0));
        Assert.False(Directory.Exists(made), "the corpus folder was left behind");
        // The parents it made on the way go too; the one that was there stays.
        string parent = TestData.TempDirectory(), nested = Path.Combine(parent, "x", "y", "corpus");
        Assert.Throws<BioForgeException>(() => DataPreparation.Prepare(fasta, CorpusKind.Protein, nested, 0.1, seed: 0));
        Assert.Empty(Directory.EnumerateFileSystemEntries(parent));
        // A parent another run has written into since (parallel runs under one new folder) stays, with that run's files.
        string made2 = Path.Combine(parent, "a"), run = Path.Combine(made2, "b", "run"), other = Path.Combine(made2, "other");
        Directory.CreateDirectory(run);
        Directory.CreateDirectory(other);
        RunDirectory.Undo(run, created: made2);
        Assert.False(Directory.Exists(Path.Combine(made2, "b")));
        Assert.True(Directory.Exists(other), "another run's folder went with the failed one");
        // Refused after the token stores are complete (no molecule fits --vocab): a folder that was there is left empty.
        string smi = Path.Combine(TestData.TempDirectory(), "odd.smi");
        File.WriteAllText(smi, "[U]\n[Xe]\n");
        string empty = TestData.TempDirectory();
        Assert.Contains("no molecule is left to train on: 2 cannot be written with the vocabulary of --vocab", Assert.Throws<BioForgeException>(() => DataPreparation.Prepare([smi], CorpusKind.Smiles, empty, 0.1, seed: 0,
            vocabulary: Path.Combine(Repository.Root, "models", "smiles-llama-small"))).Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(empty));
        // An empty SMILES cell would train as a molecule of no atoms.
        string table = Path.Combine(TestData.TempDirectory(), "cells.csv");
        File.WriteAllText(table, "id,smiles\na,CCO\nb,\nc,c1ccccc1\n");
        Assert.EndsWith("cells.csv:3: empty SMILES", Assert.Throws<BioForgeException>(() => DataPreparation.Prepare([table], CorpusKind.Smiles, TestData.TempDirectory(), 0.1, seed: 0)).Message);
    }

    /// <summary>A corpus is not prepared over another: the runs trained on it would read other documents and splits.</summary>
    [Fact]
    public void APreparedCorpusIsNotOverwritten()
    {
        string fasta = Path.Combine(TestData.TempDirectory(), "p.fasta");
        File.WriteAllText(fasta, ">a\nMKT\n>b\nMKV\n");
        string dir = TestData.TempDirectory();
        DataPreparation.Prepare(fasta, CorpusKind.Protein, dir, 0, seed: 0);
        var before = Directory.GetFiles(dir).ToDictionary(f => f, File.ReadAllBytes);
        File.WriteAllText(fasta, ">c\nMKW\n");
        var e = Assert.Throws<BioForgeException>(() => DataPreparation.Prepare(fasta, CorpusKind.Protein, dir, 0, seed: 0));
        Assert.Equal($"--out {dir} is not empty; remove it or choose another directory", e.Message);
        Assert.Equal(before.Keys.Order(), Directory.GetFiles(dir).Order());
        foreach (var (file, bytes) in before) Assert.Equal(bytes, File.ReadAllBytes(file));
    }
}
