using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using BioForge.IO;

namespace BioForge.Models;

/// <summary>Reads a Hugging Face <c>config.json</c> and checks its <c>model_type</c>.</summary>
internal static class ConfigJson
{
    public static JsonObject Read(string path, string modelType)
    {
        var json = JsonFile.ReadObject(path);
        string? type = Text(json, "model_type", path);
        if (type is not null && type != modelType) throw new BioForgeException($"{path}: model_type is '{type}', not '{modelType}'");
        return json;
    }

    /// <summary>
    /// A float as Python's <c>json</c> writes one (<c>0.0</c>, <c>10000.0</c>, <c>1e-05</c>), where System.Text.Json
    /// writes a whole number without its point: transformers' configs declare these fields <c>float</c>, and their
    /// strict validation (transformers 5) refuses the integer <c>0</c> for one.
    /// </summary>
    public static JsonNode Float(double value)
    {
        if (!double.IsFinite(value)) throw new ArgumentOutOfRangeException(nameof(value), value, "JSON has no such number");
        string text = value.ToString("R", CultureInfo.InvariantCulture);
        return JsonNode.Parse(text.Contains('.') || text.Contains('E') ? text : text + ".0")!;
    }

    /// <summary>A string, or null when absent; another JSON type is one message naming the key.</summary>
    public static string? Text(JsonObject json, string key, string path)
    {
        var node = json[key];
        if (node is null || node.GetValueKind() == JsonValueKind.Null) return null;
        return node is JsonValue value && value.TryGetValue(out string? text) ? text : throw new BioForgeException($"{path}: '{key}' must be a string (got {node.ToJsonString()})");
    }

    /// <summary>A boolean or number, or null when absent; another JSON type is one message naming the key.</summary>
    public static T? Value<T>(JsonObject json, string key, string path) where T : struct
    {
        var node = json[key];
        if (node is null || node.GetValueKind() == JsonValueKind.Null) return null;
        if (node is JsonValue value && value.TryGetValue(out T result)) return result;
        throw new BioForgeException($"{path}: '{key}' must be {(typeof(T) == typeof(bool) ? "true or false" : "a number")} (got {node.ToJsonString()})");
    }
}
