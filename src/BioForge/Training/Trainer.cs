using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using BioForge.Distributed;
using BioForge.IO;
using BioForge.Models.Esm;
using BioForge.Models.Llama;
using BioForge.Runtime;
using BioForge.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.Training;

/// <summary>What one logged optimizer step looked like.</summary>
/// <param name="Tokens">Tokens (padding excluded) trained on since the previous report.</param>
public sealed record StepReport(long Step, long TotalSteps, double Loss, double LearningRate, double GradNorm, double TokensPerSecond, TimeSpan Elapsed, long Tokens)
{
    /// <summary>Remaining time at the throughput of this run so far.</summary>
    public TimeSpan Remaining(long startStep) =>
        Step <= startStep ? TimeSpan.Zero : Elapsed * ((double)(TotalSteps - Step) / (Step - startStep));
}

public sealed record ValidationReport(long Step, double Loss, long Tokens)
{
    public double Perplexity => Math.Exp(Loss);
}

public sealed record TrainingResult(long Step, long StartStep, string ModelDirectory, string? Checkpoint, ValidationReport? Validation, bool Interrupted);

public sealed record TrainerOptions
{
    /// <summary>Continue from the latest checkpoint of the run directory (or from <see cref="ResumeFrom"/>).</summary>
    public bool Resume { get; init; }
    public string? ResumeFrom { get; init; }
    /// <summary>Stop (with a checkpoint) after this step, although the schedule runs to train.steps.</summary>
    public long? StopAt { get; init; }
    public Action<StepReport>? OnStep { get; init; }
    public Action<ValidationReport>? OnValidation { get; init; }
    public Action<string>? OnCheckpoint { get; init; }
    /// <summary>Cancellation (Ctrl+C) stops after the current step and writes a checkpoint.</summary>
    public CancellationToken Cancellation { get; init; }
    public Action<string>? OnInfo { get; init; }
    /// <summary>The ranks training together (laid out as data × tensor parallel); by default the process group of the launch (a world of one without a launcher).</summary>
    public Communicator? Group { get; init; }
}

/// <summary>
/// The pre-training loop, readable top to bottom: micro-batches → loss → backward → (accumulate) → clip → AdamW step,
/// with validation, JSON-lines metrics and checkpoints. Everything random is a pure function of (seed, step, epoch,
/// index), so a run resumed from a checkpoint produces the same weights bit for bit as one that never stopped.
/// </summary>
public static class Trainer
{
    public const string MetricsFile = "metrics.jsonl";
    public const string ConfigFile = "run_config.json";
    public const string ModelDirectory = "model";

    public static TrainingResult Run(RunConfig config, TrainerOptions options)
    {
        var compute = ComputeOptions.Resolve(config.Train.Device, config.Train.Precision == "bf16-mixed" ? "bf16" : "fp32", config.Train.Threads);
        compute = compute with { Device = ParallelGrid.LocalDevice(compute.Device, ProcessGroup.Launch) };
        string output = config.Train.OutputDir;
        var checkpoints = new CheckpointStore(Path.Combine(output, "checkpoints"), config.Checkpoint.Keep);
        string? resumeFrom = ResumePoint(options, checkpoints);
        var state = resumeFrom is null ? null : CheckpointStore.ReadState(resumeFrom);
        if (state is not null && state.Precision != config.Train.Precision)
            throw new BioForgeException($"{resumeFrom}: written with precision {state.Precision}, the configuration says {config.Train.Precision}");

        // Tensor-parallel ranks share micro-batches and split every layer; data-parallel ranks split the micro-batches.
        using var grid = new ParallelGrid(options.Group ?? ProcessGroup.World, config.Train.TensorParallel, compute.Device);
        var layout = new ParallelLayout(grid.Tensor, config.Train.VocabParallel);
        using var train = OpenSplit(config.Data.Dir, "train");
        using var validStore = File.Exists(TokenStore.IdxPath(Path.Combine(config.Data.Dir, "valid"))) ? OpenSplit(config.Data.Dir, "valid") : null;
        var valid = validStore is { Count: > 0 } ? validStore : null; // prepared with --validation-fraction 0: nothing to validate on
        using var task = CreateTask(config, resumeFrom, compute, layout);
        if (train.VocabularySize > task.VocabularySize)
            throw new BioForgeException($"{config.Data.Dir}: the corpus uses {train.VocabularySize} token ids but the model has {task.VocabularySize}");
        var clusterMembers = config.Data.ClusterSampling ? Clusters.ReadMembers(Path.Combine(config.Data.Dir, "train"), train.Count) : null;
        var stream = new TrainingStream(train, config.Data.MaxLength, config.Data.TokensPerBatch, config.Data.Packing,
            randomCrop: config.Model.Type == "esm", config.Seed, clusterMembers);
        // Every data-parallel replica starts from replica 0's weights; only world rank 0 writes files and reports, and
        // the tensor-parallel group around it (data-parallel rank 0) validates and gathers whole tensors for it.
        bool lead = grid.World.Rank == 0, leadReplica = grid.Data.Rank == 0;
        bool zero = config.Train.ZeroStage == 1 && grid.Data.Size > 1;
        using var optimizer = new FlatAdamW(task.Network.named_parameters(), config.AdamW, zero ? grid.Data : null, task.Sharding);
        optimizer.Broadcast(grid.Data);
        if (resumeFrom is not null) LoadOptimizer(optimizer, resumeFrom, state!.Step);
        options.OnInfo?.Invoke(FormattableString.Invariant($"optimizer state {optimizer.StateBytes} bytes per rank ({grid.Data.Size} data-parallel × {grid.Tensor.Size} tensor-parallel rank(s){(zero ? ", ZeRO-1" : "")}{(layout.SplitsVocabulary ? ", vocabulary split" : "")})"));

        if (lead)
        {
            Directory.CreateDirectory(output);
            AtomicFile.WriteText(Path.Combine(output, ConfigFile), config.ToJsonText() + "\n");
        }
        using var metrics = lead ? OpenMetrics(Path.Combine(output, MetricsFile), state?.Step ?? 0) : null;

        long step = state?.Step ?? 0, startStep = step, tokensSeen = state?.TokensSeen ?? 0;
        var position = state?.Position ?? new StreamPosition(0, 0);
        long stopAt = Math.Min(options.StopAt ?? config.Train.Steps, config.Train.Steps);
        ValidationReport? lastValidation = null;
        string? lastCheckpoint = resumeFrom;
        var clock = Stopwatch.StartNew();
        long windowTokens = 0;
        double windowSeconds = 0; // training compute only: validation and checkpoint time is not throughput

        bool cancelled = false;
        while (step < stopAt && !cancelled)
        {
            var stepClock = Stopwatch.StartNew();
            (double stepLoss, long stepTokens, double gradNorm, double lr, position) = TrainStep(task, stream, position, optimizer, config, compute.Device, step, grid.Data);
            step++;
            windowSeconds += stepClock.Elapsed.TotalSeconds;
            tokensSeen += stepTokens;
            windowTokens += stepTokens;

            if (!double.IsFinite(stepLoss))
                throw new BioForgeException($"step {step}: the loss is {stepLoss}; lower optimizer.lr or enable optimizer.grad_clip");
            // Ranks stop together: a Ctrl+C seen by any rank stops all of them after this step.
            cancelled = Agree(grid.World, options.Cancellation.IsCancellationRequested);
            if (lead && (step % config.Train.LogEvery == 0 || step == stopAt))
            {
                var report = new StepReport(step, config.Train.Steps, stepLoss, lr, gradNorm, windowTokens / windowSeconds, clock.Elapsed, windowTokens);
                WriteMetric(metrics, new JsonObject
                {
                    ["step"] = step,
                    ["loss"] = Round(stepLoss),
                    ["lr"] = lr,
                    ["grad_norm"] = Round(gradNorm),
                    ["tokens_per_second"] = Math.Round(report.TokensPerSecond, 1),
                    ["tokens"] = tokensSeen,
                    ["epoch"] = position.Epoch,
                    ["elapsed_seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 3),
                });
                options.OnStep?.Invoke(report);
                windowTokens = 0;
                windowSeconds = 0;
            }

            bool last = step == config.Train.Steps;
            if (leadReplica && valid is not null && ((config.Validation.Every > 0 && step % config.Validation.Every == 0) || last))
            {
                lastValidation = Validate(task, valid, config, compute.Device, step);
                WriteMetric(metrics, new JsonObject
                {
                    ["step"] = step,
                    ["validation_loss"] = Round(lastValidation.Loss),
                    ["validation_perplexity"] = Round(lastValidation.Perplexity),
                    ["validation_tokens"] = lastValidation.Tokens,
                });
                if (lead) options.OnValidation?.Invoke(lastValidation);
            }

            bool stopping = step == stopAt || cancelled;
            if ((config.Checkpoint.Every > 0 && step % config.Checkpoint.Every == 0) || stopping)
            {
                using var scope = NewDisposeScope();
                var optimizerState = optimizer.State(); // every rank: ZeRO-1 and tensor parallelism gather here
                var weights = leadReplica ? task.UnshardedWeights() : null;
                if (lead)
                {
                    var current = new TrainerState
                    {
                        Step = step,
                        Epoch = position.Epoch,
                        BatchInEpoch = position.Batch,
                        TokensSeen = tokensSeen,
                        Seed = config.Seed,
                        Precision = config.Train.Precision,
                        LastValidationLoss = lastValidation?.Loss,
                    };
                    lastCheckpoint = checkpoints.Save(step, directory => WriteCheckpoint(directory, task, weights!, optimizerState, optimizer.Step, current));
                    options.OnCheckpoint?.Invoke(lastCheckpoint);
                }
            }
        }

        string modelDirectory = Path.Combine(output, ModelDirectory);
        bool finished = step == config.Train.Steps;
        if (finished && leadReplica)
        {
            using var scope = NewDisposeScope();
            var weights = task.UnshardedWeights();
            if (lead) SaveModel(task, weights, modelDirectory);
        }
        grid.World.Barrier(); // the model and last checkpoint exist when any rank returns
        return new TrainingResult(step, startStep, modelDirectory, lastCheckpoint, lastValidation, Interrupted: !finished);
    }

    /// <summary>
    /// One optimizer step over <c>accumulation</c> × ranks micro-batches, taken from the stream in order and dealt
    /// round-robin to the data-parallel ranks; each loss is summed over its scored tokens and divided by the step's
    /// total across ranks, so the summed gradients equal those of one large batch on one process. Then the gradient
    /// all-reduce (once per step, not per micro-batch), clipping, and AdamW at the schedule's rate.
    /// </summary>
    private static (double Loss, long Tokens, double GradNorm, double LearningRate, StreamPosition Next) TrainStep(
        ILanguageModelTask task, TrainingStream stream, StreamPosition position, FlatAdamW optimizer, RunConfig config, Device device, long step,
        Communicator group)
    {
        task.Network.train();
        var micro = new List<(int Index, List<TrainingExample> Examples)>();
        for (int m = 0; m < config.Train.Accumulation * group.Size; m++)
        {
            var (sequences, next) = stream.Next(position);
            if (m % group.Size == group.Rank) micro.Add((m, [.. sequences.Select(s => task.Example(s, config.Seed, next.Epoch, augment: true))]));
            position = next;
        }
        long scored = (long)Sum(group, micro.Sum(b => b.Examples.Sum(e => e.Labels.Count(l => l != MaskedLanguageModeling.Ignore))));
        double lossSum = 0;
        long tokens = 0;
        foreach (var (index, examples) in micro)
        {
            // Dropout draws from the global generator; seeding it per (step, micro-batch) makes the masks independent
            // of history and of which rank computes the micro-batch.
            long seed = (long)(StatelessRandom.Hash(config.Seed, step, index, 0x5EED) >> 1);
            torch.manual_seed(seed);
            if (device.type == DeviceType.CUDA) torch.cuda.manual_seed_all(seed);
            using var scope = NewDisposeScope();
            var batch = MicroBatches.Collate(examples, task.PadId, device);
            var loss = task.LossSum(batch);
            loss.Div(Math.Max(1, scored)).backward();
            optimizer.AccumulateGradients();
            lossSum += loss.item<float>();
            tokens += batch.Tokens;
        }
        optimizer.ReduceGradients(group, (long)(config.Train.BucketMb * (1 << 20) / 4));
        lossSum = Sum(group, lossSum);
        tokens = (long)Sum(group, tokens);
        double gradNorm = config.Optimizer.GradClip > 0 ? optimizer.ClipGradNorm(config.Optimizer.GradClip) : double.NaN;
        double lr = config.LearningRate.At(step + 1);
        optimizer.Update(lr);
        optimizer.ZeroGrad();
        return (lossSum / Math.Max(1, scored), tokens, gradNorm, lr, position);
    }

    /// <summary>A number summed over the group (float64: exact for counts below 2^53).</summary>
    private static double Sum(Communicator group, double value)
    {
        if (group.Size == 1) return value;
        using var t = tensor(new[] { value });
        group.AllReduce(t);
        return t.item<double>();
    }

    private static bool Agree(Communicator group, bool flag) => group.Size == 1 ? flag : Sum(group, flag ? 1 : 0) > 0;

    private static string? ResumePoint(TrainerOptions options, CheckpointStore checkpoints)
    {
        if (options.ResumeFrom is not null)
        {
            if (!Directory.Exists(options.ResumeFrom)) throw new BioForgeException($"--resume {options.ResumeFrom}: no such checkpoint directory");
            return options.ResumeFrom;
        }
        string? latest = checkpoints.Latest();
        if (options.Resume)
            return latest ?? throw new BioForgeException($"--resume: {checkpoints.Directory} holds no complete checkpoint");
        if (latest is not null)
            throw new BioForgeException($"{checkpoints.Directory} already holds checkpoints (latest {Path.GetFileName(latest)}); pass --resume to continue that run, or choose another train.output_dir");
        return null;
    }

    private static TokenStore.Reader OpenSplit(string directory, string split)
    {
        string prefix = Path.Combine(directory, split);
        if (!File.Exists(TokenStore.IdxPath(prefix)))
            throw new BioForgeException($"data.dir {directory}: no {split}.idx (prepare the corpus with `bioforge data prepare`)");
        return new TokenStore.Reader(prefix);
    }

    private static ILanguageModelTask CreateTask(RunConfig config, string? resumeFrom, ComputeOptions compute, ParallelLayout layout)
    {
        string? source = resumeFrom ?? config.Model.Init;
        if (config.Model.Type == "esm")
        {
            if (!File.Exists(Path.Combine(config.Data.Dir, "vocab.txt")))
                throw new BioForgeException($"data.dir {config.Data.Dir}: no vocab.txt; an ESM model needs a corpus prepared with --tokenizer esm");
            var checkpoint = source is not null
                ? EsmCheckpoint.Load(source, compute.Device, compute.DType, layout)
                : EsmCheckpoint.Random(NewConfig(config, EsmConfig.Keys, json =>
                {
                    json["position_embedding_type"] ??= "rotary"; // Hugging Face's default is "absolute"; ESM-2 is rotary
                    return EsmConfig.FromJson(json, "model.config");
                }, EsmTokenizer.Esm2.Vocabulary.Count),
                    compute.Device, compute.DType, (long)config.Seed, layout);
            try
            {
                checkpoint.Model.ActivationCheckpointing = config.Train.ActivationCheckpointing;
            }
            catch (BioForgeException e)
            {
                checkpoint.Dispose();
                throw new BioForgeException($"train.activation_checkpointing: {e.Message}");
            }
            return new MaskedLanguageModelTask(checkpoint);
        }
        var vocabulary = SmilesVocabulary.Load(Path.Combine(config.Data.Dir, SmilesVocabulary.FileName));
        var llama = source is not null
            ? LlamaCheckpoint.Load(source, compute.Device, compute.DType, layout)
            : LlamaCheckpoint.Random(NewConfig(config, LlamaConfig.Keys, json => LlamaConfig.FromJson(json, "model.config"), vocabulary.Count) with
            {
                BosTokenId = SmilesVocabulary.BosId,
                EosTokenId = SmilesVocabulary.EosId,
                PadTokenId = SmilesVocabulary.PadId,
            }, vocabulary, compute.Device, compute.DType, (long)config.Seed, layout);
        if (llama.Vocabulary is not null && !llama.Vocabulary.Tokens.SequenceEqual(vocabulary.Tokens))
        {
            llama.Dispose();
            throw new BioForgeException($"{source}: its vocab.json differs from the corpus vocabulary in {config.Data.Dir}");
        }
        llama.Model.ActivationCheckpointing = config.Train.ActivationCheckpointing;
        return new CausalLanguageModelTask(llama, config.Data.RandomizeSmiles, config.Data.MaxLength);
    }

    /// <summary>A network config from <c>model.config</c>, with the vocabulary size the data implies.</summary>
    private static T NewConfig<T>(RunConfig config, IReadOnlySet<string> keys, Func<JsonObject, T> read, int vocabularySize)
    {
        var json = config.Model.Config?.DeepClone().AsObject() ?? [];
        foreach (var (key, _) in json)
            if (!keys.Contains(key)) throw new BioForgeException($"model.config: unknown key '{key}' for a {config.Model.Type} network");
        if (json["vocab_size"] is JsonValue given && given.GetValue<long>() != vocabularySize)
            throw new BioForgeException($"model.config.vocab_size is {given} but the corpus vocabulary has {vocabularySize} tokens (leave it out)");
        json["vocab_size"] = vocabularySize;
        try
        {
            return read(json);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new BioForgeException($"model.config: a value has the wrong type ({e.Message})");
        }
    }

    private static ValidationReport Validate(ILanguageModelTask task, TokenStore.Reader valid, RunConfig config, Device device, long step)
    {
        task.Network.eval();
        using var _ = no_grad();
        double sum = 0;
        long scored = 0, tokens = 0;
        int batches = 0;
        foreach (var sequences in TrainingStream.Validation(valid, config.Data.MaxLength, config.Data.TokensPerBatch, config.Seed))
        {
            if (config.Validation.MaxBatches > 0 && batches++ >= config.Validation.MaxBatches) break;
            using var scope = NewDisposeScope();
            var batch = MicroBatches.Collate(sequences.Select(s => task.Example(s, config.Seed, epoch: -1, augment: false)).ToList(), task.PadId, device);
            sum += task.LossSum(batch).item<float>();
            scored += batch.ScoredTokens;
            tokens += batch.Tokens;
        }
        return new ValidationReport(step, scored == 0 ? double.NaN : sum / scored, tokens);
    }

    private static void WriteCheckpoint(string directory, ILanguageModelTask task, IReadOnlyList<KeyValuePair<string, Tensor>> weights,
        IReadOnlyList<KeyValuePair<string, Tensor>> optimizerState, long optimizerStep, TrainerState state)
    {
        task.Save(directory, weights);
        using (var scope = NewDisposeScope())
            SafetensorsWriter.Write(Path.Combine(directory, CheckpointStore.OptimizerFile),
                optimizerState.Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.detach().cpu())).ToList(),
                new Dictionary<string, string> { ["step"] = optimizerStep.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        CheckpointStore.WriteState(directory, state);
    }

    private static void LoadOptimizer(FlatAdamW optimizer, string checkpoint, long step)
    {
        string path = Path.Combine(checkpoint, CheckpointStore.OptimizerFile);
        if (!File.Exists(path)) throw new BioForgeException($"{checkpoint}: no {CheckpointStore.OptimizerFile}");
        using var file = SafetensorsFile.Open(path);
        using var scope = NewDisposeScope();
        var state = file.Entries.ToDictionary(e => e.Name, e => file.ToTensor(e.Name));
        optimizer.LoadState(state, step, path);
    }

    /// <summary>The final model, written next to the checkpoints as a plain Hugging Face directory (atomically).</summary>
    private static void SaveModel(ILanguageModelTask task, IReadOnlyList<KeyValuePair<string, Tensor>> weights, string directory)
    {
        string temp = directory + $".{Environment.ProcessId}.tmp";
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        task.Save(temp, weights);
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        Directory.Move(temp, directory);
    }

    /// <summary>Opens metrics.jsonl for appending, dropping lines past the resumed step (they belong to a lost future).</summary>
    private static StreamWriter OpenMetrics(string path, long resumedStep)
    {
        if (File.Exists(path))
        {
            var kept = File.ReadAllLines(path).Where(line =>
            {
                try
                {
                    return JsonNode.Parse(line)?["step"]?.GetValue<long>() <= resumedStep;
                }
                catch (JsonException)
                {
                    return false; // a line cut short by a kill
                }
            }).ToList();
            AtomicFile.WriteText(path, kept.Count == 0 ? "" : string.Join("\n", kept) + "\n");
        }
        return new StreamWriter(path, append: true) { AutoFlush = true };
    }

    private static void WriteMetric(StreamWriter? metrics, JsonObject line) => metrics?.WriteLine(line.ToJsonString());

    private static double? Round(double value) => double.IsFinite(value) ? Math.Round(value, 6) : null;
}
