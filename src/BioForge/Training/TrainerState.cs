using System.Text.Json;

namespace BioForge.Training;

/// <summary>Everything besides tensors that a resumed run needs to continue exactly, and to refuse what it cannot.</summary>
public sealed record TrainerState
{
    public const string FileName = "trainer_state.json";

    public required long Step { get; init; }
    public required int Epoch { get; init; }
    public required int BatchInEpoch { get; init; }
    public required long TokensSeen { get; init; }
    public required ulong Seed { get; init; }
    public required string Precision { get; init; }
    public double? LastValidationLoss { get; init; }
    /// <summary>Micro-batches per optimizer step over all data-parallel ranks (ranks × accumulation): the global batch is this × tokens_per_batch.</summary>
    public int? MicroBatchesPerStep { get; init; }
    /// <summary>Documents and tokens of the training split, so a resumed run notices a different corpus.</summary>
    public long? TrainDocuments { get; init; }
    public long? TrainTokens { get; init; }
    /// <summary>Wall time of the run over all its sessions up to this checkpoint (absent in checkpoints of older builds).</summary>
    public double? ElapsedSeconds { get; init; }

    public StreamPosition Position => new(Epoch, BatchInEpoch);

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>
    /// Reads a checkpoint's state and refuses values no run writes (a hand-edited or damaged file: a negative step
    /// trained with negative learning rates), and a step other than the one its folder (<c>step-N</c>) is named after.
    /// </summary>
    public static TrainerState Read(string checkpoint)
    {
        string path = Path.Combine(checkpoint, FileName);
        var state = CheckpointFiles.ReadJson<TrainerState>(path, Json, "training checkpoint");
        string? wrong = state switch
        {
            { Step: < 1 } => $"step {state.Step}",
            { Epoch: < 0 } => $"epoch {state.Epoch}",
            { BatchInEpoch: < 0 } => $"batch_in_epoch {state.BatchInEpoch}",
            { TokensSeen: < 0 } => $"tokens_seen {state.TokensSeen}",
            { MicroBatchesPerStep: < 1 } => $"micro_batches_per_step {state.MicroBatchesPerStep}",
            { TrainDocuments: < 0 } or { TrainTokens: < 0 } => $"train_documents {state.TrainDocuments}, train_tokens {state.TrainTokens}",
            { ElapsedSeconds: { } seconds } when !(seconds >= 0) || double.IsInfinity(seconds) => $"elapsed_seconds {seconds}",
            _ => null,
        };
        if (wrong is not null) throw new BioForgeException($"{path}: {wrong} is not a value a run writes (a damaged or edited checkpoint)");
        string folder = Path.GetFileName(Path.TrimEndingDirectorySeparator(checkpoint));
        if (folder.StartsWith("step-", StringComparison.Ordinal) && long.TryParse(folder.AsSpan(5), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long named)
            && named != state.Step)
            throw new BioForgeException($"{path}: says step {state.Step}, but its folder is {folder} (a damaged or edited checkpoint)");
        return state;
    }

    public void Write(string checkpoint) => CheckpointFiles.WriteJson(Path.Combine(checkpoint, FileName), this, Json);
}
