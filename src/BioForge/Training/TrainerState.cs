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

    public static TrainerState Read(string checkpoint) =>
        RunDirectory.ReadJson<TrainerState>(Path.Combine(checkpoint, FileName), Json, "training checkpoint");

    public void Write(string checkpoint) => RunDirectory.WriteJson(Path.Combine(checkpoint, FileName), this, Json);
}
