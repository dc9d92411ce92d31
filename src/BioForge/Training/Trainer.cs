using System.Diagnostics;
using System.Text.Json.Nodes;
using BioForge.Distributed;
using BioForge.IO;
using BioForge.Models;
using BioForge.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.Training;

/// <summary>What one logged optimizer step looked like.</summary>
/// <param name="Tokens">Tokens (padding excluded) trained on since the previous report.</param>
/// <param name="Elapsed">Time since this process started training (or resumed) at <paramref name="StartStep"/>.</param>
public sealed record StepReport(long Step, long TotalSteps, double Loss, double LearningRate, double GradNorm, double TokensPerSecond, TimeSpan Elapsed, long Tokens,
    long StartStep = 0)
{
    /// <summary>Remaining time at the pace of the steps this process has made (a resumed run counts from where it resumed).</summary>
    public TimeSpan Remaining => Step <= StartStep ? TimeSpan.Zero : Elapsed * ((double)(TotalSteps - Step) / (Step - StartStep));
}

public sealed record ValidationReport(long Step, double Loss, long Tokens)
{
    public double Perplexity => Math.Exp(Loss);
}

/// <param name="ModelDirectory">Where the model is written when training reaches train.steps (unless <see cref="TrainerOptions.WriteModel"/> is false).</param>
/// <param name="Shape">The trained network's sizes (its parameter count, for throughput in FLOP/s).</param>
public sealed record TrainingResult(long Step, long StartStep, string ModelDirectory, string? Checkpoint, ValidationReport? Validation, bool Interrupted, ModelShape Shape);

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
    /// <summary>
    /// False for a throughput measurement: no checkpoint when the run stops and no model at its end (ESM-2 650M's are
    /// 13 GB, written in the time of many steps); the run directory keeps its config and metrics.
    /// </summary>
    public bool WriteModel { get; init; } = true;
    /// <summary>The ranks training together (laid out as data × tensor parallel); by default the process group of the launch (a world of one without a launcher).</summary>
    public Communicator? Group { get; init; }
}

/// <summary>
/// The pre-training loop, readable top to bottom: micro-batches → loss → backward → (accumulate) → clip → AdamW step,
/// with validation, JSON-lines metrics and checkpoints. Everything random is a pure function of (seed, step, epoch,
/// index), so a run resumed from a checkpoint produces the same weights as one that never stopped: bit for bit on the CPU,
/// to rounding on a GPU (some CUDA backward kernels and cuBLAS's algorithm choice are not deterministic).
/// </summary>
public static class Trainer
{
    public const string ModelDirectory = "model";

    public static TrainingResult Run(RunConfig config, TrainerOptions options)
    {
        var compute = ComputeOptions.Resolve(config.Train.Device, config.Train.Precision == "bf16-mixed" ? "bf16" : "fp32", config.Train.Threads, "train.device");
        compute = compute with { Device = ParallelGrid.LocalDevice(compute.Device, ProcessGroup.Launch) };
        var world = options.Group ?? ProcessGroup.World;
        // Only world rank 0 writes files and reports; the tensor-parallel group around it (data-parallel rank 0)
        // validates and gathers whole tensors for it.
        bool lead = world.Rank == 0;
        using var train = OpenSplit(config.Data.Dir, "train");
        var start = RunResume.Open(config, options, train, lead, world.Size > 1 ? () => world.Barrier() : null);
        var (run, resumeFrom, state, branchMetrics, _) = start;
        try
        {
            if (world.Size > 1) world.Barrier(); // every rank has checked the run directory before rank 0 writes into it
            // Tensor-parallel ranks share micro-batches and split every layer; data-parallel ranks split the micro-batches.
            using var grid = new ParallelGrid(world, config.Train.TensorParallel, compute.Device);
            bool leadReplica = grid.Data.Rank == 0;
            if (state is not null) config = RunResume.MatchGlobalBatch(config, state, grid.Data.Size, options.OnInfo);

            var layout = new ParallelLayout(grid.Tensor, config.Train.VocabParallel);
            using var valid = OpenValidation(config, train, world, options);
            if (state is null && config.Schedule.WarmupSteps > config.Train.Steps)
                options.OnInfo?.Invoke($"warning: schedule.warmup_steps {config.Schedule.WarmupSteps} covers the whole run of {config.Train.Steps} steps: the rate never reaches optimizer.lr "
                    + $"({config.Optimizer.Lr:G3}; its last step trains at {config.LearningRate.At(config.Train.Steps):G3})");
            // Made in float32 in mixed precision too: NewOptimizer keeps those values as the master weights.
            using var task = LanguageModelTasks.Create(config, resumeFrom, compute with { DType = ScalarType.Float32 }, layout);
            CheckNetworkFitsCorpus(task, train, config, resumed: state is not null, options);
            var clusterMembers = config.Data.ClusterSampling ? Clusters.ReadMembers(Path.Combine(config.Data.Dir, "train"), train.Count) : null;
            var stream = new TrainingStream(train, config.Data.MaxLength, config.Data.TokensPerBatch, config.Data.Packing,
                randomCrop: task.RandomCrop, config.Seed, clusterMembers);
            // Every data-parallel replica starts from replica 0's weights.
            bool zero = config.Train.ZeroStage == 1 && grid.Data.Size > 1;
            using var frozen = new FrozenWeights();
            using var optimizer = NewOptimizer(task, config.AdamW, zero ? grid.Data : null, compute.DType, frozen);
            optimizer.Broadcast(grid.Data);
            if (resumeFrom is not null) CheckpointFiles.LoadOptimizer(resumeFrom, optimizer, state!.Step);
            options.OnInfo?.Invoke(FormattableString.Invariant($"optimizer state {optimizer.StateBytes} bytes per rank ({grid.Data.Size} data-parallel × {grid.Tensor.Size} tensor-parallel rank(s){(zero ? ", ZeRO-1" : "")}{(layout.SplitsVocabulary ? ", vocabulary split" : "")})"));

            if (lead) RunResume.AbandonLaterCheckpoints(start, options);
            if (lead) run.WriteConfig(config.ToJsonText());
            if (lead && branchMetrics is not null) AtomicFile.WriteText(Path.Combine(run.Path, RunDirectory.MetricsFile), File.ReadAllText(branchMetrics)); // the history up to the branch point
            using var metrics = lead ? run.OpenMetrics(state?.Step ?? 0) : null;

            long step = state?.Step ?? 0, startStep = step, tokensSeen = state?.TokensSeen ?? 0;
            var position = state?.Position ?? new StreamPosition(0, 0);
            long stopAt = Math.Min(options.StopAt ?? config.Train.Steps, config.Train.Steps);
            ValidationReport? lastValidation = null;
            string? lastCheckpoint = resumeFrom;
            var clock = Stopwatch.StartNew();
            double earlierSeconds = state?.ElapsedSeconds ?? 0; // the run's time before this session: metrics count the whole run
            long windowTokens = 0;
            double windowSeconds = 0; // training compute only: validation and checkpoint time is not throughput

            bool cancelled = false;
            while (step < stopAt && !cancelled)
            {
                var stepClock = Stopwatch.StartNew();
                (double stepLoss, long stepTokens, double gradNorm, double lr, position) = TrainStep(task, stream, position, optimizer, config, compute.Device, step, grid.Data);
                // The optimizer's kernels are still queued on a GPU: without the wait they would be timed in the next step.
                if (compute.Device.type == DeviceType.CUDA) torch.cuda.synchronize(compute.Device);
                step++;
                windowSeconds += stepClock.Elapsed.TotalSeconds;
                tokensSeen += stepTokens;
                windowTokens += stepTokens;

                // Ranks stop together: a Ctrl+C seen by any rank stops all of them after this step.
                cancelled = Agree(grid.World, options.Cancellation.IsCancellationRequested);
                if (lead && (step % config.Train.LogEvery == 0 || step == stopAt))
                {
                    var report = new StepReport(step, config.Train.Steps, stepLoss, lr, gradNorm, windowTokens / windowSeconds, clock.Elapsed, windowTokens, startStep);
                    metrics?.Write(new JsonObject
                    {
                        ["step"] = step,
                        ["loss"] = Round(stepLoss),
                        ["lr"] = lr,
                        ["grad_norm"] = Round(gradNorm),
                        ["tokens_per_second"] = Math.Round(report.TokensPerSecond, 1),
                        ["tokens"] = tokensSeen,
                        ["epoch"] = position.Epoch,
                        ["elapsed_seconds"] = Math.Round(earlierSeconds + clock.Elapsed.TotalSeconds, 3),
                    });
                    options.OnStep?.Invoke(report);
                    windowTokens = 0;
                    windowSeconds = 0;
                }

                bool last = step == config.Train.Steps;
                if (valid is not null && ((config.Validation.Every > 0 && step % config.Validation.Every == 0) || last))
                {
                    if (leadReplica)
                    {
                        lastValidation = Validate(task, valid, config, compute.Device, step);
                        metrics?.Write(new JsonObject
                        {
                            ["step"] = step,
                            ["validation_loss"] = Round(lastValidation.Loss),
                            ["validation_perplexity"] = Round(lastValidation.Perplexity),
                            ["validation_tokens"] = lastValidation.Tokens,
                        });
                        if (lead) options.OnValidation?.Invoke(lastValidation);
                    }
                    AwaitUnevenWork(grid.World);
                }

                bool stopping = (step == stopAt || cancelled) && options.WriteModel;
                if ((config.Checkpoint.Every > 0 && step % config.Checkpoint.Every == 0) || stopping)
                {
                    var current = new TrainerState
                    {
                        Step = step,
                        Epoch = position.Epoch,
                        BatchInEpoch = position.Batch,
                        TokensSeen = tokensSeen,
                        Seed = config.Seed,
                        Precision = config.Train.Precision,
                        LastValidationLoss = lastValidation?.Loss ?? state?.LastValidationLoss, // a resumed run's, until it validates
                        MicroBatchesPerStep = grid.Data.Size * config.Train.Accumulation,
                        TrainDocuments = train.Count,
                        TrainTokens = train.TotalTokens,
                        ElapsedSeconds = earlierSeconds + clock.Elapsed.TotalSeconds,
                    };
                    lastCheckpoint = SaveCheckpoint(run, config, task, optimizer, frozen, current, lead, leadReplica) ?? lastCheckpoint;
                    if (lead) options.OnCheckpoint?.Invoke(lastCheckpoint!);
                    AwaitUnevenWork(grid.World);
                }
            }

            bool finished = step == config.Train.Steps, publish = finished && options.WriteModel;
            using var masters = NewDisposeScope();
            var masterWeights = publish ? optimizer.MasterWeights(keep: lead) : []; // every rank: ZeRO-1 and tensor parallelism gather
            if (publish && leadReplica)
            {
                using var scope = NewDisposeScope();
                var weights = Learnt(task, masterWeights, frozen);
                var storage = config.Checkpoint.ModelDtype == "float16" ? ScalarType.Float16 : ScalarType.Float32;
                if (lead) run.Publish(ModelDirectory, directory => task.Save(directory, weights, storage));
            }
            AwaitUnevenWork(grid.World); // the model and last checkpoint exist when any rank returns
            return new TrainingResult(step, startStep, Path.Combine(run.Path, ModelDirectory), lastCheckpoint, lastValidation, Interrupted: !finished, task.Shape);
        }
        catch
        {
            if (lead) run.RemoveIfUnused(TrainerState.FileName, branchMetrics is null ? -1 : state!.Step); // refused before its first step: no folder left behind
            throw;
        }
    }

    /// <summary>
    /// Where some ranks work alone (the first replica validates, rank 0 writes a checkpoint or the model), the others
    /// wait longer than a collective's timeout: a rank still validating a large split or writing 13 GB after 300 s is
    /// working, not dead (one that fails ends the job itself: the process group aborts the world). Still finite, so a
    /// rank stuck there ends the job too: <see cref="UnevenWorkLimit"/>, or the collective timeout if that is longer.
    /// </summary>
    private static void AwaitUnevenWork(Communicator world)
    {
        if (world.Size > 1) world.Barrier(world.Timeout > UnevenWorkLimit ? world.Timeout : UnevenWorkLimit);
    }

    /// <summary>Six hours: a full validation or a checkpoint of the largest model on a slow shared filesystem, with room.</summary>
    private static readonly TimeSpan UnevenWorkLimit = TimeSpan.FromHours(6);

    /// <summary>
    /// AdamW over the network, made in float32. In mixed precision the network is then rounded to
    /// <paramref name="dtype"/> and its float32 values become the master weights: a run from a float32 <c>model.init</c>
    /// learns from those, not from their bf16 rounding (a resumed run's masters are then read from its checkpoint).
    /// </summary>
    /// <param name="frozen">Receives, in mixed precision, the float32 values of the parameters no gradient reaches (ESM-2's
    /// contact head): the optimizer keeps no master of them, and saved from the network they were their bf16 rounding.</param>
    private static FlatAdamW NewOptimizer(ILanguageModelTask task, AdamWOptions options, Communicator? zeroShards, ScalarType dtype, FrozenWeights frozen)
    {
        if (dtype == ScalarType.Float32) return new FlatAdamW(task.Network.named_parameters(), options, zeroShards, task.Sharding);
        Dictionary<string, Tensor> masters;
        // Under no_grad a clone records no graph; a detach() would leave an alias of each float32 parameter for the GC.
        using (no_grad()) masters = task.Network.named_parameters().ToDictionary(p => p.name, p => p.parameter.clone().DetachFromDisposeScope());
        foreach (var (name, p) in task.Network.named_parameters())
            if (!p.requires_grad && masters.Remove(name, out var value)) frozen.Weights[name] = value;
        try
        {
            task.Network.to(dtype);
            return new FlatAdamW(task.Network.named_parameters(), options, zeroShards, task.Sharding, masters);
        }
        finally
        {
            foreach (var master in masters.Values) master.Dispose();
        }
    }

    /// <summary>Float32 values of the parameters training leaves as they are, for writing them unrounded (mixed precision).</summary>
    private sealed class FrozenWeights : IDisposable
    {
        public Dictionary<string, Tensor> Weights { get; } = new(StringComparer.Ordinal);

        public void Dispose()
        {
            foreach (var w in Weights.Values) w.Dispose();
            Weights.Clear();
        }
    }

    /// <summary>
    /// The network's weights as the run has learnt them: in mixed precision the float32 master weights, not the bf16
    /// parameters the forward pass reads (a published model was their rounding, 8 bits of mantissa, stored as float32).
    /// </summary>
    private static List<KeyValuePair<string, Tensor>> Learnt(ILanguageModelTask task, IReadOnlyList<KeyValuePair<string, Tensor>> masterWeights, FrozenWeights frozen)
    {
        var weights = task.UnshardedWeights();
        if (masterWeights.Count == 0 && frozen.Weights.Count == 0) return weights;
        var masters = masterWeights.ToDictionary(w => w.Key, w => w.Value, StringComparer.Ordinal);
        // A frozen parameter is taken whole only (a tensor-parallel rank's would be its shard).
        return [.. weights.Select(w => masters.TryGetValue(w.Key, out var master)
            || frozen.Weights.TryGetValue(w.Key, out master) && master.shape.SequenceEqual(w.Value.shape) ? new KeyValuePair<string, Tensor>(w.Key, master) : w)];
    }

    /// <summary>Every rank takes part (ZeRO-1 and tensor parallelism gather here); rank 0 writes. Returns the path on rank 0.</summary>
    private static string? SaveCheckpoint(RunDirectory run, RunConfig config, ILanguageModelTask task, FlatAdamW optimizer, FrozenWeights frozen, TrainerState state,
        bool lead, bool leadReplica)
    {
        using var scope = NewDisposeScope();
        var optimizerState = optimizer.State(keep: lead);
        var weights = leadReplica ? Learnt(task, optimizer.HasMasterWeights ? [.. optimizerState.Where(s => s.Key.EndsWith(".master", StringComparison.Ordinal))
            .Select(s => new KeyValuePair<string, Tensor>(s.Key[..^".master".Length], s.Value))] : [], frozen) : null;
        if (!lead) return null;
        return run.SaveCheckpoint(state.Step, config.Checkpoint.Keep, TrainerState.FileName, directory =>
        {
            task.Save(directory, weights!);
            CheckpointFiles.SaveOptimizer(directory, optimizerState, optimizer.Step);
            state.Write(directory);
        });
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
            TorchRuntime.Seed(seed);
            using var scope = NewDisposeScope();
            using var pass = new BackwardPass(); // before the forward: custom autograd functions attach to it
            var batch = MicroBatches.Collate(examples, task.PadId, device);
            var loss = task.LossSum(batch);
            pass.Backward(loss.Div(Math.Max(1, scored)));
            optimizer.AccumulateGradients();
            lossSum += loss.item<float>();
            tokens += batch.Tokens;
        }
        optimizer.ReduceGradients(group, (long)(config.Train.BucketMb * (1 << 20) / 4));
        lossSum = Sum(group, lossSum);
        tokens = (long)Sum(group, tokens);
        double stepLoss = lossSum / Math.Max(1, scored);
        // Both checked before the update, clipping or not (every rank reduced the same numbers, so all stop together): a
        // finite loss whose gradients overflowed (bf16) would put NaN into the weights, and the next checkpoint would keep them.
        if (!double.IsFinite(stepLoss))
            throw new BioForgeException($"step {step + 1}: the loss is {stepLoss}; lower optimizer.lr or enable optimizer.grad_clip (the step was not applied; the checkpoints written so far are intact)");
        double gradNorm = optimizer.ClipGradNorm(config.Optimizer.GradClip > 0 ? config.Optimizer.GradClip : double.PositiveInfinity);
        if (!double.IsFinite(gradNorm))
            throw new BioForgeException($"step {step + 1}: the gradient norm is {gradNorm}; lower optimizer.lr (the step was not applied; the checkpoints written so far are intact)");
        double lr = config.LearningRate.At(step + 1);
        optimizer.Update(lr);
        optimizer.ZeroGrad();
        return (stepLoss, tokens, gradNorm, lr, position);
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

    /// <summary>
    /// The corpus's validation split, or null where none was held out (or it holds no documents); every rank must
    /// find the same, since the others wait for the first replica's validation only when it runs.
    /// </summary>
    private static TokenStore.Reader? OpenValidation(RunConfig config, TokenStore.Reader train, Communicator world, TrainerOptions options)
    {
        var store = File.Exists(TokenStore.IdxPath(Path.Combine(config.Data.Dir, "valid"))) ? OpenSplit(config.Data.Dir, "valid") : null;
        var valid = store is { Count: > 0 } ? store : null;
        if (valid is null) store?.Dispose();
        try
        {
            // One data prepare writes both with one vocabulary; a valid.* from another corpus failed only at the first validation.
            if (valid is not null && (valid.VocabularySize != train.VocabularySize || valid.BytesPerToken != train.BytesPerToken))
                throw new BioForgeException($"{config.Data.Dir}: valid.* holds {valid.VocabularySize} token ids ({valid.BytesPerToken} bytes each) and train.* {train.VocabularySize} "
                    + $"({train.BytesPerToken} bytes): they were not prepared together; run data prepare again");
            bool someValidate = Agree(world, valid is not null), allValidate = !Agree(world, valid is null);
            if (someValidate != allValidate)
                throw new BioForgeException($"{config.Data.Dir}: some ranks find a validation split there and others do not (is data.dir on a filesystem every node shares?)");
        }
        catch
        {
            valid?.Dispose();
            throw;
        }
        if (valid is null && config.Validation.Every > 0)
            options.OnInfo?.Invoke($"no validation: {config.Data.Dir} has no validation documents (prepared with --validation-fraction 0, or too few documents for the fraction asked); validation.every is not used");
        return valid;
    }

    /// <summary>The corpus's token ids are the network's, and its documents fit the network's positions.</summary>
    private static void CheckNetworkFitsCorpus(ILanguageModelTask task, TokenStore.Reader train, RunConfig config, bool resumed, TrainerOptions options)
    {
        if (train.VocabularySize > task.VocabularySize)
            throw new BioForgeException($"{config.Data.Dir}: the corpus uses {train.VocabularySize} token ids but the model has {task.VocabularySize}");
        // Rotary positions would train past it, but the saved config.json would then refuse the lengths trained on. A
        // run started so before this check goes on (data.max_length defines it), with a warning.
        if (config.Data.MaxLength > task.MaxPositions)
        {
            string tooLong = $"data.max_length {config.Data.MaxLength} is longer than the network's max_position_embeddings {task.MaxPositions}";
            if (resumed) options.OnInfo?.Invoke($"warning: {tooLong}; the model will refuse sequences that long");
            else throw new BioForgeException($"{tooLong}; lower data.max_length{(config.Model.Init is null ? " or raise model.config.max_position_embeddings" : "")}");
        }
    }

    private static TokenStore.Reader OpenSplit(string directory, string split)
    {
        string prefix = Path.Combine(directory, split);
        if (!File.Exists(TokenStore.IdxPath(prefix)))
            throw new BioForgeException($"data.dir {directory}: no {split}.idx (prepare the corpus with `bioforge data prepare`)");
        return new TokenStore.Reader(prefix);
    }

    private static ValidationReport Validate(ILanguageModelTask task, TokenStore.Reader valid, RunConfig config, Device device, long step)
    {
        task.Network.eval();
        using var _ = no_grad();
        double sum = 0;
        long scored = 0, tokens = 0;
        int batches = 0;
        foreach (var sequences in TrainingStream.Validation(valid, config.Data.MaxLength, config.Data.TokensPerBatch, config.Seed, framed: task.RandomCrop))
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

    private static double? Round(double value) => double.IsFinite(value) ? Math.Round(value, 6) : null;
}
