using System.Text.Json;
using System.Text.Json.Nodes;

namespace BioForge.IO;

/// <summary>
/// JSON files read whole, each fault one message naming the file: bad syntax, or a name given twice in one object
/// (refused while parsing; left to the lazily built object it surfaced later as an ArgumentException naming no file —
/// Python's json keeps the last, so such a file may load in transformers, but which value was meant is a guess).
/// </summary>
internal static class JsonFile
{
    private static readonly JsonDocumentOptions Strict = new() { AllowDuplicateProperties = false };

    /// <param name="source">Names the file in messages when it is not <paramref name="path"/> itself.</param>
    public static JsonNode? Read(string path, string? source = null) => Parse(File.ReadAllText(path), source ?? path);

    public static JsonObject ReadObject(string path, string? source = null) =>
        Read(path, source) as JsonObject ?? throw new BioForgeException($"{source ?? path}: not a JSON object");

    public static JsonNode? Parse(string text, string source)
    {
        try
        {
            return JsonNode.Parse(text, documentOptions: Strict);
        }
        catch (JsonException e)
        {
            throw new BioForgeException($"{source}: not valid JSON ({e.Message})");
        }
    }
}
