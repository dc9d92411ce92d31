using System.Text.Json.Nodes;

namespace BioForge.Training;

/// <summary>Settings that differ between two JSON configurations, each as <c>path: before → after</c>.</summary>
internal static class ConfigDifferences
{
    /// <summary>The node at a dotted path of objects (<c>model.config.hidden_size</c>), or null.</summary>
    public static JsonNode? Find(JsonObject root, string path)
    {
        JsonNode? node = root;
        foreach (string key in path.Split('.')) node = node is JsonObject o ? o[key] : null;
        return node;
    }

    /// <summary>
    /// Adds each leaf under <paramref name="path"/> where <paramref name="before"/> and <paramref name="after"/> differ
    /// (arrays of equal length element by element); a key <paramref name="before"/> lacks counts as its value in
    /// <paramref name="defaults"/>.
    /// </summary>
    public static void Compare(string path, JsonNode? before, JsonNode? after, JsonObject? defaults, List<string> differences)
    {
        if (before is JsonObject a && after is JsonObject b)
        {
            foreach (string key in a.Select(kv => kv.Key).Union(b.Select(kv => kv.Key)).Order(StringComparer.Ordinal))
                Compare($"{path}.{key}", a[key] ?? (a.ContainsKey(key) || defaults is null ? null : DefaultOf(defaults, $"{path}.{key}")), b[key], defaults, differences);
            return;
        }
        if (before is JsonArray x && after is JsonArray y && x.Count == y.Count)
        {
            for (int i = 0; i < x.Count; i++) Compare($"{path}[{i}]", x[i], y[i], defaults, differences);
            return;
        }
        if (!JsonNode.DeepEquals(before, after))
            differences.Add($"{path}: {Show(before)} → {Show(after)}");
    }

    /// <summary>The default at a dotted path; an element of a list (<c>stages[1].x</c>) takes its list's first default element.</summary>
    private static JsonNode? DefaultOf(JsonObject defaults, string path)
    {
        JsonNode? node = defaults;
        foreach (string part in path.Split('.'))
        {
            int bracket = part.IndexOf('[', StringComparison.Ordinal);
            node = node is JsonObject o ? o[bracket < 0 ? part : part[..bracket]] : null;
            if (bracket >= 0) node = node is JsonArray { Count: > 0 } list ? list[0] : null;
        }
        return node;
    }

    private static string Show(JsonNode? node) => node is null ? "(not set)" : node.ToJsonString();
}
