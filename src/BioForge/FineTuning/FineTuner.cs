using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using BioForge.Chem;
using BioForge.IO;
using BioForge.Models;
using BioForge.Runtime;
using BioForge.Statistics;
using BioForge.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BioForge.FineTuning;

public sealed record EpochReport(int Epoch, int Epochs, double TrainLoss, double? ValidLoss, IReadOnlyDictionary<string, double> ValidMetrics, bool Best, TimeSpan Elapsed);

public sealed record FineTuneOptions
{
    public Action<string>? OnInfo { get; init; }
    public Action<EpochReport>? OnEpoch { get; init; }
    /// <summary>Cancellation stops training after the current epoch; the run is then written with its best epoch so far.</summary>
    public CancellationToken Cancellation { get; init; }
}

/// <summary>
/// Fine-tuning, readable top to bottom: read and split the labelled CSV → encode → freeze / LoRA / train the encoder →
/// epochs of AdamW on the head (and encoder or adapters) → keep the epoch with the best validation loss → test metrics
/// and predictions. A frozen encoder is run once per input and its features cached, so only the head trains. The run
/// directory is assembled under a temporary name and renamed when complete.
/// </summary>
public static class FineTuner
{
    public const string HeadFile = "head.safetensors";
    public const string AdapterDirectory = "adapter";
    public const string EncoderDirectory = "encoder";
    public const string PredictionsFile = "test_predictions.csv";

    public static FineTuneManifest Run(FineTuneConfig config, FineTuneOptions options)
    {
        RunDirectory.RequireNew(config.Train.OutputDir, "train.output_dir");
        var compute = ComputeOptions.Resolve(config.Train.Device, "fp32", config.Train.Threads, "train.device");
        void Info(string message) => options.OnInfo?.Invoke(message);

        var split = ReadSplit(config);
        var labels = LabelSpace.Fit(config.TaskType, split.Train);
        using var model = CreateModel(config, labels, compute.Device);
        var encoder = model.Encoder;
        if (config.Mode != EncoderMode.Frozen && encoder.FrozenOnly is { } frozenOnly)
            throw new BioForgeException($"encoder.mode {config.Mode.ToString().ToLowerInvariant()}: {config.Model.Init}: {frozenOnly}; use encoder.mode frozen");
        if (config.TaskType != FineTuneTask.ResidueClassification && config.PoolingMode == Pooling.Cls && encoder.Causal)
            throw new BioForgeException($"task.pooling cls: {config.Model.Init} is a causal decoder whose first token sees nothing after it; use mean or last");

        // Inputs are cut to what the model has positions for, whatever data.max_length allows.
        int maxLength = Math.Min(config.Data.MaxLength, encoder.MaxTokens);
        var train = Encode(split.Train, encoder, labels, maxLength);
        var valid = Encode(split.Valid, encoder, labels, maxLength);
        var test = Encode(split.Test, encoder, labels, maxLength);
        var all = train.Concat(valid).Concat(test).ToList();
        Info($"{train.Count:N0} train / {valid.Count:N0} validation / {test.Count:N0} test ({config.Data.Split} split); "
            + $"{all.Count(e => e.Encoded.Truncated)} cut to {maxLength} tokens; {all.Count(e => e.Encoded.Unknown > 0)} with tokens unknown to the model"
            + UnreadMolecules(encoder, split));

        LoraAdapters? lora = null;
        try
        {
            foreach (var (name, p) in encoder.Network.named_parameters()) p.requires_grad = config.Mode == EncoderMode.Full && !SequenceEncoder.IsOutputHead(name);
            if (config.Mode == EncoderMode.Lora)
            {
                var targets = config.Encoder.Lora.TargetModules.Length > 0 ? config.Encoder.Lora.TargetModules : encoder.DefaultLoraTargets;
                lora = LoraAdapters.Attach(encoder.Network, new LoraOptions(config.Encoder.Lora.Rank, config.Encoder.Lora.Alpha, config.Encoder.Lora.Dropout, targets), config.Seed);
                Info(lora.Describe());
            }
            var trainable = model.Head.parameters().Concat(lora?.Parameters() ?? []).Concat(encoder.Network.parameters().Where(p => p.requires_grad)).ToList();
            long trainableCount = trainable.Sum(p => p.numel());
            Info($"{config.Mode.ToString().ToLowerInvariant()} {encoder.Family.ModelType} encoder, {trainableCount:N0} trainable parameters");

            using var cache = config.Mode == EncoderMode.Frozen ? FeatureCache.Build(model, all, config.Data.BatchSize) : null;
            FineTuneManifest result = null!;
            RunDirectory.WriteWhole(config.Train.OutputDir, "train.output_dir", run =>
            {
                var (manifest, testOutputs) = Train(config, model, trainable, cache, train, valid, test, labels, run, options);
                result = manifest with { TrainableParameters = trainableCount, MaxLength = maxLength };
                WriteRun(config, model, lora, result, test, testOutputs, run);
            });
            return result;
        }
        finally
        {
            lora?.Dispose();
        }
    }

    private static TaskModel CreateModel(FineTuneConfig config, LabelSpace labels, Device device)
    {
        var encoder = SequenceEncoder.Load(config.Model.Init, device);
        try
        {
            TorchRuntime.Seed((long)(config.Seed >> 1)); // the head's initial weights
            var head = new PredictionHead(encoder.HiddenSize, config.Task.HeadHidden, labels.Outputs, config.Task.HeadDropout);
            head.to(device);
            return new TaskModel(encoder, head, config.TaskType, config.PoolingMode, device);
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
    }

    private static (FineTuneManifest Manifest, List<double[]> TestOutputs) Train(FineTuneConfig config, TaskModel model, List<Parameter> trainable, FeatureCache? cache,
        List<Example> train, List<Example> valid, List<Example> test, LabelSpace labels, RunDirectory run, FineTuneOptions options)
    {
        using var optimizer = new FlatAdamW(trainable, config.AdamW);
        int batchesPerEpoch = (train.Count + config.Data.BatchSize - 1) / config.Data.BatchSize;
        var schedule = config.Schedule((long)batchesPerEpoch * config.Train.Epochs);
        using var metrics = run.OpenMetrics(0);
        var clock = Stopwatch.StartNew();
        using var best = new BestWeights(trainable);
        double bestLoss = double.PositiveInfinity;
        int bestEpoch = 0, epoch = 0, step = 0;
        string? diverged = null; // why a loss stopped being finite
        Dictionary<string, double> bestValid = [];
        while (epoch < config.Train.Epochs && !options.Cancellation.IsCancellationRequested)
        {
            epoch++;
            SetTraining(model, config.Mode);
            var order = Enumerable.Range(0, train.Count).OrderBy(i => StatelessRandom.Hash(config.Seed, epoch, i)).ToList();
            double lossSum = 0;
            long units = 0;
            foreach (var chunk in order.Chunk(config.Data.BatchSize))
            {
                step++;
                TorchRuntime.Seed((long)(StatelessRandom.Hash(config.Seed, step, 0xD80) >> 1)); // dropout
                using var scope = NewDisposeScope();
                var batch = chunk.Select(i => train[i]).ToList();
                var outputs = model.Outputs(cache?.Gather(batch) ?? model.Features([.. batch.Select(e => e.Encoded)]));
                var loss = model.Loss(outputs, batch);
                loss.backward();
                if (config.Optimizer.GradClip > 0) optimizer.ClipGradNorm(config.Optimizer.GradClip);
                optimizer.Update(schedule.At(step));
                optimizer.ZeroGrad();
                lossSum += loss.item<float>() * outputs.shape[0];
                units += outputs.shape[0];
            }
            double trainLoss = lossSum / Math.Max(1, units);
            if (!double.IsFinite(trainLoss))
            {
                diverged = $"epoch {epoch}: the training loss is {trainLoss}; lower optimizer.lr or enable optimizer.grad_clip";
                break;
            }

            var line = new JsonObject { ["epoch"] = epoch, ["step"] = step, ["train_loss"] = Math.Round(trainLoss, 6), ["lr"] = schedule.At(step) };
            bool improved = false;
            double? validLoss = null;
            var validMetrics = new Dictionary<string, double>();
            if (valid.Count > 0)
            {
                var evaluation = Evaluate(model, valid, cache, labels, config.Data.BatchSize);
                validLoss = evaluation.Loss;
                if (!double.IsFinite(evaluation.Loss))
                {
                    diverged = $"epoch {epoch}: the validation loss is {evaluation.Loss}; lower optimizer.lr or enable optimizer.grad_clip";
                    break;
                }
                validMetrics = Metrics(labels, valid, evaluation.Outputs);
                line["valid_loss"] = Math.Round(evaluation.Loss, 6);
                foreach (var (name, value) in validMetrics) line[$"valid_{name}"] = double.IsFinite(value) ? Math.Round(value, 6) : null;
                improved = evaluation.Loss < bestLoss;
            }
            else improved = true; // nothing to select on: the last epoch is the model
            if (improved)
            {
                bestLoss = validLoss ?? trainLoss;
                bestEpoch = epoch;
                bestValid = validMetrics;
                best.Keep();
            }
            metrics.Write(line);
            options.OnEpoch?.Invoke(new EpochReport(epoch, config.Train.Epochs, trainLoss, validLoss, validMetrics, improved, clock.Elapsed));
            if (config.Train.Patience > 0 && epoch - bestEpoch >= config.Train.Patience) break;
        }
        // Stopped or diverged before one epoch was kept: there is no trained model to write, so nothing is written.
        if (!best.Kept) throw diverged is not null ? new BioForgeException(diverged)
            : new OperationCanceledException("stopped before the first epoch ended", options.Cancellation);
        // Diverged later: the best epoch so far is the model, as when stopped.
        if (diverged is not null) options.OnInfo?.Invoke($"warning: {diverged}; the best epoch so far ({bestEpoch}) is kept");
        best.Restore();

        var testOutputs = test.Count > 0 ? Evaluate(model, test, cache, labels, config.Data.BatchSize).Outputs : [];
        var testMetrics = test.Count > 0 ? Metrics(labels, test, testOutputs) : [];
        var baseline = test.Count > 0 ? Metrics(labels, test, Baseline(labels, train, test)) : [];
        baseline.Remove("pearson"); // correlations of a constant are undefined
        baseline.Remove("spearman");
        var manifest = new FineTuneManifest
        {
            Task = config.Task.Type,
            ModelType = model.Encoder.Family.ModelType,
            // In full: a run is used from other folders (finetune predict, the server) than the one it was started in.
            BaseModel = Path.GetFullPath(config.Model.Init),
            EncoderMode = config.Encoder.Mode,
            Pooling = config.Task.Pooling,
            HeadHidden = config.Task.HeadHidden,
            MaxLength = config.Data.MaxLength,
            SequenceColumn = config.Data.SequenceColumn,
            LabelColumn = config.Data.LabelColumn,
            Classes = [.. labels.Classes],
            TargetMean = labels.Mean,
            TargetStd = labels.Std,
            BestEpoch = bestEpoch,
            EpochsRun = epoch,
            Examples = new() { ["train"] = train.Count, ["valid"] = valid.Count, ["test"] = test.Count },
            Valid = FineTuneManifest.Finite(bestValid),
            Test = FineTuneManifest.Finite(testMetrics),
            TestBaseline = FineTuneManifest.Finite(baseline),
        };
        return (manifest, testOutputs);
    }

    private static DataSplit ReadSplit(FineTuneConfig config)
    {
        var d = config.Data;
        // A test or validation file that is the training file measures the model on what it learnt.
        foreach (var (key, path) in new[] { ("data.valid", d.Valid), ("data.test", d.Test) })
            if (path is not null && Path.GetFullPath(path) == Path.GetFullPath(d.Train))
                throw new BioForgeException($"{key} {path} is data.train: its rows would be training rows; give another file or leave it out to split data.train");
        if (d.Valid is not null && d.Test is not null && Path.GetFullPath(d.Valid) == Path.GetFullPath(d.Test))
            throw new BioForgeException($"data.test {d.Test} is data.valid: the model would be chosen on its test rows; give another file or leave one out");
        var rows = LabelledData.Read(d.Train, d.SequenceColumn, d.LabelColumn);
        List<LabelledRow>? valid = d.Valid is null ? null : LabelledData.Read(d.Valid, d.SequenceColumn, d.LabelColumn);
        List<LabelledRow>? test = d.Test is null ? null : LabelledData.Read(d.Test, d.SequenceColumn, d.LabelColumn);
        if (valid is not null && test is not null) return new DataSplit(rows, valid, test);
        // Split off only what no file provides.
        var split = d.Split is "scaffold" or "scaffold_balanced"
            ? LabelledData.Scaffold(rows, valid is null ? d.ValidFraction : 0, test is null ? d.TestFraction : 0, d.Split == "scaffold_balanced" ? config.Seed : null)
            : LabelledData.Random(rows, valid is null ? d.ValidFraction : 0, test is null ? d.TestFraction : 0, config.Seed);
        if (split.Train.Count == 0) throw new BioForgeException($"{d.Train}: no rows left for training after the split");
        return new DataSplit(split.Train, valid ?? split.Valid, test ?? split.Test);
    }

    private static List<Example> Encode(IReadOnlyList<LabelledRow> rows, SequenceEncoder encoder, LabelSpace labels, int maxLength) =>
        [.. rows.Select(row =>
        {
            EncodedSequence encoded;
            try
            {
                encoded = encoder.Encode(row.Sequence);
            }
            catch (BioForgeException e)
            {
                throw new BioForgeException($"{row.Where}: {e.Message}{Mismatch(encoder.Alphabet, row.Sequence)}");
            }
            return labels.ToExample(row, encoded, maxLength);
        })];

    /// <summary>
    /// Said, not passed over: rows of a SMILES model that RDKit reads as no molecule (MoleculeNet's BBBP has 11, a
    /// nitrogen with five bonds). The model reads them as text and they stay in the data, as in the published runs;
    /// <c>finetune predict</c> answers such a row with its reason instead of a prediction.
    /// </summary>
    private static string UnreadMolecules(SequenceEncoder encoder, DataSplit split)
    {
        if (encoder.Alphabet != SequenceAlphabet.Smiles || Molecule.Unavailable() is not null) return "";
        var unread = split.Train.Concat(split.Valid).Concat(split.Test).Where(row =>
        {
            if (!Molecule.TryFromSmiles(row.Sequence, out var molecule, out _)) return true;
            molecule!.Dispose();
            return false;
        }).ToList();
        return unread.Count == 0 ? "" : $"; {unread.Count} RDKit reads as no molecule (first {unread[0].Where}), kept as text";
    }

    /// <summary>A hint when the rows are the other kind of sequence than the model reads: SMILES such as CCO are residue
    /// letters too, so a protein model can read many molecules before one fails.</summary>
    private static string Mismatch(SequenceAlphabet alphabet, string sequence)
    {
        bool residues = sequence.Length > 0 && sequence.All(c => "ACDEFGHIKLMNPQRSTVWYXBZUO".Contains(char.ToUpperInvariant(c)));
        if (alphabet == SequenceAlphabet.Protein && !residues && IsSmiles(sequence))
            return " (the column holds SMILES, and model.init is a protein model: fine-tune a SMILES model on molecules)";
        if (alphabet == SequenceAlphabet.Smiles && residues && sequence.Length >= 20)
            return " (the column holds protein sequences, and model.init is a SMILES model: fine-tune a protein model on proteins)";
        return "";
    }

    private static bool IsSmiles(string text)
    {
        if (Chem.Molecule.Unavailable() is not null || !Chem.Molecule.TryFromSmiles(text, out var molecule, out _)) return false;
        molecule!.Dispose();
        return true;
    }

    private static void SetTraining(TaskModel model, EncoderMode mode)
    {
        model.Head.train();
        model.Encoder.Network.train(mode != EncoderMode.Frozen);
    }

    private sealed record Evaluation(double Loss, List<double[]> Outputs);

    /// <summary>Mean loss and, per sequence or residue, the prediction in label units (a value, or class probabilities).</summary>
    private static Evaluation Evaluate(TaskModel model, List<Example> examples, FeatureCache? cache, LabelSpace labels, int batchSize)
    {
        model.Head.eval();
        model.Encoder.Network.eval();
        using var _ = no_grad();
        double lossSum = 0;
        long units = 0;
        var outputs = new List<double[]>();
        foreach (var batch in examples.Chunk(batchSize))
        {
            using var scope = NewDisposeScope();
            var raw = model.Outputs(cache?.Gather(batch) ?? model.Features([.. batch.Select(e => e.Encoded)]));
            lossSum += model.Loss(raw, batch).item<float>() * raw.shape[0];
            units += raw.shape[0];
            outputs.AddRange(Readable(raw, labels));
        }
        return new Evaluation(lossSum / Math.Max(1, units), outputs);
    }

    /// <summary>Model outputs as label units: un-standardised values, or softmax probabilities.</summary>
    internal static IEnumerable<double[]> Readable(Tensor raw, LabelSpace labels)
    {
        using var values = (labels.Task == FineTuneTask.Regression ? raw : raw.softmax(-1)).to(ScalarType.Float64).cpu();
        var flat = values.data<double>().ToArray();
        int width = (int)raw.shape[1];
        for (int i = 0; i < flat.Length / width; i++)
        {
            var row = flat.AsSpan(i * width, width).ToArray();
            yield return labels.Task == FineTuneTask.Regression ? [labels.Unstandardize(row[0])] : row;
        }
    }

    private static Dictionary<string, double> Metrics(LabelSpace labels, List<Example> examples, List<double[]> outputs) =>
        labels.Task == FineTuneTask.Regression
            ? TaskMetrics.Regression([.. examples.Select(e => labels.Unstandardize(e.Target))], [.. outputs.Select(o => o[0])])
            : TaskMetrics.Classification([.. examples.SelectMany(e => e.Classes.Select(c => (int)c))], outputs);

    /// <summary>What knowing only the training labels gives: the mean value, or the class frequencies, for every input.</summary>
    private static List<double[]> Baseline(LabelSpace labels, List<Example> train, List<Example> test)
    {
        if (labels.Task == FineTuneTask.Regression)
            return [.. Enumerable.Repeat(new[] { labels.Mean }, test.Count)];
        var counts = new double[labels.Classes.Count];
        foreach (var c in train.SelectMany(e => e.Classes)) counts[c]++;
        var frequencies = counts.Select(c => c / counts.Sum()).ToArray();
        return [.. Enumerable.Repeat(frequencies, test.Sum(e => e.Classes.Length))];
    }

    private static void WriteRun(FineTuneConfig config, TaskModel model, LoraAdapters? lora, FineTuneManifest manifest, List<Example> test, List<double[]> testOutputs, RunDirectory run)
    {
        string directory = run.Path;
        model.Head.Save(Path.Combine(directory, HeadFile));
        lora?.Save(Path.Combine(directory, AdapterDirectory), Path.GetFullPath(config.Model.Init), model.Encoder.Family); // as finetune.json: the run is read from anywhere
        if (config.Mode == EncoderMode.Full) model.Encoder.Save(Path.Combine(directory, EncoderDirectory));
        run.WriteConfig(config.ToJsonText());
        if (test.Count > 0) AtomicFile.WriteText(Path.Combine(directory, PredictionsFile), PredictionTable(manifest.Labels, test, testOutputs));
        manifest.Save(directory);
    }

    private static string PredictionTable(LabelSpace labels, List<Example> examples, List<double[]> outputs)
    {
        var text = new StringBuilder();
        var header = new List<string> { "source", "line", "sequence", "label", "prediction" };
        if (labels.Task == FineTuneTask.Classification) header.AddRange(labels.Classes.Select(c => Csv.Quote($"p_{c}")));
        text.AppendJoin(',', header).Append('\n');
        int next = 0;
        foreach (var e in examples)
        {
            int units = labels.Task == FineTuneTask.ResidueClassification ? e.Classes.Length : 1;
            var mine = outputs.GetRange(next, units);
            next += units;
            var fields = new List<string> { Csv.Quote(e.Row.Source), e.Row.Line.ToString(CultureInfo.InvariantCulture), Csv.Quote(e.Row.Sequence), Csv.Quote(e.Row.Label), Csv.Quote(Describe(labels, mine, e.Row.Label)) };
            if (labels.Task == FineTuneTask.Classification) fields.AddRange(mine[0].Select(p => p.ToString("G6", CultureInfo.InvariantCulture)));
            text.AppendJoin(',', fields).Append('\n');
        }
        return text.ToString();
    }

    /// <summary>A prediction as text: the value, the most probable class, or one class per residue (joined as the label was).</summary>
    internal static string Describe(LabelSpace labels, IReadOnlyList<double[]> outputs, string? labelExample = null) => labels.Task switch
    {
        FineTuneTask.Regression => outputs[0][0].ToString("G6", CultureInfo.InvariantCulture),
        FineTuneTask.Classification => labels.Classes[TaskMetrics.ArgMax(outputs[0])],
        _ => string.Join(labelExample?.Any(char.IsWhiteSpace) == true || labels.Classes.Any(c => c.Length != 1) ? " " : "",
            outputs.Select(o => labels.Classes[TaskMetrics.ArgMax(o)])),
    };
}

/// <summary>Features of a frozen encoder, computed once per input (a pooled row, or one row per residue).</summary>
internal sealed class FeatureCache : IDisposable
{
    private readonly Dictionary<Example, Tensor> rows = new(ReferenceEqualityComparer.Instance);

    public static FeatureCache Build(TaskModel model, IReadOnlyList<Example> examples, int batchSize)
    {
        var cache = new FeatureCache();
        model.Encoder.Network.eval();
        using var _ = no_grad();
        foreach (var batch in examples.Chunk(batchSize))
        {
            using var scope = NewDisposeScope();
            var features = model.Features([.. batch.Select(e => e.Encoded)]);
            long offset = 0;
            foreach (var e in batch)
            {
                long n = model.Task == FineTuneTask.ResidueClassification ? e.Encoded.Residues : 1;
                // The cache owns its rows (freed by its Dispose): no caller's scope may take them.
                cache.rows[e] = features.narrow(0, offset, n).clone().DetachFromDisposeScope();
                offset += n;
            }
        }
        return cache;
    }

    public Tensor Gather(IReadOnlyList<Example> batch) => cat(batch.Select(e => rows[e]).ToArray(), 0);

    public void Dispose()
    {
        foreach (var t in rows.Values) t.Dispose();
    }
}
