using System.Text.Json;
using System.Text.Json.Nodes;

namespace BioForge.Models;

/// <summary>Reads a Hugging Face <c>config.json</c> and checks its <c>model_type</c>.</summary>
internal static class ConfigJson
{
    public static JsonObject Read(string path, string modelType)
    {
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new BioForgeException($"{path}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new BioForgeException($"{path}: not valid JSON ({e.Message})");
        }
        string? type = json["model_type"]?.GetValue<string>();
        if (type is not null && type != modelType) throw new BioForgeException($"{path}: model_type is '{type}', not '{modelType}'");
        return json;
    }
}
