using System.Diagnostics;
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
/// index), so a run resumed from a checkpoint produces the same weights as one that never stopped: bit for bit on the CPU,
/// to rounding on a GPU (some CUDA backward kernels and cuBLAS's algorithm choice are not deterministic).
/// </summary>
public static class Trainer
{
    public const string ModelDirectory = "model";

    /// <summary>Settings a resumed run must share with the run it continues (the global batch and the network are checked apart, from the checkpoint).</summary>
    private static readonly string[] DefiningSettings =
        ["seed", "model.type", "data.tokens_per_batch", "data.max_length", "data.packing", "data.randomize_smiles", "data.cluster_sampling"];

    public static TrainingResult Run(RunConfig config, TrainerOptions options)
    {
        var compute = ComputeOptions.Resolve(config.Train.Device, config.Train.Precision == "bf16-mixed" ? "bf16" : "fp32", config.Train.Threads, "train.device");
        compute = compute with { Device = ParallelGrid.LocalDevice(compute.Device, ProcessGroup.Launch) };
        var world = options.Group ?? ProcessGroup.World;
        // Only world rank 0 writes files and reports; the tensor-parallel group around it (data-parallel rank 0)
        // validates and gathers whole tensors for it.
        bool lead = world.Rank == 0;
        using var train = OpenSplit(config.Data.Dir, "train");
        var (run, resumeFrom, state, branchMetrics) = OpenRun(config, options, train, lead);
        try
        {
            if (world.Size > 1) world.Barrier(); // every rank has checked the run directory before rank 0 writes into it
            // Tensor-parallel ranks share micro-batches and split every layer; data-parallel ranks split the micro-batches.
            using var grid = new ParallelGrid(world, config.Train.TensorParallel, compute.Device);
            bool leadReplica = grid.Data.Rank == 0;
            if (state is not null) config = MatchGlobalBatch(config, state, grid.Data.Size, options.OnInfo);

            var layout = new ParallelLayout(grid.Tensor, config.Train.VocabParallel);
            using var validStore = File.Exists(TokenStore.IdxPath(Path.Combine(config.Data.Dir, "valid"))) ? OpenSplit(config.Data.Dir, "valid") : null;
            var valid = validStore is { Count: > 0 } ? validStore : null; // prepared with --validation-fraction 0: nothing to validate on
            using var task = CreateTask(config, resumeFrom, compute, layout);
            if (train.VocabularySize > task.VocabularySize)
                throw new BioForgeException($"{config.Data.Dir}: the corpus uses {train.VocabularySize} token ids but the model has {task.VocabularySize}");
            // Rotary positions would train past it, but the saved config.json would then refuse the lengths trained on. A
            // run started so before this check goes on (data.max_length defines it), with a warning.
            if (config.Data.MaxLength > task.MaxPositions)
            {
                string tooLong = $"data.max_length {config.Data.MaxLength} is longer than the network's max_position_embeddings {task.MaxPositions}";
                if (state is not null) options.OnInfo?.Invoke($"warning: {tooLong}; the model will refuse sequences that long");
                else throw new BioForgeException($"{tooLong}; lower data.max_length{(config.Model.Init is null ? " or raise model.config.max_position_embeddings" : "")}");
            }
            var clusterMembers = config.Data.ClusterSampling ? Clusters.ReadMembers(Path.Combine(config.Data.Dir, "train"), train.Count) : null;
            var stream = new TrainingStream(train, config.Data.MaxLength, config.Data.TokensPerBatch, config.Data.Packing,
                randomCrop: task.RandomCrop, config.Seed, clusterMembers);
            // Every data-parallel replica starts from replica 0's weights.
            bool zero = config.Train.ZeroStage == 1 && grid.Data.Size > 1;
            using var optimizer = new FlatAdamW(task.Network.named_parameters(), config.AdamW, zero ? grid.Data : null, task.Sharding);
            optimizer.Broadcast(grid.Data);
            if (resumeFrom is not null) RunDirectory.LoadOptimizer(resumeFrom, optimizer, state!.Step);
            options.OnInfo?.Invoke(FormattableString.Invariant($"optimizer state {optimizer.StateBytes} bytes per rank ({grid.Data.Size} data-parallel × {grid.Tensor.Size} tensor-parallel rank(s){(zero ? ", ZeRO-1" : "")}{(layout.SplitsVocabulary ? ", vocabulary split" : "")})"));

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

                if (!double.IsFinite(stepLoss))
                    throw new BioForgeException($"step {step}: the loss is {stepLoss}; lower optimizer.lr or enable optimizer.grad_clip");
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
                if (leadReplica && valid is not null && ((config.Validation.Every > 0 && step % config.Validation.Every == 0) || last))
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

                bool stopping = step == stopAt || cancelled;
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
                        LastValidationLoss = lastValidation?.Loss,
                        MicroBatchesPerStep = grid.Data.Size * config.Train.Accumulation,
                        TrainDocuments = train.Count,
                        TrainTokens = train.TotalTokens,
                        ElapsedSeconds = earlierSeconds + clock.Elapsed.TotalSeconds,
                    };
                    lastCheckpoint = SaveCheckpoint(run, config, task, optimizer, current, lead, leadReplica) ?? lastCheckpoint;
                    if (lead) options.OnCheckpoint?.Invoke(lastCheckpoint!);
                }
            }

            bool finished = step == config.Train.Steps;
            if (finished && leadReplica)
            {
                using var scope = NewDisposeScope();
                var weights = task.UnshardedWeights();
                var storage = config.Checkpoint.ModelDtype == "float16" ? ScalarType.Float16 : ScalarType.Float32;
                if (lead) run.Publish(ModelDirectory, directory => task.Save(directory, weights, storage));
            }
            grid.World.Barrier(); // the model and last checkpoint exist when any rank returns
            return new TrainingResult(step, startStep, Path.Combine(run.Path, ModelDirectory), lastCheckpoint, lastValidation, Interrupted: !finished);
        }
        catch
        {
            if (lead) run.RemoveIfUnused(TrainerState.FileName, branchMetrics is null ? -1 : state!.Step); // refused before its first step: no folder left behind
            throw;
        }
    }

    /// <summary>
    /// The run directory and, when resuming, the checkpoint and its state — after checking that the resumed run is the
    /// same run: the settings that define it, the network, the precision and the corpus. A checkpoint of another run
    /// (<c>--resume-from</c> outside <c>train.output_dir</c>) branches: a new run directory continues it, and the
    /// other run is left as it is. <c>Metrics</c> is the metrics log the new run's history starts from (a branch's
    /// source run's), or null.
    /// </summary>
    private static (RunDirectory Run, string? ResumeFrom, TrainerState? State, string? Metrics) OpenRun(RunConfig config, TrainerOptions options, TokenStore.Reader train, bool lead)
    {
        if (options.Resume && options.ResumeFrom is not null)
            throw new BioForgeException("give --resume (the latest checkpoint of train.output_dir) or --resume-from CHECKPOINT, not both");
        string? resumeFrom = options.ResumeFrom;
        if (resumeFrom is not null && !Directory.Exists(resumeFrom)) throw new BioForgeException($"--resume-from {resumeFrom}: no such checkpoint directory");
        string? source = resumeFrom is null ? null : SourceRun(resumeFrom);
        bool branch = resumeFrom is not null && !IsInside(resumeFrom, Path.Combine(config.Train.OutputDir, RunDirectory.CheckpointsFolder));
        if (branch && Directory.Exists(config.Train.OutputDir) && Directory.EnumerateFileSystemEntries(config.Train.OutputDir).Any())
            throw new BioForgeException($"--resume-from {resumeFrom} is not a checkpoint of train.output_dir {config.Train.OutputDir}, which holds a run of its own "
                + "(resuming would replace its checkpoints); give a new train.output_dir to branch a run from that checkpoint, or --resume to continue the run there");
        var run = RunDirectory.Open(config.Train.OutputDir, "train.output_dir", isNew: (resumeFrom is null && !options.Resume) || branch, owner: lead);
        try
        {
            return Resumed(config, options, train, lead, run, resumeFrom, source, branch);
        }
        catch
        {
            if (lead) run.RemoveIfUnused(TrainerState.FileName); // a refused branch leaves no folder behind
            throw;
        }
    }

    private static (RunDirectory Run, string? ResumeFrom, TrainerState? State, string? Metrics) Resumed(RunConfig config, TrainerOptions options,
        TokenStore.Reader train, bool lead, RunDirectory run, string? resumeFrom, string? source, bool branch)
    {
        if (options.Resume)
            resumeFrom = run.LatestCheckpoint(TrainerState.FileName)
                ?? throw new BioForgeException($"--resume: {run.CheckpointsDirectory} holds no complete checkpoint");
        if (resumeFrom is null) return (run, null, null, null);

        var state = TrainerState.Read(resumeFrom);
        if (state.Precision != config.Train.Precision)
            throw new BioForgeException($"{resumeFrom}: written with precision {state.Precision}, the configuration says {config.Train.Precision}");
        if (state.Step > config.Train.Steps)
            throw new BioForgeException($"{resumeFrom}: the checkpoint is at step {state.Step}, past train.steps {config.Train.Steps}");
        var current = JsonNode.Parse(config.ToJsonText())!.AsObject();
        // The run's own settings; a branch's are those of the run it branches from (when the checkpoint is inside one).
        var history = branch ? source is null ? null : RunDirectory.Existing(source) : run;
        history?.RefuseChanges(current, DefiningSettings);
        RefuseOtherNetwork(config, resumeFrom);
        if (state.Seed != config.Seed)
            throw new BioForgeException($"{resumeFrom}: written by a run with seed {state.Seed}, the configuration says {config.Seed} (the seed orders the data)");
        if (state.TrainDocuments is { } documents && (documents != train.Count || state.TrainTokens != train.TotalTokens))
            throw new BioForgeException($"{resumeFrom}: trained on {documents:N0} documents / {state.TrainTokens:N0} tokens, but data.dir {config.Data.Dir} "
                + $"holds {train.Count:N0} / {train.TotalTokens:N0}; a resumed run must read the same corpus");
        if (!lead) return (run, resumeFrom, state, null);
        options.OnInfo?.Invoke(branch
            ? $"branching from step {state.Step} ({resumeFrom}) into a new run in {config.Train.OutputDir}"
                + (source is null ? "; the checkpoint is in no run directory, so only its precision, seed and corpus could be checked" : "")
            : $"resuming from step {state.Step} ({resumeFrom})");
        // learning_rate and adam_w are derived from the optimizer and schedule settings, which are listed themselves;
        // family describes the model type's code, not a setting.
        if (history?.Changes(current, "train.output_dir", "model.config", "learning_rate", "adam_w", "family") is { Count: > 0 } changes)
            options.OnInfo?.Invoke($"settings changed since that run: {string.Join("; ", changes)}");
        if (!branch && run.AbandonCheckpointsAfter(state.Step, TrainerState.FileName) is { Count: > 0 } abandoned)
            options.OnInfo?.Invoke($"removed the later checkpoints of the abandoned continuation (steps {string.Join(", ", abandoned)})");
        string? metrics = branch && source is not null ? Path.Combine(source, RunDirectory.MetricsFile) : null;
        return (run, resumeFrom, state, metrics is not null && File.Exists(metrics) ? metrics : null);
    }

    /// <summary>The run directory a checkpoint lies in (<c>RUN/checkpoints/step-N</c>), or null for a checkpoint kept elsewhere.</summary>
    private static string? SourceRun(string checkpoint)
    {
        var folder = Directory.GetParent(Path.GetFullPath(checkpoint).TrimEnd(Path.DirectorySeparatorChar));
        return folder is { Name: RunDirectory.CheckpointsFolder, Parent: { } runFolder } && File.Exists(Path.Combine(runFolder.FullName, RunDirectory.ConfigFile))
            ? runFolder.FullName : null;
    }

    /// <summary>Whether <paramref name="path"/> lies in <paramref name="folder"/>, through symbolic links too (a run folder linked to scratch space).</summary>
    private static bool IsInside(string path, string folder) =>
        RealPath(path).StartsWith(RealPath(folder) + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>The absolute path with every symbolic link among its existing folders resolved.</summary>
    private static string RealPath(string path)
    {
        string full = Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar);
        string root = Path.GetPathRoot(full)!, current = root;
        foreach (string part in full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            current = Path.Combine(current, part);
            var folder = new DirectoryInfo(current);
            if (folder.Exists && folder.LinkTarget is not null) current = folder.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? current;
        }
        return current.TrimEnd(Path.DirectorySeparatorChar);
    }

    /// <summary>
    /// A resumed run takes its network from the checkpoint: a <c>model.config</c> that describes another one is refused.
    /// Both are compared as resolved, so a key left out whose default is the checkpoint's value is no change.
    /// </summary>
    private static void RefuseOtherNetwork(RunConfig config, string checkpoint)
    {
        if (config.Model.Config is null) return;
        string file = Path.Combine(checkpoint, "config.json");
        JsonObject saved, wanted;
        if (config.Family is EsmFamily)
        {
            var esm = EsmConfig.FromJson(file);
            (saved, wanted) = (esm.ToJson(), NewConfig(config, NewEsmConfig, esm.VocabSize).ToJson());
        }
        else
        {
            var llama = LlamaConfig.FromJson(file);
            (saved, wanted) = (llama.ToJson(), (NewConfig(config, json => LlamaConfig.FromJson(json, "model.config"), llama.VocabSize) with
            {
                BosTokenId = llama.BosTokenId,
                EosTokenId = llama.EosTokenId,
                PadTokenId = llama.PadTokenId,
            }).ToJson());
        }
        var differences = saved.Where(kv => kv.Key is not ("dtype" or "vocab_size") && !JsonNode.DeepEquals(kv.Value, wanted[kv.Key]))
            .Select(kv => $"model.config.{kv.Key}: {kv.Value?.ToJsonString()} → {wanted[kv.Key]?.ToJsonString()}").ToList();
        if (differences.Count > 0)
            throw new BioForgeException($"{checkpoint}: model.config describes another network than the checkpoint's, which a resumed run cannot change: "
                + string.Join("; ", differences) + " (start a new run in another directory to change them)");
    }

    /// <summary>
    /// Keeps the global batch of the run being resumed: with another number of data-parallel ranks, accumulation is
    /// changed so that ranks × accumulation is what the checkpoint stepped with, or the resume is refused.
    /// </summary>
    private static RunConfig MatchGlobalBatch(RunConfig config, TrainerState state, int ranks, Action<string>? info)
    {
        if (state.MicroBatchesPerStep is not { } microBatches || microBatches == ranks * config.Train.Accumulation) return config;
        if (microBatches % ranks != 0)
            throw new BioForgeException($"the run stepped with {microBatches} micro-batches per step (data-parallel ranks × train.accumulation); "
                + $"{ranks} data-parallel ranks cannot keep that global batch — resume on a number of ranks that divides {microBatches}");
        int accumulation = microBatches / ranks;
        info?.Invoke($"train.accumulation {config.Train.Accumulation} → {accumulation}: {ranks} data-parallel rank(s) keep the run's global batch of {microBatches} micro-batches per step");
        return config with { Train = config.Train with { Accumulation = accumulation } };
    }

    /// <summary>Every rank takes part (ZeRO-1 and tensor parallelism gather here); rank 0 writes. Returns the path on rank 0.</summary>
    private static string? SaveCheckpoint(RunDirectory run, RunConfig config, ILanguageModelTask task, FlatAdamW optimizer, TrainerState state,
        bool lead, bool leadReplica)
    {
        using var scope = NewDisposeScope();
        var optimizerState = optimizer.State();
        var weights = leadReplica ? task.UnshardedWeights() : null;
        if (!lead) return null;
        return run.SaveCheckpoint(state.Step, config.Checkpoint.Keep, TrainerState.FileName, directory =>
        {
            task.Save(directory, weights!);
            RunDirectory.SaveOptimizer(directory, optimizerState, optimizer.Step);
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
        if (config.Family is EsmFamily)
        {
            if (!File.Exists(Path.Combine(config.Data.Dir, "vocab.txt")))
                throw new BioForgeException($"data.dir {config.Data.Dir}: no vocab.txt; an ESM model needs a corpus prepared with --tokenizer esm");
            var checkpoint = source is not null
                ? EsmCheckpoint.Load(source, compute.Device, compute.DType, layout)
                : EsmCheckpoint.Random(NewConfig(config, NewEsmConfig, EsmTokenizer.Esm2.Vocabulary.Count),
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
            // Each rank holds a share of the attention heads, yet every rank draws from the same seeded generator: its
            // heads would get the masks of the other ranks' heads. Hidden dropout acts on activations every rank holds
            // whole, so identical masks are right there (and a tensor-parallel run equals one process).
            if (layout.Size > 1 && checkpoint.Config.AttentionProbsDropoutProb > 0)
            {
                checkpoint.Dispose();
                throw new BioForgeException($"attention_probs_dropout_prob {checkpoint.Config.AttentionProbsDropoutProb} with train.tensor_parallel {layout.Size}: "
                    + "attention dropout on head shards is not supported; set model.config.attention_probs_dropout_prob=0 (hidden dropout may stay)");
            }
            return new MaskedLanguageModelTask(checkpoint);
        }
        // A corpus prepared with --tokenizer esm (vocab.txt) makes a protein decoder: <cls> residues <eos>, as ESM-2 frames them.
        bool protein = File.Exists(Path.Combine(config.Data.Dir, LlamaCheckpoint.ResidueFileName))
            && !File.Exists(Path.Combine(config.Data.Dir, SmilesVocabulary.FileName));
        if (protein && config.Data.RandomizeSmiles) throw new BioForgeException($"data.randomize_smiles: {config.Data.Dir} is a protein corpus");
        var vocabulary = protein ? null : SmilesVocabulary.Load(Path.Combine(config.Data.Dir, SmilesVocabulary.FileName));
        var residues = protein ? EsmTokenizer.FromVocabFile(Path.Combine(config.Data.Dir, LlamaCheckpoint.ResidueFileName)) : null;
        var llama = source is not null
            ? LlamaCheckpoint.Load(source, compute.Device, compute.DType, layout)
            : LlamaCheckpoint.Random(NewConfig(config, json => LlamaConfig.FromJson(json, "model.config"), vocabulary?.Count ?? residues!.Vocabulary.Count) with
            {
                BosTokenId = residues?.ClsId ?? SmilesVocabulary.BosId,
                EosTokenId = residues?.EosId ?? SmilesVocabulary.EosId,
                PadTokenId = residues?.PadId ?? SmilesVocabulary.PadId,
            }, vocabulary, compute.Device, compute.DType, (long)config.Seed, layout, residues);
        if (vocabulary is not null && llama.Vocabulary is not null && !llama.Vocabulary.Tokens.SequenceEqual(vocabulary.Tokens))
        {
            llama.Dispose();
            throw new BioForgeException($"{source}: its vocab.json differs from the corpus vocabulary in {config.Data.Dir}; prepare the corpus with --vocab {source} to train this model on it");
        }
        if (llama.IsProtein != protein || (residues is not null && !llama.Residues!.Vocabulary.SequenceEqual(residues.Vocabulary)))
        {
            llama.Dispose();
            throw new BioForgeException($"{source}: its vocabulary is not that of the {(protein ? "protein" : "SMILES")} corpus in {config.Data.Dir}");
        }
        llama.Model.ActivationCheckpointing = config.Train.ActivationCheckpointing;
        return new CausalLanguageModelTask(llama, config.Data.RandomizeSmiles, config.Data.MaxLength);
    }

    private static EsmConfig NewEsmConfig(JsonObject json)
    {
        json["position_embedding_type"] ??= "rotary"; // Hugging Face's default is "absolute"; ESM-2 is rotary
        json["layer_norm_eps"] ??= new EsmConfig().LayerNormEps; // ESM-2's 1e-5, not Hugging Face's 1e-12
        return EsmConfig.FromJson(json, "model.config");
    }

    /// <summary>A network config from <c>model.config</c>, with the vocabulary size the data implies.</summary>
    private static T NewConfig<T>(RunConfig config, Func<JsonObject, T> read, int vocabularySize)
    {
        var json = config.Model.Config?.DeepClone().AsObject() ?? [];
        foreach (var (key, _) in json)
            if (!config.Family.ConfigKeys.Contains(key)) throw new BioForgeException($"model.config: unknown key '{key}' for a {config.Model.Type} network");
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

    private static double? Round(double value) => double.IsFinite(value) ? Math.Round(value, 6) : null;
}
