using System.Globalization;
using System.Text.Json;
using BioForge.IO;

namespace BioForge.Training;

/// <summary>Everything besides tensors that a resumed run needs to continue exactly.</summary>
public sealed record TrainerState
{
    public required long Step { get; init; }
    public required int Epoch { get; init; }
    public required int BatchInEpoch { get; init; }
    public required long TokensSeen { get; init; }
    public required ulong Seed { get; init; }
    public required string Precision { get; init; }
    public double? LastValidationLoss { get; init; }

    public StreamPosition Position => new(Epoch, BatchInEpoch);

    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
}

/// <summary>
/// A directory of checkpoints <c>step-000000100/</c> …, each a complete Hugging Face model directory plus
/// <c>optimizer.safetensors</c> and <c>trainer_state.json</c>. A checkpoint is written into a hidden temporary directory
/// and renamed into place only when every file is on disk, so a run killed at any moment (even SIGKILL mid-write)
/// leaves the previous checkpoints intact; leftovers of an interrupted write are removed on the next save.
/// </summary>
public sealed class CheckpointStore(string directory, int keep)
{
    public const string StateFile = "trainer_state.json";
    public const string OptimizerFile = "optimizer.safetensors";
    private const string Prefix = "step-";

    public string Directory { get; } = directory;

    /// <summary>Complete checkpoints, oldest first.</summary>
    public IReadOnlyList<(long Step, string Path)> List()
    {
        if (!System.IO.Directory.Exists(Directory)) return [];
        return System.IO.Directory.EnumerateDirectories(Directory, Prefix + "*")
            .Select(path => (Name: System.IO.Path.GetFileName(path), Path: path))
            .Where(d => long.TryParse(d.Name.AsSpan(Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out _)
                        && File.Exists(System.IO.Path.Combine(d.Path, StateFile)))
            .Select(d => (long.Parse(d.Name.AsSpan(Prefix.Length), CultureInfo.InvariantCulture), d.Path))
            .OrderBy(d => d.Item1)
            .ToList();
    }

    public string? Latest() => List() is { Count: > 0 } all ? all[^1].Path : null;

    /// <summary>Writes a checkpoint: <paramref name="write"/> fills a temporary directory, which is then renamed.</summary>
    public string Save(long step, Action<string> write)
    {
        System.IO.Directory.CreateDirectory(Directory);
        foreach (string stale in System.IO.Directory.EnumerateDirectories(Directory, $".{Prefix}*.tmp"))
            System.IO.Directory.Delete(stale, recursive: true);
        string final = System.IO.Path.Combine(Directory, $"{Prefix}{step:D9}");
        string temp = System.IO.Path.Combine(Directory, $".{Prefix}{step:D9}.{Environment.ProcessId}.tmp");
        System.IO.Directory.CreateDirectory(temp);
        try
        {
            write(temp);
            if (!File.Exists(System.IO.Path.Combine(temp, StateFile)))
                throw new InvalidOperationException($"a checkpoint must contain {StateFile}, written last");
            if (System.IO.Directory.Exists(final)) System.IO.Directory.Delete(final, recursive: true);
            System.IO.Directory.Move(temp, final);
        }
        catch
        {
            if (System.IO.Directory.Exists(temp)) System.IO.Directory.Delete(temp, recursive: true);
            throw;
        }
        foreach (var (_, path) in List().SkipLast(Math.Max(1, keep))) System.IO.Directory.Delete(path, recursive: true);
        return final;
    }

    public static TrainerState ReadState(string checkpoint)
    {
        string path = System.IO.Path.Combine(checkpoint, StateFile);
        if (!File.Exists(path)) throw new BioForgeException($"{checkpoint}: not a training checkpoint (no {StateFile})");
        try
        {
            return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(path), TrainerState.Json)
                ?? throw new BioForgeException($"{path}: empty");
        }
        catch (JsonException e)
        {
            throw new BioForgeException($"{path}: not a valid trainer state ({e.Message})");
        }
    }

    public static void WriteState(string checkpoint, TrainerState state) =>
        AtomicFile.WriteText(System.IO.Path.Combine(checkpoint, StateFile), JsonSerializer.Serialize(state, TrainerState.Json) + "\n");
}
