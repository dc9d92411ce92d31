using System.Text.Json;
using System.Text.Json.Nodes;
using BioForge.IO;
using BioForge.Models.Llama;

namespace BioForge.Tests;

/// <summary>The commands end to end, in process: outputs on good input, one clear line and exit 2 on bad input.</summary>
public sealed class CliTests
{
    /// <summary>A command in process on the CPU with two threads: its exit code, standard output and standard error.</summary>
    internal static (int Code, string Out, string Err) Run(params string[] args)
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

    /// <summary>Inputs an audit found named vaguely or taken silently: each refused by its option or file, or said.</summary>
    [Fact]
    public void BadInputsAreNamedByTheirOptionOrFile()
    {
        string dir = TestData.TempDirectory();
        string smilesModel = Path.Combine(Repository.Root, "models", "smiles-llama-small"), proteinModel = Path.Combine(Repository.Root, "models", "protein-llama-small");
        string molecules = Path.Combine(dir, "a.smi");
        AssertFails(Run("generate", "--model", smilesModel, "--n", "2", "--prompt", "CC O", "--out", molecules), "error: --prompt: SMILES 'CC O'", molecules);
        AssertFails(Run("generate", "--model", proteinModel, "--n", "2", "--prompt", "MK1", "--out", Path.Combine(dir, "a.fasta")),
            "error: --prompt: protein prompt 'MK1': invalid residue '1' at position 3", Path.Combine(dir, "a.fasta"));
        AssertFails(Run("fill-mask", "--model", TestData.EsmTiny, "--seq", "MK1<mask>"), "error: --seq: invalid residue '1' at position 3");
        string proteins = Fasta(">a\nMKTAYIAKQR\n");
        AssertFails(Run("protein", "gen-eval", "--generated", proteins, "--reference", proteins, "--esm", "none"), $"--reference {proteins} is also --generated");

        string table = Path.Combine(dir, "m.csv");
        File.WriteAllText(table, "mutant,variant,DMS_score\nK2R,K2R,1\n");
        string scores = Path.Combine(dir, "s.csv");
        AssertFails(Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--in", table, "--out", scores), "the header names 'mutant' (column 1) and 'variant' (column 2)", scores);
        var scanned = Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKXAYIAK", "--scan", "--out", scores);
        Assert.True(scanned.Code == 0, scanned.Err);
        Assert.Contains("note: --scan leaves out 1 site whose residue is not one of the 20 amino acids: X3", scanned.Err);
        // A header with spaces after its commas lost its score column without a word; a name with a comma broke the output's header.
        File.WriteAllText(table, "mutant, DMS_score\nM1A, 0.5\nK2R, 1.2\nT3S, -1\n");
        var spaced = Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--in", table, "--out", scores);
        Assert.True(spaced.Code == 0, spaced.Err);
        Assert.Equal("mutant,esm_score,DMS_score", File.ReadLines(scores).First());
        Assert.Equal(0, Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--in", table, "--score-column", " DMS_score", "--out", scores).Code); // the old workaround still works
        string tsv = Path.Combine(dir, "v.tsv");
        File.WriteAllText(tsv, "mutant\tfit, log\nM1A\t0.5\nK2R\t1.2\n");
        Assert.Equal(0, Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--in", tsv, "--score-column", "fit, log", "--out", scores).Code);
        Assert.Equal("mutant,esm_score,\"fit, log\"", File.ReadLines(scores).First());

        File.WriteAllText(molecules, "CCO\n");
        string hits = Path.Combine(dir, "hits.csv");
        AssertFails(Run("screen", "--target", "ABL1", "--library", molecules, "--out", hits, "--allow-alert", "NotARule"), "error: --allow-alert: alert 'NotARule' is not a rule", hits);
        AssertFails(Run("screen", "--target", dir, "--library", molecules, "--out", hits), $"target: {dir} is a folder", hits);
    }

    /// <summary>
    /// Before any work, an output that is one of the command's inputs (read, then overwritten) or its other output, a
    /// file output naming a folder, a file written beside an output, and a second output that cannot be written are
    /// refused by option name.
    /// </summary>
    [Fact]
    public void OutputsAreNeitherInputsNorFoldersNorEachOther()
    {
        string dir = TestData.TempDirectory();
        string fasta = Fasta(">a\nMKTAYIAKQR\n");
        string before = File.ReadAllText(fasta);
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", fasta, "--out", fasta), $"--out {fasta} is also --in");
        Assert.Equal(before, File.ReadAllText(fasta));
        // The same file reached through a link to its folder, or a link to the file itself (it was overwritten).
        string alias = Path.Combine(dir, "alias"), linked = Path.Combine(dir, "linked.fasta");
        Directory.CreateSymbolicLink(alias, Path.GetDirectoryName(fasta)!);
        File.CreateSymbolicLink(linked, fasta);
        string throughAlias = Path.Combine(alias, Path.GetFileName(fasta));
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", throughAlias, "--out", fasta), $"--out {fasta} is also --in");
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", fasta, "--out", linked), $"--out {linked} is also --in");
        Assert.Equal(before, File.ReadAllText(fasta));
        // An .npy's record ids go to a file beside it (emb.npy -> emb.ids.txt): that file is checked like an output.
        string ids = Path.Combine(dir, "emb.ids.txt");
        File.WriteAllText(ids, before);
        string npy = Path.Combine(dir, "emb.npy");
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", ids, "--out", npy), $"--out {npy}'s ids file {ids} is also --in", npy);
        Assert.Equal(before, File.ReadAllText(ids));
        string map = Path.Combine(dir, "c.csv");
        AssertFails(Run("contacts", "--model", TestData.EsmTiny, "--seq", "MKTAYIAKQR", "--out", map, "--png", map), $"--png {map} is also --out", map);
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", fasta, "--out", dir), $"--out {dir}: is a folder; name a file");
        string notYet = Path.Combine(dir, "new") + "/"; // a folder's name, even before it exists: refused before the work, not after
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", fasta, "--out", notYet), $"--out {notYet}: is a folder; name a file");
        // A file of one format under another's name is refused, not written as CSV or HTML whatever its extension.
        string json = Path.Combine(dir, "props.json"), smiles = Path.Combine(dir, "m.smi");
        File.WriteAllText(smiles, "CCO\n");
        var chemError = new StringWriter();
        int code = Cli.Cli.Run(["chem", "props", "--in", smiles, "--out", json], new StringWriter(), chemError); // no --device: RDKit alone
        AssertFails((code, "", chemError.ToString()), $"--out {json}: writes CSV; name a .csv file", json);
        AssertFails(Run("screen", "--target", "MKTAYIAKQR", "--library", smiles, "--out", Path.Combine(dir, "hits.csv"), "--report", Path.Combine(dir, "r.pdf")),
            $"--report {Path.Combine(dir, "r.pdf")}: writes HTML; name a .html or .htm file", Path.Combine(dir, "hits.csv"));
        // The user's actives are an input too (the hits table overwrote them), and a variant map an output checked before the scoring.
        string actives = Path.Combine(dir, "actives.smi");
        File.WriteAllText(actives, "CCO\n");
        AssertFails(Run("screen", "--target", "MKTAYIAKQR", "--library", smiles, "--actives", actives, "--out", actives), $"--out {actives} is also --actives");
        Assert.Equal("CCO\n", File.ReadAllText(actives));
        string scores = Path.Combine(dir, "s.csv"), folder = Path.Combine(dir, "map.svg");
        Directory.CreateDirectory(folder);
        AssertFails(Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAKQR", "--mutations", "Y5G", "--out", scores, "--map", folder), $"--map {folder}: is a folder; name a file", scores);
        string file = Path.Combine(dir, "f");
        File.WriteAllText(file, "");
        AssertFails(Run("contacts", "--model", TestData.EsmTiny, "--seq", "MKTAYIAKQR", "--out", map, "--png", Path.Combine(file, "p.png")), $"--png {Path.Combine(file, "p.png")}: {file} is a file, not a folder", map);
        var error = new StringWriter();
        Assert.Equal(2, Cli.Cli.Run(["quickstart", "--out", file, "--steps", "1"], new StringWriter(), error)); // it takes no --device
        Assert.StartsWith($"error: --out {file}: is a file; name a folder", error.ToString());

        // A folder or an empty path given for a file input is named as such (not "file not found").
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", dir, "--out", Path.Combine(dir, "e.npy")), $"--in {dir}: is a folder; name a file");
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", "", "--out", Path.Combine(dir, "e.npy")), "--in: an empty path; name a file");

        // A file of the model folder a command reads (its weights, its vocabulary) is an input too; a new file beside them is not.
        string model = Path.Combine(dir, "model");
        Directory.CreateDirectory(model);
        foreach (string name in Directory.GetFiles(TestData.EsmTiny)) File.Copy(name, Path.Combine(model, Path.GetFileName(name)));
        string weights = Path.Combine(model, "model.safetensors");
        long size = new FileInfo(weights).Length;
        AssertFails(Run("embed", "--model", model, "--in", fasta, "--out", weights), $"--out {weights} is a file of the --model folder the command reads");
        Assert.Equal(size, new FileInfo(weights).Length);
        AssertFails(Run("contacts", "--model", model, "--seq", "MKTAYIAKQR", "--out", map, "--png", model), $"--png {model} is the --model folder the command reads", map);
        Assert.Equal(0, Run("embed", "--model", model, "--in", fasta, "--out", Path.Combine(model, "emb.npy")).Code);
        // Several layers are written as NAME.layerL.npy: a name that is the input is refused too.
        string layerInput = Path.Combine(dir, "emb.layer1.npy");
        File.Copy(fasta, layerInput);
        AssertFails(Run("embed", "--model", model, "--in", layerInput, "--out", Path.Combine(dir, "emb.npy"), "--layer", "1", "--layer", "-1"),
            $"writes {layerInput}, which the command reads");
        Assert.Equal(before, File.ReadAllText(layerInput));
        string smilesModel = Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small");
        AssertFails(Run("generate", "--model", smilesModel, "--n", "2", "--out", Path.Combine(dir, "gen.fasta")), "a SMILES model writes one SMILES a line (name a .smi file)");
    }

    /// <summary>A SMILES model embeds a molecule file (names from the file, else the SMILES), each SMILES as written:
    /// the same vectors as the SMILES written as FASTA records, which was the only way in before.</summary>
    [Fact]
    public void ASmilesModelEmbedsAMoleculeFile()
    {
        string dir = TestData.TempDirectory(), model = Path.Combine(Repository.Root, "models", "smiles-llama-small");
        File.WriteAllLines(Path.Combine(dir, "m.smi"), ["CC(=O)Oc1ccccc1C(=O)O aspirin", "CCO"]);
        File.WriteAllText(Path.Combine(dir, "m.csv"), "name,smiles\naspirin,CC(=O)Oc1ccccc1C(=O)O\nethanol,CCO\n");
        File.WriteAllText(Path.Combine(dir, "m.fasta"), ">aspirin\nCC(=O)Oc1ccccc1C(=O)O\n>CCO\nCCO\n");
        foreach (string input in new[] { "m.smi", "m.csv", "m.fasta" })
        {
            var run = Run("embed", "--model", model, "--in", Path.Combine(dir, input), "--out", Path.Combine(dir, input + ".out.csv"));
            Assert.True(run.Code == 0, run.Err);
        }
        var fromFasta = File.ReadAllLines(Path.Combine(dir, "m.fasta.out.csv"));
        Assert.Equal(fromFasta, File.ReadAllLines(Path.Combine(dir, "m.smi.out.csv")));
        var fromTable = File.ReadAllLines(Path.Combine(dir, "m.csv.out.csv"));
        Assert.Equal(["aspirin", "ethanol"], fromTable.Skip(1).Select(l => l[..l.IndexOf(',')]));
        Assert.Equal(fromFasta.Skip(1).Select(l => l[l.IndexOf(',')..]), fromTable.Skip(1).Select(l => l[l.IndexOf(',')..]));
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", Path.Combine(dir, "m.smi"), "--out", Path.Combine(dir, "esm.csv")),
            "a molecule file, and ESM-2 embeds proteins", Path.Combine(dir, "esm.csv"));
        AssertFails(Run("embed", "--model", Path.Combine(Repository.Root, "models", "protein-llama-small"), "--in", Path.Combine(dir, "m.smi"), "--out", Path.Combine(dir, "p.csv")),
            "a molecule file, and this protein decoder embeds proteins", Path.Combine(dir, "p.csv"));
        // A token outside the vocabulary ('.', [Xe]) was embedded as <unk>, written as if it were the molecule's vector.
        File.WriteAllLines(Path.Combine(dir, "salt.smi"), ["CCO ethanol", "CCO.Cl salt"]);
        AssertFails(Run("embed", "--model", model, "--in", Path.Combine(dir, "salt.smi"), "--out", Path.Combine(dir, "salt.csv")),
            "record 'salt': 1 token(s) are outside the model's vocabulary", Path.Combine(dir, "salt.csv"));
    }

    /// <summary>A batch larger than memory ends with one line that says what ran out and what to lower, not the
    /// allocator's words alone.</summary>
    [Fact]
    public void RunningOutOfMemoryNamesTheBatchSizes()
    {
        var error = new StringWriter();
        Assert.Equal(2, Cli.Cli.Run(["bench", "embed", "--size", "8M", "--batch", "2000000000", "--length", "512", "--steps", "1", "--warmup", "0", "--device", "cpu"], new StringWriter(), error));
        Assert.StartsWith("error: the device ran out of memory; a smaller batch needs less (this command's --batch", error.ToString());
        Assert.Contains("LibTorch: ", error.ToString());
        Assert.Single(error.ToString().Trim().Split('\n'));
    }

    /// <summary>
    /// Number options refuse NaN and ±Infinity by name (a NaN temperature decoded junk; a NaN validation fraction passed
    /// the range check and failed after the corpus was written), and generate's temperature keeps the service's bounds.
    /// </summary>
    [Fact]
    public void NumberOptionsMustBeFinite()
    {
        string dir = TestData.TempDirectory();
        string smiles = Path.Combine(dir, "in.smi");
        File.WriteAllText(smiles, "CCO\nc1ccccc1\n");
        string model = Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small");
        string generated = Path.Combine(dir, "g.smi");
        AssertFails(Run("generate", "--model", model, "--n", "2", "--temperature", "NaN", "--out", generated), "--temperature NaN: must be a finite number", generated);
        AssertFails(Run("generate", "--model", model, "--n", "2", "--temperature", "1e308", "--out", generated), "--temperature must be 0 to 100", generated);
        AssertFails(Run("generate", "--model", model, "--n", "2", "--temperature", "-0.5", "--out", generated), "--temperature must be 0 to 100", generated);
        AssertFails(Run("generate", "--model", model, "--n", "2", "--max-length", "100000", "--out", generated),
            "--max-length 100000: the model takes 256 positions, 1 of them for its begin token, so at most 255 tokens follow", generated);
        // The prompt takes positions too (the samples were cut short of a minimum they could never reach).
        AssertFails(Run("generate", "--model", model, "--n", "2", "--prompt", "CCO", "--max-length", "255", "--out", generated),
            "--max-length 255: the model takes 256 positions, 4 of them for its begin token and the prompt, so at most 252 tokens follow", generated);
        AssertFails(Run("generate", "--model", model, "--n", "2", "--prompt", "CCO", "--max-length", "252", "--min-length", "253", "--out", generated),
            "--min-length 253", generated);
        // A prompt after which the grammar allows only the end cannot give a minimum.
        AssertFails(Run("generate", "--model", model, "--n", "2", "--prompt", "O=C=O", "--min-length", "3", "--out", generated),
            "--min-length 3: after --prompt O=C=O the smiles grammar allows only the end; lower --min-length, or --grammar none", generated);
        // Valid-only keeps molecules that ended: when the length limit cut them, the message says so, not "not trained well enough".
        AssertFails(Run("generate", "--model", model, "--n", "2", "--valid-only", "--max-length", "1", "--out", generated),
            "only 0 of 2 requested molecules were valid after 200 samples; 200 were cut at the length limit (1 tokens): raise --max-length", generated);
        // Without --valid-only, samples the limit cut are written and counted, and the summary names how many.
        var cut = Run("generate", "--model", model, "--n", "3", "--max-length", "1", "--out", generated);
        Assert.Equal(0, cut.Code);
        Assert.Contains("; 3 cut at --max-length 1 (unfinished)", cut.Out);
        File.Delete(generated);
        // At temperature 0 every sample is the same sequence: one invalid one ends the draw (it decoded it 500 times).
        AssertFails(Run("generate", "--model", model, "--n", "5", "--temperature", "0", "--valid-only", "--prompt", "c1cccc1", "--grammar", "none", "--out", generated),
            "only 0 of 5 requested molecules were valid after 5 samples", generated);
        AssertFails(Run("generate", "--model", model, "--n", "2", "--min-length", "-1", "--out", generated), "--min-length must be 0 or more (got -1)", generated);
        AssertFails(Run("generate", "--model", model, "--n", "2", "--top-k", "-2", "--out", generated), "--top-k must be −1 or 0 (all tokens) or positive (got -2)", generated);
        AssertFails(Run("generate", "--model", model, "--n", "2", "--min-length", "20", "--max-length", "10", "--out", generated), "--min-length 20 is more than the 10 tokens a sample may have (--max-length 10)", generated);
        AssertFails(Run("generate", "--model", model, "--n", "2", "--min-length", "200", "--out", generated),
            "--min-length 200 is more than the 128 tokens a sample may have (--max-length's default for this model: raise it)", generated);
        AssertFails(Run("generate", "--model", model, "--n", "2", "--top-p", "NaN", "--out", generated), "--top-p NaN: must be a finite number", generated);
        AssertFails(Run("generate", "--model", model, "--n", "1", "--prompt", "c1cc1", "--valid-only", "--out", generated),
            "the prompt 'c1cc1' may start no valid molecule", generated);
        AssertFails(Run("generate", "--model", model, "--n", "2", "--prompt", "C)", "--out", generated),
            "--prompt: the prompt's token 2 (')') is not allowed there by the smiles grammar; --grammar none continues it anyway", generated);
        var negative = new StringWriter();
        Assert.Equal(2, Cli.Cli.Run(["embed", "--model", TestData.EsmTiny, "--in", Fasta(">a\nMK\n"), "--out", Path.Combine(dir, "e.csv"), "--threads", "-1"], new StringWriter(), negative));
        Assert.StartsWith("error: --threads -1: must be 0 (the default) or more", negative.ToString());
        var huge = new StringWriter();
        Assert.Equal(2, Cli.Cli.Run(["chem", "similar", "--index", Fasta(">a\nMK\n"), "--query", "CCO", "--threads", "2147483647"], new StringWriter(), huge));
        Assert.StartsWith("error: --threads 2147483647: at most", huge.ToString());
        // The parser's own refusals in the CLI's words, on one line: no .NET type names, a choice's names together.
        AssertFails(Run("generate", "--model", model, "--n", "two", "--out", generated), "error: --n two: expected a whole number up to 2,147,483,647 (see 'bioforge generate --help')", generated);
        // A mistyped command is named, with the nearest one (the parser said "Required command was not provided").
        AssertFails(Run("generat", "--model", model, "--n", "2", "--out", generated), "error: unknown command 'generat'; did you mean 'generate'? (commands: embed, ", generated);
        AssertFails(Run("data", "prep", smiles), "error: unknown command 'prep'; did you mean 'prepare'? (commands: prepare) (see 'bioforge data --help')");
        AssertFails(Run("generate", "--model", model, "--n", "2", "--temperature", "hot", "--out", generated), "--temperature hot: expected a number", generated);
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(">a\nMK\n"), "--out", Path.Combine(dir, "e.csv"), "--pool", "max"),
            "error: --pool max: must be one of mean, cls, none (see 'bioforge embed --help')");
        string prepared = Path.Combine(dir, "prepared");
        var result = Cli.Cli.Run(["data", "prepare", "--in", smiles, "--tokenizer", "smiles", "--out", prepared, "--validation-fraction", "NaN"], new StringWriter(), new StringWriter());
        Assert.Equal(2, result);
        Assert.False(Directory.Exists(prepared), "data prepare left its output folder behind");
        // A few molecules at the default 1 %: none fell to validation, which is said now, not first by train.
        var (prepareOut, prepareErr) = (new StringWriter(), new StringWriter());
        Assert.True(Cli.Cli.Run(["data", "prepare", "--in", smiles, "--tokenizer", "smiles", "--out", prepared], prepareOut, prepareErr) == 0, prepareErr.ToString());
        Assert.Contains("valid: 0 documents", prepareOut.ToString());
        Assert.Contains("note: no document fell to validation (--validation-fraction 0.01 of ", prepareErr.ToString());
    }

    /// <summary>The benchmarks' inputs are checked by name: addresses, a library without one readable molecule, sizes.</summary>
    [Fact]
    public void BenchmarkInputsAreCheckedByName()
    {
        AssertFails(Plain("bench", "completions", "--url", "notaurl", "--rate", "1", "--requests", "1"), "--url notaurl: expected an http:// or https:// address");
        AssertFails(Plain("bench", "serve", "--url", "ftp://x", "--inputs", Fasta(">a\nMK\n"), "--requests", "1"), "--url ftp://x: expected an http:// or https:// address");
        // Nobody listening: a report of no answers, and a failing exit a script cannot take for a measurement.
        var nobody = Plain("bench", "serve", "--url", "http://127.0.0.1:9", "--inputs", Fasta(">a\nMK\n"), "--requests", "2");
        Assert.Equal(1, nobody.Code);
        Assert.Contains("\"ok\":0", nobody.Out);
        Assert.Contains("error: none of the 2 requests was answered 200", nobody.Err);
        string unreadable = Path.Combine(TestData.TempDirectory(), "bad.smi");
        File.WriteAllText(unreadable, "XYZ\nQQ\n");
        AssertFails(Plain("bench", "similarity", "--in", unreadable, "--threads", "1"), $"{unreadable}: none of its 2 molecules could be read");
        AssertFails(Plain("bench", "similarity", "--in", unreadable, "--copies", "2000000000"), "--copies 2000000000: must be 1 to 10,000");

        static (int Code, string Out, string Err) Plain(params string[] args) // commands without --device
        {
            var output = new StringWriter();
            var error = new StringWriter();
            return (Cli.Cli.Run(args, output, error), output.ToString(), error.ToString());
        }
    }

    /// <summary>The quickstart replaces an earlier quickstart's directory, never one holding other work.</summary>
    [Fact]
    public void QuickstartNeverDeletesADirectoryItDidNotWrite()
    {
        string output = TestData.TempDirectory();
        File.WriteAllText(Path.Combine(output, "keep.txt"), "a week of work");
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        int code = Cli.Cli.Run(["quickstart", "--out", output], stdout, stderr);
        AssertFails((code, stdout.ToString(), stderr.ToString()), "holds files that are not an earlier quickstart's");
        Assert.True(File.Exists(Path.Combine(output, "keep.txt")));

        // A library without one readable molecule is refused before the optimization (it used to report "0 screened").
        string library = Path.Combine(TestData.TempDirectory(), "bad.smi");
        File.WriteAllText(library, "XYZ\nQQ\n");
        string fresh = Path.Combine(TestData.TempDirectory(), "quickstart");
        (stdout, stderr) = (new StringWriter(), new StringWriter());
        code = Cli.Cli.Run(["quickstart", "--out", fresh, "--library", library], stdout, stderr);
        AssertFails((code, stdout.ToString(), stderr.ToString()), $"--library {library}: none of its 2 molecules could be read");
        Assert.False(Directory.Exists(fresh));
    }

    /// <summary>
    /// A stop asked for after the optimization (while the prior is sampled for comparison, then the library screened)
    /// ends the quickstart there with nothing written, as its notice says; it used to run on and write everything.
    /// </summary>
    [Fact]
    public void AQuickstartStoppedAfterItsOptimizationWritesNothing()
    {
        string output = Path.Combine(TestData.TempDirectory(), "quickstart");
        using var stop = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() => BioForge.Discovery.Quickstart.Run(new BioForge.Discovery.QuickstartOptions { Output = output, Steps = 1, Threads = 2 },
            message => { if (message.StartsWith("sampling", StringComparison.Ordinal)) stop.Cancel(); }, cancellation: stop.Token));
        Assert.False(Directory.Exists(output), "a stopped quickstart wrote its folder");
        Assert.Empty(Directory.GetFileSystemEntries(Path.GetDirectoryName(output)!));
    }

    /// <summary>The README's workflow end to end on a small library and one learning step: candidates and report
    /// written; run again over the same folder, the earlier quickstart is replaced, leaving nothing beside it.</summary>
    [Fact]
    public async Task QuickstartWritesItsReportAndReplacesAnEarlierOne()
    {
        string parent = TestData.TempDirectory(), output = Path.Combine(parent, "quickstart"), library = Path.Combine(parent, "library.smi");
        File.WriteAllLines(library, ["CC(=O)Oc1ccccc1C(=O)O aspirin", "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1 imatinib",
            "CN1CCN(CC1)c1ccc(cc1)C(=O)Nc1ccccc1", "O=C(O)CCc1ccccc1", "c1ccc2[nH]ccc2c1"]);
        string actives = Path.Combine(parent, "actives.smi");
        File.WriteAllLines(actives, ["c1ccc2[nH]ccc2c1 my_indole"]);
        for (int run = 1; run <= 2; run++)
        {
            // Its own process, started in a folder of the user's, not the repository: the embedded defaults (models/…,
            // data/…) are found from the application's folder.
            var start = new System.Diagnostics.ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "BioForge.Cli"))
            { WorkingDirectory = parent, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string arg in new[] { "quickstart", "--out", output, "--library", library, "--steps", "1", "--threads", "2" }) start.ArgumentList.Add(arg);
            // The second run brings a chemist's constraints: a weight limit, a covalent warhead allowed, their own actives.
            if (run == 2)
                foreach (string arg in new[] { "--limit", "mw<=400", "--allow-alert", "Michael_acceptor_1", "--actives", actives, "--require", "c1ccccc1", "--in-domain" }) start.ArgumentList.Add(arg);
            using var process = System.Diagnostics.Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            string stderr = await process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            Assert.True(process.ExitCode == 0, $"run {run}: {stderr}{await stdout}");
            var candidates = File.ReadAllLines(Path.Combine(output, "candidates.csv"));
            Assert.StartsWith("rank,source,id,smiles,score,", candidates[0]);
            Assert.EndsWith(",nearest_training_ligand_similarity", candidates[0]);
            var sources = candidates.Skip(1).Select(line => line.Split(',')[1]).ToHashSet();
            Assert.Equal(["library", "optimized"], sources.Order()); // the screened library and the designed molecules, ranked together
            if (run == 1)
            {
                // Imatinib is its own nearest known binder, with what Davis measured on ABL1 (Kd 1.1 nM), not on ABL1p (7.68).
                var imatinib = Csv.ReadRows(Path.Combine(output, "candidates.csv"), out var columns).Select(r => columns.Zip(r.Fields).ToDictionary(p => p.First, p => p.Second))
                    .Single(r => r["id"] == "imatinib");
                Assert.Equal(("1.000", "8.959"), (imatinib["nearest_binder_similarity"], imatinib["nearest_binder_measured_pkd"]));
                // "optimized #N" is the molecule's rank in optimize/ranked.csv (its place in the diverse pick, before),
                // there written as sampled and here as its neutral parent.
                var ranked = Csv.ReadRows(Path.Combine(output, "optimize", "ranked.csv"), out var rankedColumns)
                    .ToDictionary(r => "optimized #" + r.Fields[rankedColumns.IndexOf("rank")], r => r.Fields[rankedColumns.IndexOf("smiles")]);
                var optimizedRows = Csv.ReadRows(Path.Combine(output, "candidates.csv"), out var candidateColumns).Select(r => candidateColumns.Zip(r.Fields).ToDictionary(p => p.First, p => p.Second))
                    .Where(r => r["source"] == "optimized").ToList();
                Assert.NotEmpty(optimizedRows);
                foreach (var row in optimizedRows)
                {
                    using var sampled = BioForge.Chem.Molecule.FromSmiles(ranked[row["id"]]);
                    using var standardized = sampled.Standardized();
                    Assert.Equal(row["smiles"], (standardized ?? sampled).ToSmiles());
                }
            }
            string report = File.ReadAllText(Path.Combine(output, "report.html"));
            Assert.Contains("Drug candidates for ABL1", report);
            Assert.Contains("Best of the screened library", report); // shown apart too: designed molecules usually outrank it
            Assert.Contains("the target is ABL1, one of the 379 the affinity model trained on", report);
            // pKd counts twice, as scored (× is HTML-encoded); --in-domain adds the nearest training ligand's similarity.
            Assert.Contains(run == 1 ? "reverse-sigmoid(SA; 2–5), weighted 2 : 1 : 1, &#215; PAINS/Brenk filter"
                : "reverse-sigmoid(SA; 2–5), sigmoid(Tanimoto to the nearest of the model&#39;s 68 training ligands; 0.25–0.55), weighted 2 : 1 : 1 : 1, &#215; PAINS/Brenk filter", report);
            Assert.Contains("Best of the library: ", await stdout);
            Assert.Equal([output], Directory.GetDirectories(parent)); // replaced in place: no half-written sibling left
            // The stored settings name the folder as it now is, not the hidden one the run worked in: they run and resume again.
            foreach (string stored in new[] { "optimize_config.json", Path.Combine("optimize", "run_config.json"), Path.Combine("optimize", "report.html") })
                Assert.DoesNotContain(".tmp", File.ReadAllText(Path.Combine(output, stored)));
            Assert.Equal(Path.Combine(output, "target.fasta"), JsonNode.Parse(File.ReadAllText(Path.Combine(output, "optimize_config.json")))!["stages"]![0]!["components"]!.AsArray()
                .Select(c => c!["target"]?.GetValue<string>()).First(t => t is not null));
            Assert.Single(BioForge.Discovery.OptimizeConfig.Load(Path.Combine(output, "optimize", "run_config.json")).Stages); // derived values are not stored to be refused
            if (run == 2)
            {
                var rows = Csv.ReadRows(Path.Combine(output, "candidates.csv"), out var header).Select(r => header.Zip(r.Fields).ToDictionary(p => p.First, p => p.Second)).ToList();
                Assert.All(rows, r => Assert.True(double.Parse(r["mw"], System.Globalization.CultureInfo.InvariantCulture) <= 400, r["smiles"]));
                Assert.DoesNotContain(rows, r => r["id"] == "imatinib"); // 493.6
                using (var benzene = new BioForge.Chem.SmartsQuery("c1ccccc1"))
                    Assert.All(rows, r =>
                    {
                        using var molecule = BioForge.Chem.Molecule.FromSmiles(r["smiles"]);
                        Assert.True(molecule.HasMatch(benzene), r["smiles"]);
                    });
                Assert.Contains("× 0.5 without c1ccccc1 (candidates must have it)", System.Net.WebUtility.HtmlDecode(report));
                Assert.Contains("starting the optimization from 1 of the 1 actives", await stdout); // REINVENT's inception
                Assert.Contains("1 of yours (1 of them the optimization's starting points)", System.Net.WebUtility.HtmlDecode(report));
                var learning = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "optimize_config.json")))!["learning"]!;
                Assert.Equal(["c1ccc2[nH]ccc2c1"], learning["inception"]!.AsArray().Select(a => a!.GetValue<string>()));
                Assert.Equal("1.000", rows.Single(r => r["id"] == "line 5")["nearest_binder_similarity"]); // the user's indole
                Assert.False(string.IsNullOrEmpty(rows.Single(r => r["id"] == "line 5")["nearest_binder_name"]), "the user's binder is named, as screen names it");
                Assert.Equal("", rows.Single(r => r["id"] == "line 5")["nearest_binder_measured_pkd"]); // the user's: no measurement
                // Davis's binders come with what Davis measured (pKd 7 or more); imatinib, its own nearest, with its ABL1 value, not ABL1p's 7.68.
                Assert.All(rows.Where(r => r["nearest_binder_name"].StartsWith("PubChem CID ", StringComparison.Ordinal)),
                    r => Assert.True(double.Parse(r["nearest_binder_measured_pkd"], System.Globalization.CultureInfo.InvariantCulture) >= 7, r["smiles"]));
                Assert.Contains("&#215; limits (mw&lt;=400: 0 outside)", report);
                Assert.Contains("not counting Michael_acceptor_1", report);
                var components = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "optimize_config.json")))!["stages"]![0]!["components"]!.AsArray();
                Assert.Equal(["Michael_acceptor_1"], components.Single(c => c!["type"]!.GetValue<string>() == "filters")!["allow"]!.AsArray().Select(a => a!.GetValue<string>()));
                Assert.True(components.Single(c => c!["type"]!.GetValue<string>() == "mw")!["penalty"]!.GetValue<bool>());
                // --in-domain: the training ligands as screening reads them, imatinib's parent among them.
                var domain = components.Single(c => c!["type"]!.GetValue<string>() == "similarity")!;
                Assert.Equal("nearest training ligand", domain["name"]!.GetValue<string>());
                Assert.Contains("Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1", domain["smiles"]!.AsArray().Select(a => a!.GetValue<string>()));
                Assert.Contains("near the affinity model's 68 training ligands", await stdout);
            }
        }
    }

    /// <summary>A shipped default is the working directory's when it is there, else found above the application's folder
    /// (the affinity model is in the repository, not among the tests' copies); anything else stays as written.</summary>
    [Fact]
    public void ShippedDefaultsAreFoundFromTheApplicationsFolder()
    {
        string model = BioForge.IO.Shipped.Path("models/dti-davis");
        Assert.True(Path.IsPathRooted(model) && File.Exists(Path.Combine(model, "affinity_model.json")), model);
        Assert.Equal("models/no-such-model", BioForge.IO.Shipped.Path("models/no-such-model"));
    }

    /// <summary>A wait longer than .NET's timers take would fail on every request or at shutdown: refused at start, named.</summary>
    [Theory]
    [InlineData("--request-timeout-s", "1e7", "--request-timeout-s must be positive and at most 4294967")]
    [InlineData("--request-timeout-s", "0", "--request-timeout-s must be positive")]
    [InlineData("--max-delay-ms", "5e9", "--max-delay-ms must be 0 or more and at most 4294967294")]
    [InlineData("--shutdown-grace-s", "-1", "--shutdown-grace-s must be 0 or more")]
    public void ServeRefusesWaitsItCannotKeep(string option, string value, string expected) =>
        AssertFails(Run("serve", option, value, "--port", "0"), expected);

    /// <summary>An address this machine does not have (TEST-NET-3), or a name, is named with the options that gave it.</summary>
    [Fact]
    public void ServeNamesAnAddressItCannotListenOn()
    {
        AssertFails(Run("serve", "--models", TestData.EsmTiny, "--host", "203.0.113.1", "--port", "0", "--allowed-hosts", "x"), "--host 203.0.113.1 --port 0: cannot listen there");
        // A name Kestrel cannot bind (a typo of localhost) was bound on every interface, open to the network.
        AssertFails(Run("serve", "--models", TestData.EsmTiny, "--host", "localhos", "--port", "0"), "--host localhos: not an IP address");
        // `--api-key "$KEY"` with KEY unset started a server that answered every request 401.
        AssertFails(Run("serve", "--models", TestData.EsmTiny, "--port", "0", "--api-key", ""), "--api-key (or BIOFORGE_API_KEY) is empty");
        AssertFails(Run("serve", "--models", TestData.EsmTiny, "--port", "0", "--api-key", " k"), "starts or ends with a space");
        // A model named after one of the service's own queues would overwrite its metrics.
        string jobs = Path.Combine(TestData.TempDirectory(), "jobs"); // a queue on every device
        Directory.CreateSymbolicLink(jobs, TestData.EsmTiny);
        AssertFails(Run("serve", "--models", jobs, "--port", "0"), "a model named 'jobs' would share its metrics with the service's own 'jobs' queue");
    }

    [Theory]
    [InlineData("0")]
    [InlineData("1.5")]
    public void QuickstartRefusesAPickThresholdOutsideZeroToOne(string maxSimilarity)
    {
        string output = Path.Combine(TestData.TempDirectory(), "quickstart");
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        int code = Cli.Cli.Run(["quickstart", "--max-similarity", maxSimilarity, "--out", output], stdout, stderr);
        AssertFails((code, stdout.ToString(), stderr.ToString()), $"--max-similarity must be in (0, 1] (got {maxSimilarity})");
        Assert.False(Directory.Exists(output));
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
        Assert.Equal(["x", "y", "z"], JsonSerializer.Deserialize<string[]>(perResidue.Metadata["ids"])!); // the input's order, which tensor names lose
        // A record named as the header's metadata entry would have overwritten its own tensor's entry.
        string clash = Path.Combine(dir, "clash.safetensors");
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(">__metadata__ x\nMKT\n"), "--out", clash, "--pool", "none"), "record id '__metadata__' is the name safetensors keeps", clash);
    }

    /// <summary>Several --layer from one pass: one file per representation, each what a run for that layer alone writes.</summary>
    [Fact]
    public void EmbedWritesAFilePerLayerFromOnePass()
    {
        string dir = TestData.TempDirectory(), input = Fasta(">x\nMKTAYIAKQR\n>y\nGSHMLEDPV\n");
        var run = Run("embed", "--model", TestData.EsmTiny, "--in", input, "--out", Path.Combine(dir, "e.npy"), "--layer", "0", "--layer", "-1");
        Assert.True(run.Code == 0, run.Err);
        Assert.Contains($"-> {Path.Combine(dir, "e.layer0.npy")}, {Path.Combine(dir, "e.layer2.npy")} in", run.Out);
        foreach (var (layer, name) in new[] { ("0", "e.layer0"), ("-1", "e.layer2") })
        {
            string alone = Path.Combine(dir, $"alone{layer}.npy");
            Assert.Equal(0, Run("embed", "--model", TestData.EsmTiny, "--in", input, "--out", alone, "--layer", layer).Code);
            Assert.Equal(File.ReadAllBytes(alone), File.ReadAllBytes(Path.Combine(dir, name + ".npy")));
            Assert.Equal(["x", "y"], File.ReadAllLines(Path.Combine(dir, name + ".ids.txt")));
        }
        Assert.False(File.Exists(Path.Combine(dir, "e.npy")));
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", input, "--out", Path.Combine(dir, "d.npy"), "--layer", "2", "--layer", "-1"),
            "--layer 2 --layer -1: a representation is named twice (2, 2 counted from 0)", Path.Combine(dir, "d.layer2.npy"));
        // A run that fails midway leaves neither file nor the folder it made for them.
        string fresh = Path.Combine(dir, "fresh");
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", Fasta($">a\nMK\n>long\n{new string('A', 1100)}\n"), "--out", Path.Combine(fresh, "e.npy"), "--layer", "0", "--layer", "-1"),
            "record 'long' has 1100 residues");
        Assert.False(Directory.Exists(fresh), "the output folder was left behind");
    }

    /// <summary>A sequence past the model's length (1,024 residues for the tiny ESM-2) is refused, or with --truncate its first (end) or last (start) 1,024 are embedded: exactly those residues' embedding; or all of it in windows.</summary>
    [Fact]
    public void EmbedTruncatesALongSequenceWhenAsked()
    {
        string dir = TestData.TempDirectory();
        string body = string.Concat(Enumerable.Range(0, 1100).Select(i => "ACDEFGHIKLMNPQRSTVWY"[(i * 7 + i / 13) % 20]));
        string max = body[..1024], last = body[^1024..];
        var embedded = new Dictionary<string, float[]>();
        foreach (var (name, fasta, mode) in new[] { ("end", $">long\n{body}\n", "end"), ("start", $">long\n{body}\n", "start"), ("first", $">long\n{max}\n", "none"), ("last", $">long\n{last}\n", "none") })
        {
            string output = Path.Combine(dir, name + ".npy");
            var run = Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(fasta), "--out", output, "--truncate", mode);
            Assert.True(run.Code == 0, run.Err);
            Assert.Contains("(1024 residues read,", run.Out); // the cut ones too
            byte[] npy = File.ReadAllBytes(output);
            embedded[name] = [.. Enumerable.Range(0, 64).Select(k => BitConverter.ToSingle(npy, 128 + 4 * k))];
        }
        Assert.Equal(embedded["first"], embedded["end"]);
        Assert.Equal(embedded["last"], embedded["start"]);
        Assert.NotEqual(embedded["end"], embedded["start"]);
        // Per residue, each row names its residue's position in the whole sequence: the cut start's rows begin at 77.
        string perResidue = Path.Combine(dir, "r.csv");
        Assert.Equal(0, Run("embed", "--model", TestData.EsmTiny, "--in", Fasta($">long\n{body}\n"), "--out", perResidue, "--pool", "none", "--truncate", "start").Code);
        var rows = File.ReadAllLines(perResidue);
        Assert.Equal(1 + 1024, rows.Length);
        Assert.StartsWith($"long,77,{body[76]},", rows[1]);
        Assert.StartsWith($"long,1100,{body[1099]},", rows[^1]);
        // In windows the whole sequence is read: a row per residue (EsmEmbedderTests checks the values).
        Assert.Equal(0, Run("embed", "--model", TestData.EsmTiny, "--in", Fasta($">long\n{body}\n"), "--out", perResidue, "--pool", "none", "--truncate", "window").Code);
        rows = File.ReadAllLines(perResidue);
        Assert.Equal(1 + 1100, rows.Length);
        Assert.StartsWith($"long,1,{body[0]},", rows[1]);
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", Fasta($">long\n{body}\n"), "--out", Path.Combine(dir, "c.csv"), "--pool", "cls", "--truncate", "window"),
            "a <cls> vector per window", Path.Combine(dir, "c.csv"));
        AssertFails(Run("embed", "--model", TinyProteinModel.Directory, "--in", Fasta(">a\nMK\n"), "--out", Path.Combine(dir, "d.csv"), "--truncate", "end"), "--truncate is for ESM-2 models");
    }

    [Fact]
    public void EmbedRejectsBadInputWithOneLine()
    {
        string dir = TestData.TempDirectory();
        string output = Path.Combine(dir, "e.csv");
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(""), "--out", output), "no FASTA records", output);
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(">a\nMK\n>b\nMKZ9\n"), "--out", output), "in.fasta:4: record 'b': invalid residue '9' at column 4", output);
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(">a\nMKJAY\n"), "--out", output), "in.fasta:2: record 'a': invalid residue 'J' at column 3 (--unknown-as-unk reads letters outside ESM-2's alphabet as <unk>)", output);
        // With it, any letter; a special token spelled in a file is refused (it was read as one token and labelled as six).
        Assert.Equal(0, Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(">a\nMKJ*AY\n"), "--out", output, "--unknown-as-unk").Code); // an internal stop too
        var special = Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(">a\nMK<mask>TA\n"), "--out", Path.Combine(dir, "s.csv"), "--pool", "none", "--unknown-as-unk");
        AssertFails(special, "in.fasta:2: record 'a': invalid residue '<' at column 3", Path.Combine(dir, "s.csv"));
        Assert.DoesNotContain("(--unknown-as-unk reads", special.Err);
        // Two stops at the end: the reader leaves out the last, the other is a character like any (one row, not dropped again).
        var stops = Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(">a\nMKTA**\n"), "--out", Path.Combine(dir, "stops.csv"), "--pool", "none", "--unknown-as-unk");
        Assert.True(stops.Code == 0, stops.Err);
        Assert.Equal(6, File.ReadAllLines(Path.Combine(dir, "stops.csv")).Length); // the header, M K T A and the '*' read as <unk>
        // A decoder reads the same record's remaining '*' as a character too, which its alphabet lacks (it was dropped in silence).
        AssertFails(Run("embed", "--model", TinyProteinModel.Directory, "--in", Fasta(">a\nMKTA**\n"), "--out", Path.Combine(dir, "d.csv")), "record 'a': invalid residue '*'", Path.Combine(dir, "d.csv"));
        File.Delete(output);
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(">long\n" + new string('A', 1100) + "\n"), "--out", output), "in.fasta:1: record 'long' has 1100 residues; this model takes at most 1024", output);
        // A decoder's rotary positions run on past the trained ones without failing: refused like ESM-2's.
        int positions = LlamaConfig.FromJson(Path.Combine(TinyProteinModel.Directory, "config.json")).MaxPositionEmbeddings;
        AssertFails(Run("embed", "--model", TinyProteinModel.Directory, "--in", Fasta(">long\n" + new string('A', positions - 1) + "\n"), "--out", output),
            $"in.fasta:1: record 'long' has {positions + 1} tokens with its start and end tokens; this model takes at most {positions}", output);
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
        foreach (var position in rows.Skip(1).Select(r => r.Split('\t')).GroupBy(f => f[0]))
        {
            var probabilities = position.Select(f => double.Parse(f[3], System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(probabilities.OrderDescending(), probabilities); // ranked: most probable first
            Assert.All(probabilities, p => Assert.InRange(p, 0, 1));
            Assert.Equal(["1", "2", "3"], position.Select(f => f[1]));
        }
        // --out writes the same rows as CSV.
        string csv = Path.Combine(TestData.TempDirectory(), "fill.csv");
        Assert.Equal(0, Run("fill-mask", "--model", TestData.EsmTiny, "--seq", "MKT<mask>IAKQ<mask>", "--top-k", "3", "--out", csv).Code);
        Assert.Equal(rows.Select(r => r.Replace('\t', ',')), File.ReadAllLines(csv));
        AssertFails(Run("fill-mask", "--model", TestData.EsmTiny, "--seq", "MKTIAK"), "no <mask> token");
        // Positions count residues (a <mask> is one), and the message advises no flag fill-mask lacks.
        var bad = Run("fill-mask", "--model", TestData.EsmTiny, "--seq", "MK<mask>1");
        AssertFails(bad, "invalid residue '1' at position 4");
        Assert.DoesNotContain("--unknown-as-unk", bad.Err);
    }

    [Fact]
    public void AbsurdModelConfigsAreRefusedBeforeAllocation()
    {
        string config = File.ReadAllText(Path.Combine(TestData.EsmTiny, "config.json"));
        string Model(string from, string to)
        {
            string dir = TestData.TempDirectory();
            foreach (var f in Directory.GetFiles(TestData.EsmTiny)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
            Assert.Contains(from, config);
            File.WriteAllText(Path.Combine(dir, "config.json"), config.Replace(from, to));
            return dir;
        }
        AssertFails(Run("fill-mask", "--model", Model("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 100000"), "--seq", "M<mask>K"), "num_hidden_layers 100000 is more than");
        AssertFails(Run("fill-mask", "--model", Model("\"hidden_size\": 64", "\"hidden_size\": 1000000000"), "--seq", "M<mask>K"), "hidden_size 1000000000 is more than");
        AssertFails(Run("fill-mask", "--model", Model("\"hidden_size\": 64", "\"hidden_size\": 1e9"), "--seq", "M<mask>K"), "hidden_size");
        AssertFails(Run("fill-mask", "--model", Model("\"vocab_size\": 33", "\"vocab_size\": 2000000000"), "--seq", "M<mask>K"), "vocab_size 2000000000 is more than");
        // Each size plausible, the whole far beyond this machine's memory.
        string huge = Model("\"hidden_size\": 64", "\"hidden_size\": 65536");
        File.WriteAllText(Path.Combine(huge, "config.json"), File.ReadAllText(Path.Combine(huge, "config.json")).Replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 200").Replace("\"intermediate_size\": 256", "\"intermediate_size\": 262144"));
        AssertFails(Run("fill-mask", "--model", huge, "--seq", "M<mask>K"), "parameters need");
        // A value of the wrong type deep in the config is still one line and exit 2, not an internal error.
        AssertFails(Run("fill-mask", "--model", Model("\"token_dropout\": true", "\"token_dropout\": \"yes\""), "--seq", "M<mask>K"), "token_dropout");
    }

    [Fact]
    public void AGzipBombFailsFastWithoutLeavingAnOutputDirectory()
    {
        string dir = TestData.TempDirectory();
        string bomb = Path.Combine(dir, "bomb.fasta.gz");
        using (var gz = new System.IO.Compression.GZipStream(File.Create(bomb), System.IO.Compression.CompressionLevel.Fastest))
        {
            gz.Write(">bomb\n"u8);
            var chunk = new byte[1 << 20];
            Array.Fill(chunk, (byte)'A');
            for (int i = 0; i < 64; i++) gz.Write(chunk);
        }
        string output = Path.Combine(dir, "new", "emb.npy");
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", bomb, "--out", output), "bomb.fasta.gz:2: record 'bomb' is longer than 1,000,000 residues");
        Assert.False(Directory.Exists(Path.Combine(dir, "new")));

        // A failure after the writer created the folder removes it again.
        output = Path.Combine(dir, "other", "deeper", "emb.csv");
        AssertFails(Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(">long\n" + new string('A', 1100) + "\n"), "--out", output), "has 1100 residues");
        Assert.False(Directory.Exists(Path.Combine(dir, "other")));
    }

    [Fact]
    public void NpyEmbeddingsGetTheirIdsBesideThem()
    {
        string output = Path.Combine(TestData.TempDirectory(), "e.npy");
        var result = Run("embed", "--model", TestData.EsmTiny, "--in", Fasta(">b second\nMKV\n>a\nMKTAYIAK\n"), "--out", output);
        Assert.Equal(0, result.Code);
        Assert.Equal(["b", "a"], File.ReadAllLines(Path.ChangeExtension(output, ".ids.txt")));
    }

    [Fact]
    public void HelpNamesBioforgeAndArgumentErrorsAreOneLineWithExitCode2()
    {
        var output = new StringWriter();
        Assert.Equal(0, Cli.Cli.Run(["--help"], output, new StringWriter()));
        Assert.Contains("bioforge [command] [options]", output.ToString());
        Assert.DoesNotContain("BioForge.Cli", output.ToString());
        Assert.DoesNotContain("testhost", output.ToString());

        foreach (var args in new[] { new[] { "embed", "--in", "x.fasta" }, ["no-such-command"], ["chem", "props", "--in", "a.smi", "--out", "b.csv", "--threads", "many"] })
        {
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            Assert.Equal(2, Cli.Cli.Run(args, stdout, stderr));
            Assert.Equal("", stdout.ToString());
            Assert.StartsWith("error: ", stderr.ToString());
            Assert.Single(stderr.ToString().TrimEnd().Split('\n'));
            Assert.Contains("--help", stderr.ToString());
        }
    }

    [Fact]
    public void ContactsOfAnUntrainedContactHeadSaySo()
    {
        string dir = TestData.TempDirectory();
        string csv = Path.Combine(dir, "map.csv");
        var shipped = Run("contacts", "--model", Path.Combine(Repository.Root, "models", "esm2-small"), "--seq", "MKTAYIAKQRQISFVKSHFSRQ", "--out", csv);
        Assert.Equal(0, shipped.Code);
        Assert.Contains("warning: ", shipped.Err);
        Assert.Contains("contact head is untrained", shipped.Err);
        Assert.Contains("contact_head: untrained", shipped.Out);
        // Its variant scores show the command working, and say so; another model's do not carry the note.
        var variants = Run("score-variants", "--model", Path.Combine(Repository.Root, "models", "esm2-small"), "--seq", "MKTAYIAKQRQISFVKSHFSRQ", "--mutations", "K2R", "--out", Path.Combine(dir, "v.csv"));
        Assert.True(variants.Code == 0, variants.Err);
        Assert.Contains("note: models/esm2-small is the small ESM-2 trained on this project's 2-core machine (Spearman 0.06", variants.Err);
        Assert.DoesNotContain("note:", Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--mutations", "K2R", "--out", Path.Combine(dir, "t.csv")).Err);

        // Untrained means still at initialisation scale (the random tiny model too); a fitted logistic regression has a
        // clearly negative bias (contacts are rare), as every hub ESM-2 checkpoint does.
        using var esm = Models.Esm.EsmCheckpoint.Load(TestData.EsmTiny, TestData.Cpu.Device, TestData.Cpu.DType);
        Assert.False(esm.Model.ContactHeadTrained);
        using (TorchSharp.torch.no_grad())
            foreach (var (name, p) in esm.Model.named_parameters())
                if (name.EndsWith("contact_head.regression.bias", StringComparison.Ordinal)) p.fill_(-3.0);
        Assert.True(esm.Model.ContactHeadTrained);
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
        // A translated sequence's stop is left out; a masked position keeps its place in the labels.
        Assert.Equal(0, Run("contacts", "--model", TestData.EsmTiny, "--seq", "MKT<mask>AY*", "--out", csv).Code);
        Assert.Equal("residue,M1,K2,T3,<mask>4,A5,Y6", File.ReadLines(csv).First());
        string fasta = Path.Combine(dir, "one.fasta");
        File.WriteAllText(fasta, ">p1 a protein\nMKTAY\nIAK*\n");
        Assert.Equal(0, Run("contacts", "--model", TestData.EsmTiny, "--seq-file", fasta, "--out", csv).Code);
        Assert.Equal(9, File.ReadAllLines(csv).Length); // 8 residues and the header
    }

    [Fact]
    public void ADeepMutationalScanScoresEverySubstitutionAndDrawsItsMap()
    {
        string dir = TestData.TempDirectory();
        string output = Path.Combine(dir, "scan.csv"), map = Path.Combine(dir, "scan.svg");
        var result = Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK*", "--scan", "--out", output, "--map", map);
        Assert.True(result.Code == 0, result.Err);
        Assert.Contains("scored 152 variants at 8 sites", result.Out); // 19 substitutions × 8 residues; the stop is no residue
        var scores = File.ReadLines(output).Skip(1).Select(l => l.Split(',')).ToDictionary(r => r[0], r => double.Parse(r[1], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(152, scores.Count);
        Assert.Equal(scores["K2R"], double.Parse(Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--mutations", "K2R", "--out", Path.Combine(dir, "one.csv")).Code == 0
            ? File.ReadLines(Path.Combine(dir, "one.csv")).Last().Split(',')[1] : "NaN", System.Globalization.CultureInfo.InvariantCulture), 1e-6);
        string svg = File.ReadAllText(map);
        Assert.StartsWith("<svg", svg);
        Assert.Contains($"<title>K2R: {scores["K2R"].ToString("F3", System.Globalization.CultureInfo.InvariantCulture)}</title>", svg);
        Assert.Equal(8, System.Text.RegularExpressions.Regex.Count(svg, @"<title>[A-Z]\d+ \(wild type\)</title>"));
        // Variants named 0-based are labelled 0-based in the map too, as in the CSV.
        Assert.Equal(0, Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--mutations", "K1R", "--index-base", "0", "--out", Path.Combine(dir, "zero.csv"), "--map", map).Code);
        svg = File.ReadAllText(map);
        Assert.Contains("<title>K1R: ", svg);
        Assert.Contains("<title>M0 (wild type)</title>", svg);
        Assert.Contains("position (0-based)", svg);
        // A scan names its variants in that numbering too, so its CSV and map agree.
        Assert.Equal(0, Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--scan", "--index-base", "0", "--out", Path.Combine(dir, "zero-scan.csv"), "--map", map).Code);
        string zeroScan = File.ReadAllText(Path.Combine(dir, "zero-scan.csv"));
        Assert.Contains("\nM0A,", zeroScan);
        Assert.DoesNotContain("\nK2R,", zeroScan);
        Assert.Contains("<title>K1R: ", File.ReadAllText(map));
        // Any numbering: a fragment whose first residue is the protein's 24th (ESM's --offset-idx).
        Assert.Equal(0, Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--mutations", "K25R", "--index-base", "24", "--out", Path.Combine(dir, "offset.csv"), "--map", map).Code);
        Assert.Equal(scores["K2R"], double.Parse(File.ReadLines(Path.Combine(dir, "offset.csv")).Last().Split(',')[1], System.Globalization.CultureInfo.InvariantCulture), 1e-6);
        Assert.Contains("<title>M24 (wild type)</title>", File.ReadAllText(map));
        AssertFails(Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--mutations", "K2R", "--index-base", "-1", "--out", Path.Combine(dir, "neg.csv")), "--index-base -1: expected a residue number from 0 to 1,000,000");
        AssertFails(Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--scan", "--mutations", "K2R", "--out", output), "give exactly one of --mutations, --in or --scan");
        AssertFails(Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--mutations", "K2R:A4G", "--out", Path.Combine(dir, "x.csv"), "--map", Path.Combine(dir, "x.svg")),
            "no single substitutions to draw", Path.Combine(dir, "x.csv"));
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
        Assert.Equal("mutant,esm_score,DMS_score", File.ReadLines(output).First());
        // The printed ρ is the rank correlation of the two columns written, computed here from their ranks (no ties).
        var rows = File.ReadLines(output).Skip(1).Select(l => l.Split(',')).ToList();
        Assert.Equal(["K2R", "A4G", "K2R:A4G", "Y5F"], rows.Select(r => r[0]));
        double[] Ranks(int column)
        {
            var values = rows.Select(r => double.Parse(r[column], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            return [.. values.Select(v => (double)values.Count(w => w < v))];
        }
        var (a, b) = (Ranks(1), Ranks(2));
        double rho = 1 - 6 * a.Zip(b).Sum(p => (p.First - p.Second) * (p.First - p.Second)) / (4 * (16 - 1));
        Assert.Contains($"Spearman rho vs DMS_score: {rho.ToString("F4", System.Globalization.CultureInfo.InvariantCulture)} (n = 4)", result.Out);

        var inline = Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--mutations", "K2R,A4G:Y5F", "--out", output);
        Assert.Equal(0, inline.Code);
        Assert.Equal(3, File.ReadAllLines(output).Length);

        string untouched = Path.Combine(dir, "bad.csv");
        AssertFails(Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--mutations", "A2G", "--out", untouched), "the wild type has K at position 2, not A", untouched);
        // The letters of "<unk>" would pass as residues N, K at positions 5 and 6 and be scored at the tokens after it.
        AssertFails(Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MK<unk>TLV", "--mutations", "N5A", "--out", untouched), "the wild type must be residue letters only", untouched);
        void Refused(string csv, string expected)
        {
            File.WriteAllText(table, csv);
            AssertFails(Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--in", table, "--out", untouched), expected, untouched);
        }
        (int Code, string Out, string Err) Scored(string csv)
        {
            File.WriteAllText(table, csv);
            return Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--in", table, "--out", output);
        }
        Refused("mutant,DMS_score\nK2R,0.5\nT3A,abc\n", "dms.csv:3: DMS_score 'abc' is not a finite number");
        // The measured column is found without case, as the mutation column is.
        var lowerCase = Scored("Mutant,dms_score\nK2R,0.5\nT3A,-0.5\n");
        Assert.True(lowerCase.Code == 0, lowerCase.Err);
        Assert.Contains("Spearman rho vs dms_score: ", lowerCase.Out);
        Refused("mutant,DMS_score,dms_score\nK2R,0.5,1\nT3A,-0.5,2\n", "the header has the score column 'DMS_score' twice");
        // A spreadsheet's semicolon-separated export reads as the comma-separated file.
        var semicolons = Scored("mutant;DMS_score\nK2R;0.5\nT3A;-0.5\n");
        Assert.True(semicolons.Code == 0, semicolons.Err);
        Assert.Contains("Spearman rho vs DMS_score: ", semicolons.Out);
        Refused("mutant;DMS_score\nK2R;0,5\nT3A;-0.5\n", "DMS_score '0,5' is not a finite number (a decimal comma: write 0.5)");
        Refused("mutant,DMS_score\nK2R,0.5\nT3A,Infinity\n", "dms.csv:3: DMS_score 'Infinity' is not a finite number");
        // A variant not measured (empty, NA, NaN) is scored and left out of ρ; another column is named with --score-column.
        File.WriteAllText(table, "mutant,fitness\nK2R,0.5\nT3A,NaN\nA4G,\nY5F,-1\nI6V,0.2\n");
        var partly = Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--in", table, "--score-column", "fitness", "--out", output);
        Assert.True(partly.Code == 0, partly.Err);
        Assert.Contains("(n = 3; 2 without a fitness)", partly.Out);
        Assert.Equal(["K2R,0.5", "T3A,", "A4G,", "Y5F,-1", "I6V,0.2"], File.ReadLines(output).Skip(1).Select(l => l.Split(',')).Select(r => $"{r[0]},{r[2]}"));
        // --seq-file: the file and line named; one FASTA record only (the first of several was taken silently).
        string wildType = Path.Combine(dir, "wt.txt");
        File.WriteAllText(wildType, "MKTAY\nIAΩK\n");
        AssertFails(Run("score-variants", "--model", TestData.EsmTiny, "--seq-file", wildType, "--mutations", "K2R", "--out", untouched), $"--seq-file {wildType}:2: 'Ω' at column 3 is not a residue letter", untouched);
        File.WriteAllText(wildType, ">a\nMKTAYIAK\n>b\nMKV\n");
        AssertFails(Run("score-variants", "--model", TestData.EsmTiny, "--seq-file", wildType, "--mutations", "K2R", "--out", untouched), "holds more than one FASTA record", untouched);
        File.WriteAllText(wildType, "MKTAY\n\nIAK\n");
        AssertFails(Run("score-variants", "--model", TestData.EsmTiny, "--seq-file", wildType, "--mutations", "K2R", "--out", untouched), $"--seq-file {wildType}:3: more sequence after the blank line 2", untouched);
        File.WriteAllText(wildType, "\nMKTAY\nIAK\n\n");
        Assert.Equal(0, Run("score-variants", "--model", TestData.EsmTiny, "--seq-file", wildType, "--mutations", "K2R", "--out", output).Code);
        AssertFails(Run("score-variants", "--model", TestData.EsmTiny, "--seq", "MKTAYIAK", "--out", untouched), "exactly one of --mutations, --in or --scan");
    }

    /// <summary><c>bench decode</c> decodes the same queue in every mode named, one JSON line per run.</summary>
    [Fact]
    public void DecodeBenchReportsEveryModeAndRefusesAnUnknownOne()
    {
        string model = Path.Combine(Repository.Root, "models", "smiles-llama-small");
        var (code, output, err) = Run("bench", "decode", "--model", model, "--sequences", "6", "--slots", "3", "--modes", "continuous,static,padded,single", "--repeats", "1");
        Assert.True(code == 0, err);
        var runs = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(["continuous", "static", "padded", "single"], runs.Select(r => r["mode"]!.GetValue<string>()));
        Assert.All(runs, r => Assert.True(r["tokens"]!.GetValue<long>() > 6 && r["tokens_per_second"]!.GetValue<double>() > 0));
        Assert.Single(runs.Select(r => r["tokens"]!.GetValue<long>()).Distinct()); // the same sequences in every mode
        Assert.Equal(1.0, runs[3]["rows_per_step"]!.GetValue<double>());
        Assert.True(runs[0]["rows_per_step"]!.GetValue<double>() > 1.0, "continuous batching decodes several rows per step");
        // Padded batches take the steps static ones take, computing the ended rows too.
        Assert.Equal(runs[1]["steps"]!.GetValue<long>(), runs[2]["steps"]!.GetValue<long>());
        Assert.True(runs[2]["padding_rows_per_step"]!.GetValue<double>() > 0 && runs[1]["padding_rows_per_step"]!.GetValue<double>() == 0);
        Assert.True(runs[2]["rows_per_step"]!.GetValue<double>() > runs[1]["rows_per_step"]!.GetValue<double>());
        AssertFails(Run("bench", "decode", "--model", model, "--modes", "continuous,paged"), "--modes: unknown batching mode 'paged'");
        AssertFails(Run("bench", "decode", "--model", model, "--modes", "7"), "--modes: unknown batching mode '7'");
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

/// <summary>Commands as processes, stopped by a signal.</summary>
public sealed class CliSignalTests
{
    /// <summary>
    /// SIGTERM to a command that has no clean stop (embed) ends it at once, by the signal (143), and leaves nothing of
    /// its output: no half-written temporary file (the default action left a hidden one, as large as the output so
    /// far) and no folder it made.
    /// </summary>
    [Theory]
    [InlineData("e.npy")]
    [InlineData("e.safetensors")]
    public void SigtermDuringEmbedLeavesNoTemporaryFile(string name)
    {
        string directory = TestData.TempDirectory();
        string fasta = ManyProteins(directory, 200_000, seed: 1), outFolder = Path.Combine(directory, "new", "folder");
        // The embeddings are being written once the temporary file is there (a hang guard, not a speed check).
        TerminateWhileWriting(["embed", "--model", TestData.EsmTiny, "--in", fasta, "--out", Path.Combine(outFolder, name), "--batch-tokens", "256", "--device", "cpu", "--threads", "1"],
            () => Directory.Exists(outFolder) && Directory.EnumerateFiles(outFolder, $".{name}.*.tmp").Any());
        Assert.False(Directory.Exists(Path.Combine(directory, "new")), string.Join(", ", Directory.EnumerateFileSystemEntries(directory, "*", SearchOption.AllDirectories)));
        Assert.Equal([fasta], Directory.GetFileSystemEntries(directory));
    }

    /// <summary>
    /// SIGTERM during <c>data prepare</c> leaves no corpus folder: it is written as a hidden sibling and renamed into
    /// place whole (the folder and its parents stayed, and a later stop could leave train stores without a vocabulary).
    /// </summary>
    [Fact]
    public void SigtermDuringDataPrepareLeavesNoFolder()
    {
        string directory = TestData.TempDirectory();
        string fasta = ManyProteins(directory, 300_000, seed: 2), outFolder = Path.Combine(directory, "new", "folder");
        TerminateWhileWriting(["data", "prepare", "--in", fasta, "--tokenizer", "esm", "--out", Path.Combine(outFolder, "corpus")],
            () => Directory.Exists(outFolder) && Directory.EnumerateDirectories(outFolder, ".corpus.*.tmp").Any());
        Assert.False(Directory.Exists(Path.Combine(directory, "new")), string.Join(", ", Directory.EnumerateFileSystemEntries(directory, "*", SearchOption.AllDirectories)));
    }

    /// <summary>A FASTA file of <paramref name="count"/> random 60-residue proteins: enough work to be stopped in the middle of.</summary>
    private static string ManyProteins(string directory, int count, int seed)
    {
        string fasta = Path.Combine(directory, "many.fasta");
        var random = new Random(seed);
        File.WriteAllLines(fasta, Enumerable.Range(0, count).SelectMany(i => new[] { $">p{i}", new string([.. Enumerable.Range(0, 60).Select(_ => "ACDEFGHIKLMNPQRSTVWY"[random.Next(20)])]) }));
        return fasta;
    }

    /// <summary>Runs the command, sends SIGTERM once <paramref name="writing"/> holds, and checks it ended by the signal (143).</summary>
    private static void TerminateWhileWriting(string[] args, Func<bool> writing)
    {
        var start = new System.Diagnostics.ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "BioForge.Cli.dll"), .. args]);
        using var command = LoggedProcess.Start(start, "never printed");
        SpinWait.SpinUntil(() => writing() || command.Process.HasExited, TimeSpan.FromMinutes(2));
        Assert.True(writing() && !command.Process.HasExited, $"{args[0]} is not writing its output:\n{command.Log}");
        command.Terminate();
        Assert.True(command.WaitForExit(TimeSpan.FromMinutes(1)), $"{args[0]} went on after SIGTERM:\n{command.Log}");
        Assert.Equal(143, command.Process.ExitCode);
    }
}
