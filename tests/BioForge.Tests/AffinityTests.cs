using BioForge.Discovery;
using BioForge.Statistics;

namespace BioForge.Tests;

/// <summary>The affinity benchmark reader, the metrics papers report, and a short training run end to end.</summary>
public sealed class AffinityTests
{
    private static string Davis => Path.Combine(AppContext.BaseDirectory, "data", "davis");

    /// <summary>The definition, pair by pair: the O(n log n) version must agree with it.</summary>
    private static double ConcordanceByPairs(double[] truth, double[] predicted)
    {
        double concordant = 0;
        long pairs = 0;
        for (int i = 0; i < truth.Length; i++)
            for (int j = 0; j < truth.Length; j++)
            {
                if (truth[i] <= truth[j]) continue;
                pairs++;
                concordant += predicted[i] > predicted[j] ? 1 : predicted[i] == predicted[j] ? 0.5 : 0;
            }
        return concordant / pairs;
    }

    [Fact]
    public void TheConcordanceIndexCountsOrderedPairsWithTiesAsHalf()
    {
        Assert.Equal(2.0 / 3, AffinityMetrics.ConcordanceIndex([1, 2, 3], [1, 3, 2]), 12);
        Assert.Equal(1.0, AffinityMetrics.ConcordanceIndex([1, 2, 3], [10, 20, 30]), 12);
        Assert.Equal(0.5, AffinityMetrics.ConcordanceIndex([1, 2, 3], [7, 7, 7]), 12);
        // Davis-like data: many equal truths (5.0 = no binding) and tied predictions, against the pairwise definition.
        var random = new Random(7);
        var truth = Enumerable.Range(0, 600).Select(_ => random.NextDouble() < 0.6 ? 5.0 : Math.Round(5 + 5 * random.NextDouble(), 1)).ToArray();
        var predicted = truth.Select(t => Math.Round(t + random.NextDouble() - 0.5, 1)).ToArray();
        Assert.Equal(ConcordanceByPairs(truth, predicted), AffinityMetrics.ConcordanceIndex(truth, predicted), 12);
    }

    [Fact]
    public void Rm2AndMseAreComputedAsDeepDtaComputesThem()
    {
        double[] truth = [5.0, 5.0, 6.2, 7.1, 8.3, 5.0, 9.0], predicted = [5.1, 5.3, 6.0, 7.5, 7.9, 5.2, 8.1];
        // Reference: DeepDTA's emetrics.get_rm2 formula evaluated with python3 on these numbers.
        Assert.Equal(0.7458110840852792, AffinityMetrics.Rm2(truth, predicted), 10);
        Assert.Equal(truth.Zip(predicted).Average(p => (p.First - p.Second) * (p.First - p.Second)), AffinityMetrics.MeanSquaredError(truth, predicted), 12);
    }

    [Fact]
    public void DavisLoadsWithItsPublishedShapeAndPkdRange()
    {
        var davis = AffinityDataset.Load(Davis);
        Assert.Equal(68, davis.Drugs.Count);
        Assert.Equal(442, davis.Targets.Count);
        Assert.Equal(30_056, davis.Pairs.Count);
        Assert.Equal(5_010, davis.TestFold.Length);
        Assert.Equal(5, davis.TrainFolds.Length);
        Assert.Equal("pKd", davis.Measure);
        // 10,000 nM (no binding detected) is pKd 5; the strongest pair is about 10.8.
        Assert.Equal(5.0, davis.Pairs.Min(p => p.Affinity), 9);
        Assert.InRange(davis.Pairs.Max(p => p.Affinity), 10.7, 10.9);
        Assert.Equal(30_056, davis.TestFold.Concat(davis.TrainFolds.SelectMany(f => f)).Distinct().Count());
        Assert.StartsWith("AAK1", davis.Targets[0].Id, StringComparison.Ordinal);
    }

    [Fact]
    public void ABrokenBenchmarkIsRefusedWithTheFileAndLine()
    {
        string directory = TestData.TempDirectory();
        foreach (string file in new[] { "ligands_can.txt", "proteins.txt" }) File.Copy(Path.Combine(Davis, file), Path.Combine(directory, file));
        Directory.CreateDirectory(Path.Combine(directory, "folds"));
        File.WriteAllText(Path.Combine(directory, "drug-target_interaction_affinities_Kd__Davis_et_al.2011v1.txt"), "1 2 3\n");
        var e = Assert.Throws<BioForgeException>(() => AffinityDataset.Load(directory));
        Assert.Contains("drug-target_interaction_affinities_Kd__Davis_et_al.2011v1.txt:1: 3 values, expected one per target (442)", e.Message);
        Assert.Contains("no such directory", Assert.Throws<BioForgeException>(() => AffinityDataset.Load(Path.Combine(directory, "missing"))).Message);
    }

    [Fact]
    public void ATrainedModelReloadsAndPredictsWhatTrainingReported()
    {
        string output = TestData.TempDirectory();
        string config = Path.Combine(TestData.TempDirectory(), "dti.yaml");
        File.WriteAllText(config, $"""
            seed: 1
            data:
              dir: {Davis}
            features:
              morgan_bits: 256
            model:
              hidden: 32
            train:
              epochs: 3
              threads: 2
              device: cpu
              output_dir: {output}
            """);
        var run = DtiConfig.Load(config);
        var trained = AffinityTrainer.Train(run);
        Assert.InRange(trained.BestEpoch, 1, 3);
        Assert.True(trained.Test["mse"] < 0.8, $"test MSE {trained.Test["mse"]}: no better than predicting the mean (about 0.75)");
        Assert.True(trained.Test["ci"] > 0.7, $"test CI {trained.Test["ci"]}");

        // The written model, loaded on its own, scores the test fold as training did.
        var (code, text, error) = CliRun("dti", "eval", "--model", trained.ModelDirectory, "--data", Davis, "--device", "cpu");
        Assert.True(code == 0, error);
        Assert.Contains($"mse {trained.Test["mse"].ToString("F4", System.Globalization.CultureInfo.InvariantCulture)}", text);
        Assert.Contains($"ci {trained.Test["ci"].ToString("F4", System.Globalization.CultureInfo.InvariantCulture)}", text);
        Assert.True(File.Exists(Path.Combine(output, "test_predictions.csv")));
    }

    [Fact]
    public void BadAffinityConfigurationsAreRefusedWithTheKey()
    {
        string config = Path.Combine(TestData.TempDirectory(), "dti.yaml");
        File.WriteAllText(config, "data:\n  dir: x\ntrain:\n  output_dir: y\n  epocs: 3\n");
        Assert.Contains("epocs", Assert.Throws<BioForgeException>(() => DtiConfig.Load(config)).Message);
        File.WriteAllText(config, "data:\n  dir: x\nmodel:\n  dropout: 1.5\ntrain:\n  output_dir: y\n");
        Assert.Contains("model.dropout must be in [0, 1)", Assert.Throws<BioForgeException>(() => DtiConfig.Load(config)).Message);
    }

    private static (int Code, string Out, string Err) CliRun(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Cli.Cli.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }
}
