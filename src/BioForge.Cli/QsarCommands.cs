using System.CommandLine;
using System.Globalization;
using System.Text;
using BioForge.Chem;
using BioForge.Discovery;
using BioForge.FineTuning;
using BioForge.IO;

namespace BioForge.Cli;

/// <summary><c>bioforge qsar train|predict</c>: an activity model from a chemist's own measurements, and its predictions.</summary>
internal static class QsarCommands
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var qsar = new Command("qsar", "Ligand-based activity models from your own measurements (ridge regression on Morgan fingerprints): train, predict; a scoring component for optimize");
        qsar.Subcommands.Add(Train(output, error));
        qsar.Subcommands.Add(Predict(output, error));
        return qsar;
    }

    private static Command Train(TextWriter output, TextWriter error)
    {
        var input = Options.Required("--in", "measurements: CSV/TSV with a SMILES column and an activity column (pIC50, pKi, log solubility…; higher is whatever the number says)");
        var smiles = new Option<string>("--smiles-column") { Description = "the SMILES column", DefaultValueFactory = _ => "smiles" };
        var activity = Options.Required("--activity-column", "the measured column (numbers; convert IC50 in nM to pIC50 = 9 − log10(IC50) first)");
        var outDir = Options.RequiredFolder("--out", "model directory to write (qsar_model.json)");
        var split = new Option<string>("--split") { Description = "how the test molecules are held out: scaffold (their scaffolds unseen in fitting; the smallest series), scaffold_balanced (the same, series drawn by --seed as Chemprop does) or random", DefaultValueFactory = _ => "scaffold" };
        split.AcceptOnlyFromAmong("scaffold", "scaffold_balanced", "random");
        var testFraction = new Option<double>("--test-fraction") { Description = "share of the molecules held out to measure the model", DefaultValueFactory = _ => 0.2 };
        var seed = new Option<ulong>("--seed") { Description = "seed of the random split and the cross-validation folds", DefaultValueFactory = _ => 0 };
        var command = new Command("train", "Fit an activity model on measured molecules; its test metrics (held out by scaffold) are printed and stored") { input, smiles, activity, outDir, split, testFraction, seed };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            string path = result.GetValue(input)!, target = result.GetValue(outDir)!;
            Training.RunDirectory.RequireNew(target, "--out");
            var rows = LabelledData.Read(path, result.GetValue(smiles)!, result.GetValue(activity)!, ("--smiles-column", "--activity-column"));
            var model = QsarModel.Train(rows, result.GetValue(activity)!, new QsarModel.TrainOptions
            {
                Split = result.GetValue(split)!,
                TestFraction = result.GetValue(testFraction),
                Seed = result.GetValue(seed),
            });
            model.Save(target);
            var m = model.Manifest;
            string F(double v) => v.ToString("F3", CultureInfo.InvariantCulture);
            output.WriteLine($"{m.Molecules} molecules; ridge penalty {m.Lambda.ToString("G3", CultureInfo.InvariantCulture)} by cross-validation ({m.CrossValidation}; R² {F(m.CrossValidatedR2)} there)");
            if (m.CrossValidatedR2 < 0.1)
                error.WriteLine($"warning: in cross-validation the fingerprints barely predict {m.Activity} beyond its mean (R² {F(m.CrossValidatedR2)}); read the test metrics before using the model");
            else if (m.Lambda == QsarModel.Penalties[0])
                error.WriteLine($"warning: cross-validation chose the smallest penalty tried ({m.Lambda.ToString("G3", CultureInfo.InvariantCulture)}): the fit is barely regularized");
            else if (m.Lambda == QsarModel.Penalties[^1])
                error.WriteLine($"warning: cross-validation chose the largest penalty tried ({m.Lambda.ToString("G3", CultureInfo.InvariantCulture)}): the fit is shrunk as far as the grid goes");
            output.WriteLine($"test ({m.TestMolecules} molecules held out by {m.Split}): RMSE {F(m.TestMetrics["rmse"])}, R² {F(m.TestMetrics["r2"])}, Spearman {F(m.TestMetrics["spearman"])}, Pearson {F(m.TestMetrics["pearson"])}; "
                + $"predicting the mean: RMSE {F(m.BaselineRmse)}");
            output.WriteLine($"-> {target} (fitted on all {m.Molecules} molecules; use it as a scoring component: type = \"qsar\", model = \"{target}\", transform = {{ kind = \"sigmoid\", low = …, high = … }} over the activity range wanted)");
            return 0;
        }));
        return command;
    }

    private static Command Predict(TextWriter output, TextWriter error)
    {
        var model = Options.Required("--model", "a `bioforge qsar train` model directory");
        var input = Options.Required("--in", "molecules: .smi, .csv/.tsv or .sdf, optionally .gz");
        var outPath = Options.Required("--out", "predictions CSV (id, smiles, predicted activity)").Writes("CSV", ".csv");
        var column = new Option<string?>("--smiles-column") { Description = "CSV/TSV column holding the SMILES (default: smiles)" };
        var command = new Command("predict", "Predict activities with a QSAR model; unreadable molecules are rows with an empty prediction and the reason") { model, input, outPath, column };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            var qsar = QsarModel.Load(result.GetValue(model)!);
            string activity = qsar.Manifest.Activity;
            var text = new StringBuilder($"id,smiles,{Csv.Quote("predicted_" + activity)},error\n");
            int predicted = 0, failed = 0;
            string? firstFailure = null;
            foreach (var record in MoleculeSource.Read(result.GetValue(input)!, result.GetValue(column)))
            {
                string id = record.Id;
                string? why = null;
                double value = double.NaN;
                string smiles = record.IsMolBlock ? "" : record.Text;
                if (record.TryParse(out var molecule, out why))
                    using (molecule)
                    {
                        // As given, so the rows join back to the user's table; a MOL block as its SMILES.
                        if (record.IsMolBlock) smiles = molecule!.ToSmiles();
                        try
                        {
                            value = qsar.Predict(molecule!);
                        }
                        catch (BioForgeException e)
                        {
                            why = e.Message;
                        }
                    }
                if (double.IsNaN(value))
                {
                    failed++;
                    firstFailure ??= $"{record.Where}: {why ?? "unreadable"}";
                    text.Append(Csv.Quote(id)).Append(',').Append(Csv.Quote(smiles)).Append(",,").Append(Csv.Quote(why ?? "unreadable")).Append('\n');
                    continue;
                }
                predicted++;
                text.Append(Csv.Quote(id)).Append(',').Append(Csv.Quote(smiles)).Append(',').Append(value.ToString("F4", CultureInfo.InvariantCulture)).Append(",\n");
            }
            // A table of reasons only is no prediction: refused as screen and chem similar refuse such an input.
            if (predicted == 0)
                throw new BioForgeException($"--in {result.GetValue(input)}: none of its {failed:N0} molecule(s) could be read (the first, {firstFailure})");
            AtomicFile.WriteText(result.GetValue(outPath)!, text.ToString());
            output.WriteLine($"{predicted} predicted, {failed} not (unreadable, or no carbon atom) -> {result.GetValue(outPath)}");
            return 0;
        }));
        return command;
    }
}
