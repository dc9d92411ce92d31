using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using BioForge.Chem;
using BioForge.IO;
using BioForge.Runtime;
using BioForge.Statistics;
using BioForge.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BioForge.Discovery;

/// <summary>A drug–target affinity training run, as written in a YAML file (<c>bioforge dti train --config</c>).</summary>
public sealed record DtiConfig
{
    public ulong Seed { get; init; }
    public DataSection Data { get; init; } = new();
    public AffinityFeatureSettings Features { get; init; } = new();
    public ModelSection Model { get; init; } = new();
    public TrainSection Train { get; init; } = new();

    public sealed record DataSection
    {
        /// <summary>A directory in DeepDTA's layout (data/davis, data/kiba).</summary>
        public string Dir { get; init; } = "";
        /// <summary>Which of the training folds is held out for validation (early stopping); the others are trained on.</summary>
        public int ValidationFold { get; init; }
        /// <summary>setting1 (the benchmark's random folds), cold_target or cold_drug (see <see cref="AffinityDataset.Folds"/>).</summary>
        public string Split { get; init; } = AffinityDataset.RandomSplit;
        /// <summary>
        /// cold_target: targets at least this identical over 90 % of the shorter sequence are held out together (0.95:
        /// constructs and isoforms of one protein; 0.7: close paralogs too).
        /// </summary>
        public double TargetIdentity { get; init; } = 0.95;
    }

    public sealed record ModelSection
    {
        public int Hidden { get; init; } = 512;
        public double Dropout { get; init; } = 0.2;
        /// <summary>Networks trained from different seeds and averaged.</summary>
        public int Ensemble { get; init; } = 1;
    }

    public sealed record TrainSection
    {
        public int Epochs { get; init; } = 150;
        public int BatchSize { get; init; } = 256;
        public double Lr { get; init; } = 1e-3;
        public double WeightDecay { get; init; } = 1e-2;
        /// <summary>Stop after this many epochs without a lower validation MSE; 0 trains all epochs.</summary>
        public int Patience { get; init; } = 25;
        public string Device { get; init; } = "auto";
        public int Threads { get; init; }
        /// <summary>Run directory, which is also the model directory: weights, manifest, known binders, metrics.jsonl, test_predictions.csv.</summary>
        public string OutputDir { get; init; } = "";
    }

    public static DtiConfig Load(string path, IEnumerable<string>? overrides = null) =>
        YamlConfig.Load<DtiConfig>(path, overrides, (config, require) => config.Validate(require));

    public string ToJsonText() => YamlConfig.ToJsonText(this);

    private void Validate(Action<bool, string> require)
    {
        require(!string.IsNullOrWhiteSpace(Data.Dir), "data.dir is required (a DeepDTA-layout directory such as data/davis)");
        require(Data.ValidationFold >= 0, $"data.validation_fold must be >= 0 (got {Data.ValidationFold})");
        require(Data.Split is AffinityDataset.RandomSplit or "cold_target" or "cold_drug", $"data.split must be {AffinityDataset.RandomSplit}, cold_target or cold_drug (got '{Data.Split}')");
        // Below 0.6 the k-mer prefilter passes most pairs of kinases and the alignments take minutes (Davis at 0.5: 3.5 min).
        require(Data.TargetIdentity is >= 0.6 and <= 1, $"data.target_identity must be in 0.6..1 (got {Data.TargetIdentity})");
        require(Features.MorganRadius is >= 0 and <= 6, $"features.morgan_radius must be in 0..6 (got {Features.MorganRadius})");
        require(Features.MorganBits is >= 64 and <= 65536, $"features.morgan_bits must be in 64..65536 (got {Features.MorganBits})");
        require(Model.Hidden >= 4, $"model.hidden must be at least 4 (got {Model.Hidden})");
        require(Model.Dropout is >= 0 and < 1, $"model.dropout must be in [0, 1) (got {Model.Dropout})");
        require(Model.Ensemble is >= 1 and <= 32, $"model.ensemble must be in 1..32 (got {Model.Ensemble})");
        require(Train.Epochs >= 1 && Train.BatchSize >= 1, "train.epochs and train.batch_size must be at least 1");
        require(Train.Lr > 0 && Train.WeightDecay >= 0, "train.lr must be positive and train.weight_decay >= 0");
        require(Train.Patience >= 0, $"train.patience must be >= 0 (got {Train.Patience})");
        require(!string.IsNullOrWhiteSpace(Train.OutputDir), "train.output_dir is required");
    }
}

public sealed record DtiEpochReport(int Member, int Epoch, int Epochs, double TrainMse, double ValidationMse, double ValidationCi, bool Best, TimeSpan Elapsed);

public sealed record DtiResult(string ModelDirectory, int[] BestEpochs, Dictionary<string, double> Validation, Dictionary<string, double> Test, int TestPairs);

/// <summary>
/// Trains an affinity model on one benchmark: features for every drug and target once, then a two-tower network on
/// the training folds with MSE, AdamW and a cosine schedule, the best epoch on the held-out fold kept, the test fold
/// scored at the end. Everything random is seeded; the run directory is written whole at the end.
/// </summary>
public static class AffinityTrainer
{
    public static DtiResult Train(DtiConfig config, Action<string>? info = null, Action<DtiEpochReport>? onEpoch = null)
    {
        RunDirectory.RequireNew(config.Train.OutputDir, "train.output_dir");
        var compute = ComputeOptions.Resolve(config.Train.Device, "fp32", config.Train.Threads, "train.device");
        var data = AffinityDataset.Load(config.Data.Dir);
        if (config.Data.ValidationFold >= data.TrainFolds.Length)
            throw new BioForgeException($"data.validation_fold {config.Data.ValidationFold}: {config.Data.Dir} has {data.TrainFolds.Length} training folds (0..{data.TrainFolds.Length - 1})");
        double? targetIdentity = config.Data.Split == "cold_target" ? config.Data.TargetIdentity : null;
        var (testFold, trainFolds) = data.Folds(config.Data.Split, config.Seed, targetIdentity);
        string families = targetIdentity is { } identity
            ? string.Create(CultureInfo.InvariantCulture, $"; {data.TargetFamilies(identity).Distinct().Count()} target families at {identity:P0} identity")
            : "";
        info?.Invoke($"{data.Name}: {data.Drugs.Count} drugs × {data.Targets.Count} targets, {data.Pairs.Count:N0} measured pairs ({data.Measure}); test fold {testFold.Length:N0} ({config.Data.Split}{families})");

        var clock = Stopwatch.StartNew();
        using var featurizer = new AffinityFeaturizer(config.Features, config.Features.ProteinModel, config.Features.MoleculeModel, compute.Device);
        var drugRows = DrugRows(data, featurizer);
        var targetRows = featurizer.Targets([.. data.Targets.Select(t => t.Text)]);
        info?.Invoke($"features: {featurizer.DrugWidth} per molecule, {featurizer.TargetWidth} per target ({clock.Elapsed.TotalSeconds:F1} s)");

        var validIndices = trainFolds[config.Data.ValidationFold];
        var trainIndices = trainFolds.Where((_, k) => k != config.Data.ValidationFold).SelectMany(f => f).ToArray();
        var train = trainIndices.Select(i => data.Pairs[i]).ToArray();
        var valid = validIndices.Select(i => data.Pairs[i]).ToArray();
        var test = testFold.Select(i => data.Pairs[i]).ToArray();

        // Standardisation from the training pairs' drugs and targets only.
        var (drugMean, drugScale) = Moments(train.Select(p => p.Drug).Distinct().Select(i => drugRows[i]).ToList());
        var (targetMean, targetScale) = Moments(train.Select(p => p.Target).Distinct().Select(i => targetRows[i]).ToList());
        double labelMean = train.Average(p => p.Affinity);
        double labelScale = Math.Sqrt(train.Average(p => (p.Affinity - labelMean) * (p.Affinity - labelMean)));
        var manifest = new AffinityManifest
        {
            Dataset = data.Name,
            Measure = data.Measure,
            Split = config.Data.Split,
            SplitSeed = config.Seed,
            TargetIdentity = targetIdentity,
            Hidden = config.Model.Hidden,
            Members = config.Model.Ensemble,
            DrugWidth = featurizer.DrugWidth,
            TargetWidth = featurizer.TargetWidth,
            DrugMean = drugMean,
            DrugScale = drugScale,
            TargetMean = targetMean,
            TargetScale = targetScale,
            LabelMean = labelMean,
            LabelScale = labelScale,
        };

        using var drugs = Standardized(drugRows, drugMean, drugScale, compute.Device);
        using var targets = Standardized(targetRows, targetMean, targetScale, compute.Device);
        var members = new List<AffinityNetwork>();
        var bestEpochs = new List<int>();
        var history = new List<JsonObject>();
        try
        {
            for (int k = 0; k < config.Model.Ensemble; k++)
            {
                TorchRuntime.Seed(MemberStream(config, k));
                var member = new AffinityNetwork(featurizer.DrugWidth, featurizer.TargetWidth, config.Model.Hidden, config.Model.Dropout);
                members.Add(member);
                member.to(compute.Device);
                var (bestEpoch, memberHistory) = Fit(member, drugs, targets, train, valid, manifest, config, k, compute.Device, clock, onEpoch);
                bestEpochs.Add(bestEpoch);
                history.AddRange(memberHistory);
            }
        }
        catch
        {
            foreach (var m in members) m.Dispose(); // an interrupted or failed run: the members trained so far go
            throw;
        }
        using var network = new AffinityEnsemble(members);

        var validPredictions = Predict(network, drugs, targets, valid, manifest);
        var testPredictions = Predict(network, drugs, targets, test, manifest);
        double binderThreshold = AffinityModel.BinderThreshold(data.Measure);
        var validMetrics = AffinityMetrics.All([.. valid.Select(p => p.Affinity)], validPredictions, binderThreshold);
        var testMetrics = AffinityMetrics.All([.. test.Select(p => p.Affinity)], testPredictions, binderThreshold);
        manifest = manifest with
        {
            BestEpochs = [.. bestEpochs],
            ValidationMetrics = Round(validMetrics),
            TestMetrics = Round(testMetrics),
            CreatedUtc = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
        };
        string output = config.Train.OutputDir;
        WriteRun(output, config, manifest, network, data, train.Concat(valid), test, testPredictions, history);
        return new DtiResult(output, [.. bestEpochs], validMetrics, testMetrics, test.Length);
    }

    /// <summary>Featurizes every drug of the dataset; a SMILES RDKit cannot read is an error naming the drug.</summary>
    private static float[][] DrugRows(AffinityDataset data, AffinityFeaturizer featurizer)
    {
        var molecules = new List<Molecule>();
        try
        {
            foreach (var drug in data.Drugs)
            {
                if (!Molecule.TryFromSmiles(drug.Text, out var molecule, out string? error))
                    throw new BioForgeException($"{data.DrugsFile}: drug '{drug.Id}': RDKit cannot read its SMILES '{drug.Text}': {error}");
                molecules.Add(molecule!);
            }
            return featurizer.Drugs(molecules);
        }
        finally
        {
            foreach (var m in molecules) m.Dispose();
        }
    }

    private static Tensor Standardized(float[][] rows, float[] mean, float[] scale, Device device)
    {
        using var scope = NewDisposeScope();
        return AffinityModel.Standardize(rows, tensor(mean).to(device), tensor(scale).to(device), device).MoveToOuterDisposeScope();
    }

    private static (float[] Mean, float[] Scale) Moments(IReadOnlyList<float[]> rows)
    {
        int width = rows[0].Length;
        var mean = new float[width];
        var scale = new float[width];
        for (int k = 0; k < width; k++)
        {
            double m = rows.Average(r => (double)r[k]);
            double v = rows.Average(r => (r[k] - m) * (r[k] - m));
            mean[k] = (float)m;
            scale[k] = v > 1e-12 ? (float)Math.Sqrt(v) : 1f; // constant columns pass through unscaled
        }
        return (mean, scale);
    }

    /// <summary>Trains one member, which ends with the weights of its best epoch on the validation fold.</summary>
    private static (int BestEpoch, List<JsonObject> History) Fit(AffinityNetwork network, Tensor drugs, Tensor targets,
        AffinityPair[] train, AffinityPair[] valid, AffinityManifest manifest, DtiConfig config, int member, Device device, Stopwatch clock, Action<DtiEpochReport>? onEpoch)
    {
        var parameters = network.parameters().ToList();
        using var optimizer = new FlatAdamW(parameters, new AdamWOptions { Beta1 = 0.9, Beta2 = 0.999, WeightDecay = config.Train.WeightDecay });
        int batches = (train.Length + config.Train.BatchSize - 1) / config.Train.BatchSize;
        var schedule = new LearningRateSchedule(config.Train.Lr, batches, (long)batches * config.Train.Epochs, LearningRateDecay.Cosine, 0.02);
        var validTruth = valid.Select(p => p.Affinity).ToArray();
        using var best = new BestWeights(parameters);
        best.Keep(); // no epoch improving on infinity (NaN throughout) leaves the initial weights
        double bestMse = double.PositiveInfinity;
        int bestEpoch = 0, step = 0;
        var history = new List<JsonObject>();
        var random = new Random((int)(MemberStream(config, member) % int.MaxValue));
        for (int epoch = 1; epoch <= config.Train.Epochs; epoch++)
        {
            network.train();
            var order = Enumerable.Range(0, train.Length).OrderBy(_ => random.Next()).ToArray();
            double sum = 0;
            foreach (var chunk in order.Chunk(config.Train.BatchSize))
            {
                using var scope = NewDisposeScope();
                var (d, t, y) = Batch(drugs, targets, [.. chunk.Select(i => train[i])], manifest, device);
                var loss = F.mse_loss(network.forward(d, t), y);
                loss.backward();
                optimizer.ClipGradNorm(5.0);
                optimizer.Update(schedule.At(++step));
                optimizer.ZeroGrad();
                sum += loss.item<float>() * chunk.Length;
            }
            var predictions = Predict(network, drugs, targets, valid, manifest);
            double mse = AffinityMetrics.MeanSquaredError(validTruth, predictions), ci = AffinityMetrics.ConcordanceIndex(validTruth, predictions);
            double trainMse = sum / train.Length * manifest.LabelScale * manifest.LabelScale;
            bool improved = mse < bestMse;
            if (improved)
            {
                bestMse = mse;
                bestEpoch = epoch;
                best.Keep();
            }
            history.Add(new JsonObject { ["member"] = member, ["epoch"] = epoch, ["train_mse"] = Math.Round(trainMse, 5), ["validation_mse"] = Math.Round(mse, 5), ["validation_ci"] = Math.Round(ci, 5) });
            onEpoch?.Invoke(new DtiEpochReport(member, epoch, config.Train.Epochs, trainMse, mse, ci, improved, clock.Elapsed));
            if (config.Train.Patience > 0 && epoch - bestEpoch >= config.Train.Patience) break;
        }
        best.Restore();
        return (bestEpoch, history);
    }

    private static (Tensor Drugs, Tensor Targets, Tensor Labels) Batch(Tensor drugs, Tensor targets, AffinityPair[] pairs, AffinityManifest manifest, Device device)
    {
        var d = tensor(pairs.Select(p => (long)p.Drug).ToArray()).to(device);
        var t = tensor(pairs.Select(p => (long)p.Target).ToArray()).to(device);
        var y = tensor(pairs.Select(p => (float)((p.Affinity - manifest.LabelMean) / manifest.LabelScale)).ToArray()).to(device);
        return (drugs.index_select(0, d), targets.index_select(0, t), y);
    }

    private static double[] Predict(nn.Module<Tensor, Tensor, Tensor> network, Tensor drugs, Tensor targets, AffinityPair[] pairs, AffinityManifest manifest)
    {
        network.eval();
        using var _ = no_grad();
        var result = new List<double>(pairs.Length);
        foreach (var chunk in pairs.Chunk(4096))
        {
            using var scope = NewDisposeScope();
            var (d, t, _) = Batch(drugs, targets, chunk, manifest, drugs.device);
            result.AddRange(network.forward(d, t).to(ScalarType.Float64).cpu().data<double>().ToArray().Select(v => v * manifest.LabelScale + manifest.LabelMean));
        }
        return [.. result];
    }

    private static Dictionary<string, double?> Round(Dictionary<string, double> metrics) =>
        metrics.ToDictionary(kv => kv.Key, kv => double.IsFinite(kv.Value) ? Math.Round(kv.Value, 4) : (double?)null);

    /// <summary>
    /// The benchmark's strong binders (pKd ≥ 7, i.e. Kd ≤ 100 nM, for Davis; KIBA score ≥ 12.1, the usual activity
    /// threshold) keyed by the SHA-256 of the target sequence, so screening can name each hit's nearest known binder.
    /// </summary>
    private static void WriteKnownBinders(string path, AffinityDataset data)
    {
        double threshold = AffinityModel.BinderThreshold(data.Measure);
        var text = new StringBuilder(string.Join(',', AffinityModel.KnownBindersHeader) + "\n");
        foreach (var pair in data.Pairs.Where(p => p.Affinity >= threshold))
            text.Append(AffinityModel.SequenceKey(data.Targets[pair.Target].Text)).Append(',').Append(Csv.Quote(data.Targets[pair.Target].Id)).Append(',')
                .Append(Csv.Quote(data.Drugs[pair.Drug].Id)).Append(',').Append(Csv.Quote(data.Drugs[pair.Drug].Text)).Append(',')
                .Append(pair.Affinity.ToString("F3", CultureInfo.InvariantCulture)).Append('\n');
        AtomicFile.WriteText(path, text.ToString());
    }

    /// <summary>
    /// The run directory is the model directory: weights, manifest, known binders and the targets and drugs it trained
    /// on (<see cref="AffinityModel.TrainingSetFolder"/>) beside the run's record, written whole.
    /// </summary>
    private static void WriteRun(string output, DtiConfig config, AffinityManifest manifest, AffinityEnsemble network, AffinityDataset data,
        IEnumerable<AffinityPair> trained, AffinityPair[] test, double[] predictions, List<JsonObject> history)
    {
        string full = Path.GetFullPath(output);
        // Language-model paths are stored relative to where the model will live, so the run directory can move with them.
        string? Relative(string? path) => path is null ? null : Path.GetRelativePath(full, Path.GetFullPath(path));
        manifest = manifest with { Features = config.Features with { ProteinModel = Relative(config.Features.ProteinModel), MoleculeModel = Relative(config.Features.MoleculeModel) } };
        RunDirectory.WriteWhole(full, "train.output_dir", run =>
        {
            string directory = run.Path;
            AtomicFile.WriteText(Path.Combine(directory, AffinityModel.ManifestFile), JsonSerializer.Serialize(manifest, YamlConfig.Serializer) + "\n");
            // Stored in float16, half the bytes of float32: the Davis model's test metrics are unchanged to the digits
            // reported (models/README.md); loading converts back to the network's float32.
            using (var scope = NewDisposeScope())
                SafetensorsWriter.Write(Path.Combine(directory, AffinityModel.WeightsFile),
                    [.. network.named_parameters().Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter.detach().cpu().to(ScalarType.Float16)))],
                    new Dictionary<string, string>());
            run.WriteConfig(config.ToJsonText());
            using (var metrics = run.OpenMetrics(0))
                foreach (var line in history) metrics.Write(line);
            var csv = new StringBuilder("drug,target,smiles,affinity,predicted\n");
            for (int i = 0; i < test.Length; i++)
                csv.Append(Csv.Quote(data.Drugs[test[i].Drug].Id)).Append(',').Append(Csv.Quote(data.Targets[test[i].Target].Id)).Append(',')
                    .Append(Csv.Quote(data.Drugs[test[i].Drug].Text)).Append(',')
                    .Append(test[i].Affinity.ToString("G6", CultureInfo.InvariantCulture)).Append(',')
                    .Append(predictions[i].ToString("G6", CultureInfo.InvariantCulture)).Append('\n');
            AtomicFile.WriteText(Path.Combine(directory, AffinityModel.TestPredictionsFile), csv.ToString());
            WriteKnownBinders(Path.Combine(directory, AffinityModel.KnownBindersFile), data);
            data.WriteEntries(Path.Combine(directory, AffinityModel.TrainingSetFolder), trained);
        });
    }

    /// <summary>
    /// The random stream of ensemble member <paramref name="member"/> of a run: distinct for every (seed, member), so
    /// seeds 0 and 1 no longer start from the same weights (the weights' stream was seed / 2 + member, the batch order's
    /// seed + member), and seed 0's members keep theirs.
    /// </summary>
    internal static long MemberStream(DtiConfig config, int member) => unchecked((long)config.Seed * config.Model.Ensemble + member);
}
