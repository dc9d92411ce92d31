using System.Globalization;
using System.Text.Json;
using BioForge.IO;
using static TorchSharp.torch;

namespace BioForge.Training;

/// <summary>The files inside a checkpoint folder besides the model's: the run's state as JSON, the optimizer's as safetensors.</summary>
internal static class CheckpointFiles
{
    public const string OptimizerFile = "optimizer.safetensors";

    public static void WriteJson<T>(string path, T value, JsonSerializerOptions options) =>
        AtomicFile.WriteText(path, JsonSerializer.Serialize(value, options) + "\n");

    public static T ReadJson<T>(string path, JsonSerializerOptions options, string what)
    {
        if (!File.Exists(path)) throw new BioForgeException($"{Path.GetDirectoryName(path)}: not a {what} (no {Path.GetFileName(path)})");
        try
        {
            return JsonSerializer.Deserialize<T>(File.ReadAllText(path), options) ?? throw new BioForgeException($"{path}: empty");
        }
        catch (JsonException e)
        {
            throw new BioForgeException($"{path}: not a valid {what} ({e.Message})");
        }
    }

    /// <summary>Writes the optimizer's moments (and master weights) as <c>optimizer.safetensors</c> in <paramref name="checkpoint"/>.</summary>
    public static void SaveOptimizer(string checkpoint, IReadOnlyList<KeyValuePair<string, Tensor>> state, long optimizerStep)
    {
        using var scope = NewDisposeScope();
        SafetensorsWriter.Write(Path.Combine(checkpoint, OptimizerFile),
            [.. state.Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.detach().cpu()))],
            new Dictionary<string, string> { ["step"] = optimizerStep.ToString(CultureInfo.InvariantCulture) });
    }

    /// <summary>
    /// Restores the optimizer from <paramref name="checkpoint"/>, with the update count it was saved with (its bias
    /// correction's t, which differs from the run's step when a step makes several updates or skips one, or after a
    /// reset); <paramref name="runStep"/> only for checkpoints written before the count was stored.
    /// </summary>
    public static void LoadOptimizer(string checkpoint, FlatAdamW optimizer, long runStep)
    {
        string path = Path.Combine(checkpoint, OptimizerFile);
        if (!File.Exists(path)) throw new BioForgeException($"{checkpoint}: no {OptimizerFile}");
        using var file = SafetensorsFile.Open(path);
        long step = runStep;
        // The count is AdamW's bias-correction t: a negative one would step against the gradient and blame optimizer.lr.
        if (file.Metadata.TryGetValue("step", out string? saved) && !long.TryParse(saved, NumberStyles.None, CultureInfo.InvariantCulture, out step))
            throw new BioForgeException($"{path}: optimizer step '{saved}' is not a count of updates (a damaged or edited checkpoint)");
        optimizer.LoadState(name => file.Contains(name) ? file.ToTensor(name) : null, step, path);
    }
}
