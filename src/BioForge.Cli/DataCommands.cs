using System.CommandLine;
using BioForge.Training;

namespace BioForge.Cli;

/// <summary><c>bioforge data prepare</c>: tokenize a corpus once into train/validation token stores.</summary>
internal static class DataCommands
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var input = new Option<string[]>("--in") { Description = "corpus: FASTA (.fasta/.fa[.gz]) for esm, SMILES (.smi/.csv[.gz]) for smiles; repeat to join files", Required = true, AllowMultipleArgumentsPerToken = true };
        var tokenizer = new Option<string>("--tokenizer") { Description = "esm or smiles", Required = true };
        tokenizer.AcceptOnlyFromAmong("esm", "smiles");
        var outDir = Options.RequiredFolder("--out", "output directory (train.bin/.idx, valid.bin/.idx, vocabulary, summary.json)");
        var fraction = new Option<double>("--validation-fraction") { Description = "share of documents held out for validation", DefaultValueFactory = _ => 0.01 };
        var seed = new Option<ulong>("--seed") { Description = "seed of the train/validation assignment", DefaultValueFactory = _ => 0 };
        var column = new Option<string?>("--smiles-column") { Description = "SMILES column of a CSV" };
        var clusters = new Option<string?>("--clusters") { Description = "protein clusters, TSV representative<TAB>member (MMseqs2 createtsv): whole clusters per split, cluster sampling in training" };
        var vocabulary = new Option<string?>("--vocab") { Description = "smiles: keep this vocabulary (a SMILES model's folder or its vocab.json) so that model can go on training on the corpus (model.init); molecules with other tokens are left out and counted" };
        var prepare = new Command("prepare", "Tokenize a corpus into memory-mapped token stores with a deterministic validation split") { input, tokenizer, outDir, fraction, seed, column, clusters, vocabulary };
        prepare.SetAction(result => Cli.Guard(error, () =>
        {
            var kind = result.GetValue(tokenizer) == "esm" ? CorpusKind.Protein : CorpusKind.Smiles;
            var corpus = ProgressDisplay.Run("documents", null, progress => DataPreparation.Prepare(result.GetValue(input)!, kind,
                result.GetValue(outDir)!, result.GetValue(fraction), result.GetValue(seed), result.GetValue(column), progress, result.GetValue(clusters), result.GetValue(vocabulary)));
            output.WriteLine($"train: {corpus.Train.Documents} documents, {corpus.Train.Tokens} tokens (mean {corpus.Train.MeanLength:F1}, max {corpus.Train.MaxLength})");
            output.WriteLine($"valid: {corpus.Validation.Documents} documents, {corpus.Validation.Tokens} tokens (mean {corpus.Validation.MeanLength:F1}, max {corpus.Validation.MaxLength})");
            if (corpus.Validation.Documents == 0 && result.GetValue(fraction) > 0)
                error.WriteLine($"note: no document fell to validation (--validation-fraction {result.GetValue(fraction).ToString(System.Globalization.CultureInfo.InvariantCulture)} of "
                    + $"{corpus.Train.Documents} documents); training will run without validation unless the fraction is raised");
            if (corpus.Skipped > 0) output.WriteLine($"left out: {corpus.Skipped} molecules with a token outside the vocabulary of --vocab (the first: {corpus.FirstUnknown})");
            if (corpus.Unreadable > 0) output.WriteLine($"left out: {corpus.Unreadable} SMILES that do not read as molecules or as SMILES tokens (the first: {corpus.FirstUnreadable})");
            if (kind == CorpusKind.Smiles && corpus.Unreadable is null) error.WriteLine($"note: the SMILES were not checked with RDKit, and the split is keyed by their text, not their molecule ({Chem.Molecule.Unavailable()})");
            if (corpus.Clustered is { } listed)
                output.WriteLine($"clusters: {listed} of {corpus.Train.Documents + corpus.Validation.Documents} sequences listed in --clusters (the others are clusters of their own)");
            output.WriteLine($"vocabulary: {corpus.VocabularySize} tokens -> {corpus.Directory}");
            return 0;
        }));
        var data = new Command("data", "Training data preparation");
        data.Subcommands.Add(prepare);
        return data;
    }
}
