using System.CommandLine;
using System.Globalization;
using System.Text;
using BioForge.Chem;
using BioForge.FineTuning;
using BioForge.IO;
using BioForge.Models;

namespace BioForge.Cli;

/// <summary><c>bioforge finetune</c>: train a task head on a pre-trained protein or SMILES model; predict with it; merge LoRA.</summary>
internal static class FineTuneCommands
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var config = Options.Required("--config", "fine-tuning configuration (YAML): data, model, task, encoder, optimizer, train");
        var overrides = new Argument<string[]>("overrides") { Description = "section.key=value settings that replace the file's (e.g. encoder.mode=lora)", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("finetune", "Fine-tune a protein or SMILES language model for regression, classification or per-residue classification")
        {
            config, overrides, Predict(output, error, config, overrides), Merge(output, error, config, overrides),
        };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            var run = FineTuneConfig.Load(result.GetValue(config)!, result.GetValue(overrides));
            return Cli.Stoppable("stopping after this epoch (the best epoch so far is kept and written)", cancellation =>
            {
                FineTuneManifest manifest;
                try
                {
                    manifest = FineTuner.Run(run, new FineTuneOptions
                    {
                        Cancellation = cancellation,
                        OnInfo = output.WriteLine,
                        OnEpoch = e => output.WriteLine($"epoch {e.Epoch}/{e.Epochs}  train loss {e.TrainLoss:F4}"
                            + (e.ValidLoss is { } v ? $"  valid loss {v:F4}  {Format(e.ValidMetrics)}" : "")
                            + $"  {e.Elapsed.TotalSeconds:F0} s{(e.Best ? "  *" : "")}"),
                    });
                }
                catch (OperationCanceledException)
                {
                    error.WriteLine($"finetune stopped before its first epoch ended; nothing was written to {run.Train.OutputDir}");
                    return 130;
                }
                output.WriteLine($"best epoch {manifest.BestEpoch} of {manifest.EpochsRun}; test ({manifest.Examples["test"]}): {Format(manifest.Test)}");
                if (manifest.TestBaseline.Count > 0) output.WriteLine($"baseline (training mean / class frequencies): {Format(manifest.TestBaseline)}");
                output.WriteLine($"-> {run.Train.OutputDir}");
                return cancellation.IsCancellationRequested ? 130 : 0;
            });
        }));
        return command;
    }

    private static Command Predict(TextWriter output, TextWriter error, Option<string> trainingConfig, Argument<string[]> trainingOverrides)
    {
        var run = Options.Required("--run", "a finished `bioforge finetune` output directory");
        var input = Options.Required("--in", "inputs: CSV/TSV with the run's sequence column, FASTA, SDF (molecules), or one sequence/SMILES per line");
        var outPath = Options.Required("--out", "predictions CSV").Writes("CSV", ".csv");
        var batch = Options.Int("--batch", "sequences per forward pass", 32);
        var compute = new ComputeOptionSet();
        var command = new Command("predict", "Predict with a fine-tuned run") { run, input, outPath, batch };
        command.Options.Add(compute.Device);
        command.Options.Add(compute.Threads);
        command.SetAction(result => Cli.Guard(error, () =>
        {
            RefuseTrainingSettings(result, trainingConfig, trainingOverrides, "predict");
            if (result.GetValue(batch) < 1) throw new BioForgeException($"--batch must be at least 1 (got {result.GetValue(batch)})");
            var options = Runtime.ComputeOptions.Resolve(result.GetValue(compute.Device)!, "fp32", result.GetValue(compute.Threads));
            using var model = FineTunedModel.Load(result.GetValue(run)!, options);
            var (ids, sequences, unread) = ReadInputs(result.GetValue(input)!, model.Manifest.SequenceColumn, model.Alphabet);
            // A FASTA record comes without its stop: a '*' still ending it is not one to leave out again.
            bool fasta = IsFasta(result.GetValue(input)!);
            var readable = Enumerable.Range(0, sequences.Count).Where(i => unread[i] is null).ToList();
            var predicted = ProgressDisplay.Run("sequences", readable.Count, progress => model.Predict([.. readable.Select(i => sequences[i])], result.GetValue(batch), progress.Report, stopCodons: !fasta));
            var predictions = new Prediction[sequences.Count];
            for (int k = 0; k < readable.Count; k++) predictions[readable[k]] = predicted[k];
            for (int i = 0; i < sequences.Count; i++)
                if (unread[i] is { } why) predictions[i] = new Prediction("", [], why);
            var text = new StringBuilder();
            var header = new List<string> { "id", "sequence", "prediction" };
            bool probabilities = model.Manifest.TaskType == FineTuneTask.Classification;
            if (probabilities) header.AddRange(model.Manifest.Classes.Select(c => Csv.Quote($"p_{c}")));
            header.Add("error");
            text.AppendJoin(',', header).Append('\n');
            for (int i = 0; i < sequences.Count; i++)
            {
                var p = predictions[i];
                var fields = new List<string> { Csv.Quote(ids[i]), Csv.Quote(sequences[i]), Csv.Quote(p.Text) };
                if (probabilities)
                    fields.AddRange(p.Valid ? p.Outputs[0].Select(v => v.ToString("G6", CultureInfo.InvariantCulture)) : model.Manifest.Classes.Select(_ => ""));
                fields.Add(Csv.Quote((p.Error ?? "").Replace('\n', ' ')));
                text.AppendJoin(',', fields).Append('\n');
            }
            AtomicFile.WriteText(result.GetValue(outPath)!, text.ToString());
            int invalid = predictions.Count(p => !p.Valid);
            if (invalid > 0) error.WriteLine($"warning: {invalid} of {sequences.Count} inputs invalid; their rows have an empty prediction and the reason in the error column");
            if (predictions.Count(p => p.Truncated) is > 0 and int cut)
                error.WriteLine($"warning: {cut} of {sequences.Count} inputs were longer than the run's max_length ({model.Manifest.MaxLength} tokens) and were cut to it, as in training: their predictions are of their start");
            output.WriteLine($"{sequences.Count - invalid} predictions -> {result.GetValue(outPath)}");
            return 0;
        }));
        return command;
    }

    private static Command Merge(TextWriter output, TextWriter error, Option<string> trainingConfig, Argument<string[]> trainingOverrides)
    {
        var run = Options.Required("--run", "a finished `bioforge finetune` run trained with encoder.mode lora (or full)");
        var outPath = Options.RequiredFolder("--out", "directory for the merged Hugging Face checkpoint");
        var command = new Command("merge", "Fold a run's LoRA adapters into its base model and write a plain checkpoint") { run, outPath };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            RefuseTrainingSettings(result, trainingConfig, trainingOverrides, "merge");
            FineTunedModel.MergeEncoder(result.GetValue(run)!, result.GetValue(outPath)!, Runtime.ComputeOptions.Resolve("cpu", "fp32", 0));
            output.WriteLine($"merged encoder -> {result.GetValue(outPath)}");
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// Settings written before a subcommand parse as the training command's (<c>finetune --config f.yaml encoder.mode=lora
    /// predict …</c>) and would be dropped without a word: a run predicts and merges with the settings it was trained with.
    /// </summary>
    private static void RefuseTrainingSettings(ParseResult result, Option<string> config, Argument<string[]> overrides, string subcommand)
    {
        if (result.GetResult(config) is { Implicit: false } && result.GetValue(config) is { } file)
            throw new BioForgeException($"finetune {subcommand} takes no --config ({file}): it reads the run's own ({FineTuneManifest.FileName}); --config is for training");
        if (result.GetValue(overrides) is { Length: > 0 } given)
            throw new BioForgeException($"finetune {subcommand} takes no settings ({string.Join(" ", given)}): it reads the run's own ({FineTuneManifest.FileName}); settings are for training, `finetune --config FILE KEY=VALUE`");
    }

    private static bool IsFasta(string path) =>
        Path.GetExtension(path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? path[..^3] : path).ToLowerInvariant() is ".fasta" or ".fa" or ".faa";

    /// <summary>Identifiers and sequences from a CSV/TSV (by column name), a FASTA file, or one sequence per line.</summary>
    /// <summary>The inputs, their ids, and for each the reason it could not be read (an SDF record RDKit refuses), else null.</summary>
    private static (List<string> Ids, List<string> Sequences, List<string?> Unread) ReadInputs(string path, string column, SequenceAlphabet alphabet)
    {
        if (!File.Exists(path)) throw new BioForgeException($"--in {path}: file not found");
        string name = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? path[..^3] : path;
        string extension = Path.GetExtension(name).ToLowerInvariant();
        List<string> ids = [], sequences = [];
        List<string?> unread = [];
        if (MoleculeSource.IsSdf(path))
        {
            // MOL blocks, read as qsar predict and chem props read them; each line was taken for a SMILES.
            if (alphabet != SequenceAlphabet.Smiles) throw new BioForgeException($"--in {path}: an SDF holds molecules; this run's model reads protein sequences");
            foreach (var record in MoleculeSource.Read(path))
            {
                ids.Add(record.Properties.TryGetValue(MoleculeSource.NameProperty, out string? id) ? id : record.Label);
                if (record.TryParse(out var molecule, out string? error))
                {
                    using (molecule) sequences.Add(molecule!.ToSmiles());
                    unread.Add(null);
                }
                else
                {
                    sequences.Add("");
                    unread.Add($"invalid molecule: {error}");
                }
            }
            return (ids, sequences, unread);
        }
        if (extension is ".csv" or ".tsv")
        {
            var rows = Csv.ReadRows(path, out var header);
            int index = LabelledData.Column(path, header, column, "the run's sequence column"); // as training found it
            foreach (var (line, fields) in rows)
            {
                if (fields.Count > header.Count || fields.Count <= index) throw new BioForgeException($"{path}:{line}: {fields.Count} fields, the header has {header.Count}");
                ids.Add($"line {line}");
                sequences.Add(fields[index].Trim());
            }
        }
        else if (IsFasta(path))
        {
            foreach (var record in FastaReader.Read(path, alphabet: null))
            {
                ids.Add(record.Id);
                sequences.Add(record.Sequence);
            }
        }
        else
        {
            using var reader = LineReader.Open(path, Csv.MaxLineLength);
            string? line;
            while ((line = reader.ReadLine()) != null)
            {
                int number = reader.LineNumber;
                var parts = line.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length == 0) continue;
                ids.Add(parts.Length > 1 ? parts[1].Trim() : $"line {number}");
                sequences.Add(parts[0]);
            }
        }
        if (sequences.Count == 0) throw new BioForgeException($"--in {path}: no sequences");
        return (ids, sequences, [.. sequences.Select(_ => (string?)null)]);
    }

    private static string Format(IReadOnlyDictionary<string, double> metrics) =>
        string.Join("  ", metrics.Select(kv => $"{kv.Key} {kv.Value:F3}"));

    private static string Format(IReadOnlyDictionary<string, double?> metrics) =>
        string.Join("  ", metrics.Select(kv => $"{kv.Key} {(kv.Value is { } v ? v.ToString("F3", CultureInfo.InvariantCulture) : "n/a")}"));
}
