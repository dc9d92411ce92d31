using System.CommandLine;
using System.Globalization;
using BioForge.Chem;
using BioForge.Discovery;
using BioForge.Statistics;

namespace BioForge.Cli;

/// <summary><c>bioforge dti train|eval</c>: drug–target affinity models on Davis/KIBA-style benchmarks.</summary>
internal static class DtiCommands
{
    public static Command Create(TextWriter output, TextWriter error) =>
        new("dti", "Drug–target affinity: train a model on a DeepDTA-layout benchmark, evaluate it on the test fold") { Train(output, error), Eval(output, error) };

    private static Command Train(TextWriter output, TextWriter error)
    {
        var config = Options.Required("--config", "affinity run configuration (YAML): data, features, model, train");
        var overrides = new Argument<string[]>("overrides") { Description = "section.key=value settings that replace the file's", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("train", "Train an affinity model; prints MSE, CI, r²m, Pearson, Spearman and binder AUPR on the test fold") { config, overrides };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            var run = DtiConfig.Load(result.GetValue(config)!, result.GetValue(overrides));
            var trained = AffinityTrainer.Train(run, output.WriteLine, e => output.WriteLine(
                $"{(e.Member > 0 ? $"member {e.Member + 1}  " : "")}epoch {e.Epoch}/{e.Epochs}  train MSE {e.TrainMse:F4}  valid MSE {e.ValidationMse:F4}  CI {e.ValidationCi:F4}  {e.Elapsed.TotalSeconds:F0} s{(e.Best ? "  *" : "")}"));
            output.WriteLine($"best epoch(s) {string.Join(", ", trained.BestEpochs)}; validation: {Format(trained.Validation)}");
            output.WriteLine($"test fold ({trained.TestPairs:N0} pairs): {Format(trained.Test)}");
            output.WriteLine($"-> {trained.ModelDirectory}");
            return 0;
        }));
        return command;
    }

    private static Command Eval(TextWriter output, TextWriter error)
    {
        var model = Options.Required("--model", "an affinity model directory (written by `bioforge dti train`, e.g. models/dti-davis)");
        var data = Options.Required("--data", "a DeepDTA-layout benchmark directory (data/davis, data/kiba)");
        var compute = new ComputeOptionSet();
        var command = new Command("eval", "Score an affinity model on a benchmark's test fold") { model, data };
        command.Options.Add(compute.Device);
        command.Options.Add(compute.Threads);
        command.SetAction(result => Cli.Guard(error, () =>
        {
            var options = Runtime.ComputeOptions.Resolve(result.GetValue(compute.Device)!, "fp32", result.GetValue(compute.Threads));
            using var affinity = AffinityModel.Load(result.GetValue(model)!, options.Device);
            var dataset = AffinityDataset.Load(result.GetValue(data)!);
            // A pKd model scored on KIBA scores (or the other way) would print an error and a concordance of nothing.
            if (affinity.Manifest.Measure.Length > 0 && affinity.Manifest.Measure != dataset.Measure)
                throw new BioForgeException($"--data {result.GetValue(data)}: holds {dataset.Measure} values; the model predicts {affinity.Manifest.Measure} (trained on {affinity.Manifest.Dataset})");
            var test = dataset.Folds(affinity.Manifest.Split, affinity.Manifest.SplitSeed, affinity.Manifest.TargetIdentity).Test.Select(i => dataset.Pairs[i]).ToArray();
            var predicted = new double[test.Length];
            // Each drug's features once (the molecule model's embedding is most of the time), then every target's pairs.
            int[] drugsTested = [.. test.Select(p => p.Drug).Distinct().Order()];
            var molecules = drugsTested.Select(d => Molecule.TryFromSmiles(dataset.Drugs[d].Text, out var m, out _) ? m : null).ToArray();
            float[][] features;
            try
            {
                if (Array.IndexOf(molecules, null) is >= 0 and var bad)
                    throw new BioForgeException($"{dataset.DrugsFile}: drug '{dataset.Drugs[drugsTested[bad]].Id}': RDKit cannot read its SMILES");
                features = affinity.DrugFeatures(molecules!);
            }
            finally
            {
                foreach (var m in molecules) m?.Dispose();
            }
            var row = drugsTested.Select((d, i) => (d, i)).ToDictionary(x => x.d, x => x.i);
            var groups = Enumerable.Range(0, test.Length).GroupBy(i => test[i].Target).ToList();
            ProgressDisplay.Run("targets", groups.Count, progress =>
            {
                foreach (var group in groups)
                {
                    var indices = group.ToArray();
                    var values = affinity.Predict([.. indices.Select(i => features[row[test[i].Drug]])], affinity.TargetFeatures(dataset.Targets[group.Key].Text));
                    for (int k = 0; k < indices.Length; k++) predicted[indices[k]] = values[k];
                    progress.Report(1);
                }
                return 0;
            });
            var metrics = AffinityMetrics.All([.. test.Select(p => p.Affinity)], predicted, AffinityModel.BinderThreshold(dataset.Measure));
            output.WriteLine($"{dataset.Name} test fold ({test.Length:N0} pairs, {dataset.Measure}): {Format(metrics)}");
            return 0;
        }));
        return command;
    }

    internal static string Format(Dictionary<string, double> metrics) =>
        string.Join("  ", metrics.Select(kv => $"{kv.Key} {kv.Value.ToString("F4", CultureInfo.InvariantCulture)}"));
}
