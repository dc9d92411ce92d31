using System.Text.Json.Nodes;
using BioForge.IO;
using BioForge.Models.Esm;
using BioForge.Models.Llama;

namespace BioForge.Training;

/// <summary>
/// Where a training run starts: its directory and, when it resumes, the checkpoint and that checkpoint's state.
/// <paramref name="BranchMetrics"/> is the metrics log a branch's history starts from (its source run's), or null.
/// </summary>
/// <paramref name="Branch"/>: the checkpoint is another run's, continued in a new directory.
internal sealed record RunStart(RunDirectory Run, string? Checkpoint, TrainerState? State, string? BranchMetrics, bool Branch);

/// <summary>
/// The checks that make a resumed run the same run as the one it continues (or a clean branch of another), kept apart
/// from the training loop: the settings that define the run, the network, precision, seed, corpus and global batch.
/// </summary>
internal static class RunResume
{
    /// <summary>Settings a resumed run must share with the run it continues (the global batch and the network are checked apart, from the checkpoint).</summary>
    private static readonly string[] DefiningSettings =
        ["seed", "model.type", "data.tokens_per_batch", "data.max_length", "data.packing", "data.randomize_smiles", "data.cluster_sampling"];

    /// <summary>
    /// The run directory and, when resuming, the checkpoint and its state — after checking that the resumed run is the
    /// same run: the settings that define it, the network, the precision and the corpus. A checkpoint of another run
    /// (<c>--resume-from</c> outside <c>train.output_dir</c>) branches: a new run directory continues it, and the
    /// other run is left as it is.
    /// </summary>
    /// <param name="opened">Called on every rank once the lead has opened the directory (a barrier across the ranks): the
    /// lead's cleaning can restore a checkpoint, so no rank lists them before it is done.</param>
    public static RunStart Open(RunConfig config, TrainerOptions options, TokenStore.Reader train, bool lead, Action? opened = null)
    {
        if (options.Resume && options.ResumeFrom is not null)
            throw new BioForgeException("give --resume (the latest checkpoint of train.output_dir) or --resume-from CHECKPOINT, not both");
        if (options.StopAt is < 1) throw new BioForgeException($"--stop-at {options.StopAt}: must be a step of the run, 1 or more");
        string? resumeFrom = options.ResumeFrom;
        if (resumeFrom is not null && !Directory.Exists(resumeFrom)) throw new BioForgeException($"--resume-from {resumeFrom}: no such checkpoint directory");
        string? source = resumeFrom is null ? null : SourceRun(resumeFrom);
        bool branch = resumeFrom is not null && !IsInside(resumeFrom, Path.Combine(config.Train.OutputDir, RunDirectory.CheckpointsFolder));
        if (branch && Directory.Exists(config.Train.OutputDir) && Directory.EnumerateFileSystemEntries(config.Train.OutputDir).Any())
            throw new BioForgeException($"--resume-from {resumeFrom} is not a checkpoint of train.output_dir {config.Train.OutputDir}, which holds a run of its own "
                + "(resuming would replace its checkpoints); give a new train.output_dir to branch a run from that checkpoint, or --resume to continue the run there");
        var run = RunDirectory.Open(config.Train.OutputDir, "train.output_dir", isNew: (resumeFrom is null && !options.Resume) || branch, owner: lead);
        opened?.Invoke();
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

    private static RunStart Resumed(RunConfig config, TrainerOptions options,
        TokenStore.Reader train, bool lead, RunDirectory run, string? resumeFrom, string? source, bool branch)
    {
        if (options.Resume)
            resumeFrom = run.LatestCheckpoint(TrainerState.FileName)
                ?? throw run.NothingToResume("train.output_dir");
        if (resumeFrom is null) return new RunStart(run, null, null, null, false);

        var state = TrainerState.Read(resumeFrom);
        if (state.Precision != config.Train.Precision)
            throw new BioForgeException($"{resumeFrom}: written with precision {state.Precision}, the configuration says {config.Train.Precision}");
        if (state.Step > config.Train.Steps)
            throw new BioForgeException($"{resumeFrom}: the checkpoint is at step {state.Step}, past train.steps {config.Train.Steps}");
        if (options.StopAt is { } stopAt && stopAt <= state.Step)
            throw new BioForgeException($"--stop-at {stopAt}: the checkpoint is at step {state.Step} already (stop at a later step)");
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
        if (!lead) return new RunStart(run, resumeFrom, state, null, branch);
        options.OnInfo?.Invoke(branch
            ? $"branching from step {state.Step} ({resumeFrom}) into a new run in {config.Train.OutputDir}"
                + (source is null ? "; the checkpoint is in no run directory, so only its precision, seed and corpus could be checked" : "")
            : $"resuming from step {state.Step} ({resumeFrom})");
        // learning_rate and adam_w are derived from the optimizer and schedule settings, which are listed themselves;
        // family describes the model type's code, not a setting.
        if (history?.Changes(current, "train.output_dir", "model.config", "learning_rate", "adam_w", "family") is { Count: > 0 } changes)
            options.OnInfo?.Invoke($"settings changed since that run: {string.Join("; ", changes)} (the configuration file is read anew: repeat the first session's key=value overrides to keep its settings)");
        string? metrics = branch && source is not null ? Path.Combine(source, RunDirectory.MetricsFile) : null;
        return new RunStart(run, resumeFrom, state, metrics is not null && File.Exists(metrics) ? metrics : null, branch);
    }

    /// <summary>
    /// A run resumed from an earlier checkpoint of its own abandons the continuation after it: its later checkpoints are
    /// removed — called once the resumed run is set up, so a resume refused on the way (a layout the world cannot hold,
    /// an optimizer state that does not fit) leaves them where they were.
    /// </summary>
    public static void AbandonLaterCheckpoints(RunStart start, TrainerOptions options)
    {
        if (start.Branch || start.State is not { } state) return;
        if (start.Run.AbandonCheckpointsAfter(state.Step, TrainerState.FileName) is not { Count: > 0 } abandoned) return;
        // The model a finished run published was trained to its last checkpoint, one of those abandoned (or, after a
        // --resume past train.steps that was stopped, to this one): kept, it could hold weights of the history the run
        // now abandons until the new branch finishes and publishes its own.
        bool model = start.Run.Withdraw(Trainer.ModelDirectory);
        options.OnInfo?.Invoke($"removed the later checkpoints of the abandoned continuation (steps {string.Join(", ", abandoned)}){(model ? $" and the {Trainer.ModelDirectory}/ it wrote" : "")}");
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
            (saved, wanted) = (esm.ToJson(), LanguageModelTasks.NewConfig(config, LanguageModelTasks.NewEsmConfig, esm.VocabSize).ToJson());
        }
        else
        {
            var llama = LlamaConfig.FromJson(file);
            (saved, wanted) = (llama.ToJson(), (LanguageModelTasks.NewConfig(config, json => LlamaConfig.FromJson(json, "model.config"), llama.VocabSize) with
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
    public static RunConfig MatchGlobalBatch(RunConfig config, TrainerState state, int ranks, Action<string>? info)
    {
        if (state.MicroBatchesPerStep is not { } microBatches || microBatches == ranks * config.Train.Accumulation) return config;
        if (microBatches % ranks != 0)
            throw new BioForgeException($"the run stepped with {microBatches} micro-batches per step (data-parallel ranks × train.accumulation); "
                + $"{ranks} data-parallel ranks cannot keep that global batch — resume on a number of ranks that divides {microBatches}");
        int accumulation = microBatches / ranks;
        info?.Invoke($"train.accumulation {config.Train.Accumulation} → {accumulation}: {ranks} data-parallel rank(s) keep the run's global batch of {microBatches} micro-batches per step");
        return config with { Train = config.Train with { Accumulation = accumulation } };
    }
}
