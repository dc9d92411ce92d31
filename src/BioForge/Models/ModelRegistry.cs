using System.Text.Json.Nodes;
using BioForge.IO;
using BioForge.Models.Esm;
using BioForge.Models.Gpt2;
using BioForge.Models.Llama;

namespace BioForge.Models;

/// <summary>
/// The model families BioForge knows, by <c>model_type</c>: the one place that maps a checkpoint's config.json to
/// its family, so commands, the trainer, the planner and the server ask the family instead of comparing strings.
/// </summary>
public static class ModelRegistry
{
    public const string ConfigFile = "config.json";

    public static IReadOnlyList<ModelFamily> Families { get; } = [EsmFamily.Instance, LlamaFamily.Instance, Gpt2Family.Instance];

    /// <summary>The registered model types, for messages: <c>esm, llama, gpt2</c>.</summary>
    public static string Known => string.Join(", ", Families.Select(f => f.ModelType));

    public static ModelFamily? Find(string? modelType) => Families.FirstOrDefault(f => f.ModelType == modelType);

    /// <summary>The family of <paramref name="modelType"/>; <paramref name="where"/> names the setting or file in the message.</summary>
    public static ModelFamily Get(string? modelType, string where) =>
        Find(modelType) ?? throw new BioForgeException(modelType is null
            ? $"{where}: no model_type (expected one of {Known})"
            : $"{where}: model_type '{modelType}' is not a family BioForge knows ({Known})");

    /// <summary>The config.json of a checkpoint directory, refused by name when the folder or the file is missing.</summary>
    /// <param name="architecture">What the directory should hold, for the message (<c>ESM-2</c>); null for any family.</param>
    public static string ConfigPath(string directory, string? architecture = null)
    {
        if (!Directory.Exists(directory)) throw new BioForgeException($"model directory {directory} does not exist");
        string path = Path.Combine(directory, ConfigFile);
        if (!File.Exists(path))
            throw new BioForgeException($"{directory}: no {ConfigFile} (expected a Hugging Face {(architecture is null ? "" : architecture + " ")}checkpoint directory)");
        return path;
    }

    /// <summary>The family of a checkpoint directory, from its config.json.</summary>
    public static ModelFamily Of(string directory)
    {
        string path = ConfigPath(directory);
        var type = ReadConfig(path)["model_type"];
        string? name = null;
        if (type is not null && (type is not JsonValue value || !value.TryGetValue(out name)))
            throw new BioForgeException($"{path}: model_type must be a string (got {type.ToJsonString()})");
        return Get(name, path);
    }

    /// <summary>A config.json file as a JSON object, or one message naming the file.</summary>
    public static JsonObject ReadConfig(string path) => JsonFile.ReadObject(path);
}
