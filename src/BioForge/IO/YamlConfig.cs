using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tomlyn;
using Tomlyn.Model;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace BioForge.IO;

/// <summary>
/// Run files (YAML, or TOML for <c>.toml</c>) read into typed records: snake_case keys, unknown keys refused with their full dotted name (sections
/// are BioForge's own records, lists of them included), <c>section.key=value</c> overrides applied on top, YAML errors reported
/// as file:line:column.
/// </summary>
internal static class YamlConfig
{
    public static readonly JsonSerializerOptions Serializer = ReadOnly(new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true });

    /// <summary>Without what a record computes from its settings (a component's label): those are no keys a file may set.</summary>
    private static readonly JsonSerializerOptions SettingsOnly = ReadOnly(new(Serializer) { IgnoreReadOnlyProperties = true });

    /// <summary>Shared options frozen, so no caller can change how every run file is read.</summary>
    private static JsonSerializerOptions ReadOnly(JsonSerializerOptions options)
    {
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }

    /// <summary>Reads, overrides, checks keys, deserialises, then runs <paramref name="validate"/> (with <see cref="Requirement"/>).</summary>
    /// <param name="translate">Rewrites the file's tree (as read, before overrides) into <typeparamref name="T"/>'s layout: another program's run-file format.</param>
    public static T Load<T>(string path, IEnumerable<string>? overrides, Action<T, Action<bool, string>> validate, Func<JsonObject, string, JsonObject>? translate = null) where T : class
    {
        var assignments = overrides?.ToList() ?? [];
        var config = Load<T>(path, assignments, translate);
        // A check that names a setting an override gave blames the override (train.steps=0 was blamed on the file).
        validate(config, (ok, message) =>
        {
            if (ok) return;
            string? given = assignments.LastOrDefault(a => a.IndexOf('=') is > 0 and var equals && message.StartsWith(a[..equals] + " ", StringComparison.Ordinal));
            throw new BioForgeException($"{(given is null ? path : $"override '{given}'")}: {message}");
        });
        return config;
    }

    /// <summary>A check that fails with "<paramref name="path"/>: message".</summary>
    public static Action<bool, string> Requirement(string path) => (ok, message) =>
    {
        if (!ok) throw new BioForgeException($"{path}: {message}");
    };

    public static T Load<T>(string path, IEnumerable<string>? overrides = null, Func<JsonObject, string, JsonObject>? translate = null) where T : class
    {
        if (!File.Exists(path)) throw new BioForgeException($"{path}: configuration file not found");
        var root = path.EndsWith(".toml", StringComparison.OrdinalIgnoreCase) ? ReadToml(path) : ReadYaml(path);
        if (translate is not null) root = translate(root, path);
        return Apply<T>(root, overrides ?? [], path);
    }

    public static string ToJsonText<T>(T value) => JsonSerializer.Serialize(value, Serializer);

    /// <summary>
    /// <paramref name="value"/> with <c>section.key=value</c> overrides applied, as a run file's would be (keys checked,
    /// errors naming <paramref name="where"/>): settings a program builds in code and a user adjusts on its command line.
    /// </summary>
    public static T WithOverrides<T>(T value, IEnumerable<string> overrides, string where) where T : class
    {
        return Apply<T>(JsonSerializer.SerializeToNode(value, SettingsOnly)!.AsObject(), overrides, where);
    }

    /// <summary>
    /// Checks the keys of <paramref name="root"/> (as read from <paramref name="where"/>), applies each override and checks
    /// the keys again, then reads the typed record. A mistake is blamed on the override that made it, else on the file,
    /// and a value of the wrong type is shown with what the setting takes.
    /// </summary>
    private static T Apply<T>(JsonObject root, IEnumerable<string> overrides, string where) where T : class
    {
        CheckKeys(root, typeof(T), "", where);
        var setBy = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string assignment in overrides)
        {
            string blame = $"override '{assignment}'";
            Override(root, assignment, typeof(T));
            CheckKeys(root, typeof(T), "", blame);
            string key = assignment[..assignment.IndexOf('=')];
            // The first would be dropped in silence (a script adding a setting the command line already has).
            if (setBy.TryGetValue(key, out string? earlier)) throw new BioForgeException($"{blame}: {key} is set twice (also {earlier})");
            setBy[key] = blame;
        }
        try
        {
            return root.Deserialize<T>(Serializer)!;
        }
        catch (JsonException e)
        {
            string key = e.Path?.TrimStart('$', '.') ?? "?";
            string value = Find(root, key)?.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) ?? "null";
            string expected = SettingType(typeof(T), key) is { } type ? $" (expected {Expected(type)})" : "";
            throw new BioForgeException($"{setBy.GetValueOrDefault(key, where)}: {key} = {value}: the wrong type or out of range{expected}");
        }
    }

    /// <summary>The node at a dotted path such as <c>stages[0].weight</c>, or null.</summary>
    private static JsonNode? Find(JsonNode root, string key)
    {
        JsonNode? node = root;
        foreach (string part in key.Split('.'))
        {
            int bracket = part.IndexOf('[');
            node = node?[bracket < 0 ? part : part[..bracket]];
            if (bracket >= 0 && int.TryParse(part[(bracket + 1)..^1], NumberStyles.None, CultureInfo.InvariantCulture, out int index))
                node = node is JsonArray list && index < list.Count ? list[index] : null;
        }
        return node;
    }

    /// <summary>The .NET type of the setting at a dotted path of <paramref name="type"/>, or null.</summary>
    private static Type? SettingType(Type type, string key)
    {
        Type? current = type;
        foreach (string part in key.Split('.'))
        {
            int bracket = part.IndexOf('[');
            string name = bracket < 0 ? part : part[..bracket];
            var property = current?.GetProperties(BindingFlags.Public | BindingFlags.Instance)
                .FirstOrDefault(p => JsonNamingPolicy.SnakeCaseLower.ConvertName(p.Name) == name);
            current = property is null ? null : bracket >= 0 ? ElementType(property.PropertyType) : property.PropertyType;
        }
        return current;
    }

    private static string Expected(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        // YAML writes .inf and .nan, which no setting takes.
        if (type == typeof(double) || type == typeof(float)) return "a finite number";
        if (type == typeof(string)) return "text";
        if (Spelling.ValueInWords(type.FullName!) is { } words) return words;
        if (ElementType(type) is { } element) return $"a list of {(IsSection(element) ? "sections" : Expected(element) + "s")}";
        return IsSection(type) ? "a section (a mapping)" : type.Name;
    }

    private static JsonObject ReadYaml(string path)
    {
        try
        {
            var stream = new YamlStream();
            using (var reader = new StreamReader(path)) stream.Load(reader);
            // A second document (after ---) would be ignored, whatever it sets.
            if (stream.Documents.Count > 1)
                throw new BioForgeException($"{path}:{stream.Documents[1].RootNode.Start.Line}: a second YAML document (after ---); a run file is one document");
            return stream.Documents.Count == 0 ? [] : ToJson(stream.Documents[0].RootNode, path) as JsonObject
                ?? throw new BioForgeException($"{path}: the top level must be a mapping of sections");
        }
        catch (YamlException e)
        {
            string message = e.InnerException?.Message ?? e.Message;
            var (line, column) = ((int)e.Start.Line, (int)e.Start.Column);
            // YamlDotNet places a tab in the indentation at the start of the mapping it was scanning: point at the tab.
            if (message.Contains("tab", StringComparison.OrdinalIgnoreCase) && FirstIndentingTab(path) is { } tab) (line, column) = tab;
            throw new BioForgeException($"{path}:{line}:{column}: {message}");
        }
    }

    /// <summary>Line and column (1-based) of the first tab in a line's leading white space.</summary>
    private static (int Line, int Column)? FirstIndentingTab(string path)
    {
        int number = 0;
        foreach (string text in File.ReadLines(path))
        {
            number++;
            int indent = text.Length - text.TrimStart(' ', '\t').Length;
            int tab = text.IndexOf('\t', 0, indent);
            if (tab >= 0) return (number, tab + 1);
        }
        return null;
    }

    /// <summary>TOML (REINVENT's run-file format): tables are sections, arrays of tables lists of them.</summary>
    private static JsonObject ReadToml(string path)
    {
        try
        {
            string text = File.ReadAllText(path);
            // The syntax validator refuses a key or table defined twice, as TOML does; the model reader takes the last.
            Tomlyn.Parsing.SyntaxParser.ParseStrict(text, path);
            return (JsonObject)FromToml(TomlSerializer.Deserialize<TomlTable>(text)!, path, "")!;
        }
        catch (TomlException e)
        {
            // Tomlyn's message repeats the place ("(2,1) : error : …") and may list several errors: the first, once.
            // The syntax validator names the source too, and shows a table's line break as '␤'.
            string message = System.Text.RegularExpressions.Regex.Replace(e.Message.Trim().Split('\n')[0], @"^.*?\(\d+,\d+\)\s*:\s*error\s*:\s*", "").Replace("␤", " ", StringComparison.Ordinal);
            throw new BioForgeException($"{path}:{e.Line}:{e.Column}: {message}");
        }
    }

    /// <param name="key">Where the value sits (<c>stages[0].weight</c>), for messages.</param>
    private static JsonNode? FromToml(object? value, string path, string key) => value switch
    {
        null => null,
        TomlTable table => new JsonObject(table.Select(kv => KeyValuePair.Create(kv.Key, FromToml(kv.Value, path, key.Length == 0 ? kv.Key : $"{key}.{kv.Key}")))),
        TomlTableArray tables => new JsonArray([.. tables.Select((t, i) => FromToml(t, path, $"{key}[{i}]"))]),
        TomlArray array => new JsonArray([.. array.Select((v, i) => FromToml(v, path, $"{key}[{i}]"))]),
        string text => JsonValue.Create(text),
        bool flag => JsonValue.Create(flag),
        long integer => JsonValue.Create(integer),
        // TOML has nan and inf; no setting means them (a range check would let NaN through, every comparison false).
        double real => double.IsFinite(real) ? JsonValue.Create(real) : throw new BioForgeException($"{path}: {key} = {real.ToString(CultureInfo.InvariantCulture)} is not a finite number"),
        _ => JsonValue.Create(Convert.ToString(value, CultureInfo.InvariantCulture)),
    };

    /// <summary>Every setting of <paramref name="type"/> as a dotted path (sections recursed, lists of sections not).</summary>
    private static IEnumerable<string> SettingPaths(Type type, string prefix) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite).SelectMany(p =>
        {
            string key = prefix + JsonNamingPolicy.SnakeCaseLower.ConvertName(p.Name);
            return IsSection(p.PropertyType) ? SettingPaths(p.PropertyType, key + ".") : [key];
        });

    /// <summary>Applies <c>section.key=value</c>; the value is read as YAML (a plain or quoted scalar, or a flow list such as <c>[a, b]</c>).</summary>
    private static void Override(JsonObject root, string assignment, Type type)
    {
        int equals = assignment.IndexOf('=');
        if (assignment.StartsWith('-'))
        {
            // "--threads 1" where a run-file setting was meant: name the settings of that name.
            string name = assignment.TrimStart('-').Split('=')[0].Replace('-', '_');
            var paths = SettingPaths(type, "").Where(p => p == name || p.EndsWith("." + name, StringComparison.Ordinal)).Select(p => p + "=…").ToList();
            throw new BioForgeException($"{assignment}: not an option of this command; run-file settings are given as section.key=value"
                + (paths.Count == 0 ? "" : $" ({string.Join(" or ", paths)})"));
        }
        if (equals <= 0) throw new BioForgeException($"override '{assignment}': expected section.key=value");
        var keys = assignment[..equals].Split('.');
        if (keys.Any(k => k.Length == 0)) throw new BioForgeException($"override '{assignment}': empty key");
        var node = root;
        foreach (string key in keys[..^1])
        {
            // "stages[0]" steps into a list of sections.
            int bracket = key.IndexOf('[');
            if (bracket > 0 && key.EndsWith(']') && int.TryParse(key[(bracket + 1)..^1], NumberStyles.None, CultureInfo.InvariantCulture, out int index))
            {
                string name = key[..bracket];
                node = node[name] is JsonArray list && index < list.Count && list[index] is JsonObject item
                    ? item : throw new BioForgeException($"override '{assignment}': '{name}' has no section [{index}]");
                continue;
            }
            if (node[key] is null) node[key] = new JsonObject();
            node = node[key] as JsonObject ?? throw new BioForgeException($"override '{assignment}': '{key}' is not a section");
        }
        // As a run file reads a value: a plain one without the blanks around it ("out " named a folder ending in a space),
        // a quoted one without its quotes (key="/tmp/x" named a folder '"').
        string value = assignment[(equals + 1)..].Trim();
        node[keys[^1]] = value.StartsWith('[') || value.StartsWith('"') || value.StartsWith('\'') ? ParsedValue(value, assignment) : Scalar(new YamlScalarNode(value));
    }

    private static JsonNode? ParsedValue(string value, string assignment)
    {
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(value));
            return ToJson(stream.Documents[0].RootNode, $"override '{assignment}'");
        }
        catch (YamlException e)
        {
            throw new BioForgeException($"override '{assignment}': {e.InnerException?.Message ?? e.Message}");
        }
    }

    /// <summary>Unknown keys are typos: refuse them with their full name.</summary>
    private static void CheckKeys(JsonObject node, Type type, string prefix, string path)
    {
        var properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite)
            .ToDictionary(p => JsonNamingPolicy.SnakeCaseLower.ConvertName(p.Name), StringComparer.Ordinal);
        foreach (var (key, value) in node)
        {
            if (!properties.TryGetValue(key, out var property))
                throw new BioForgeException($"{path}: unknown key '{prefix}{key}' (known: {string.Join(", ", properties.Keys.Order(StringComparer.Ordinal))})");
            if (IsSection(property.PropertyType))
            {
                if (value is not JsonObject section) throw new BioForgeException($"{path}: '{prefix}{key}' must be a section (a mapping)");
                CheckKeys(section, property.PropertyType, $"{prefix}{key}.", path);
            }
            else if (ElementType(property.PropertyType) is { } element && IsSection(element) && value is JsonArray items)
            {
                for (int i = 0; i < items.Count; i++)
                {
                    if (items[i] is not JsonObject item) throw new BioForgeException($"{path}: '{prefix}{key}[{i}]' must be a section (a mapping)");
                    CheckKeys(item, element, $"{prefix}{key}[{i}].", path);
                }
            }
        }
    }

    /// <summary>A configuration section: one of BioForge's own records (not a string, a list or free-form JSON).</summary>
    private static bool IsSection(Type type) =>
        type.IsClass && type != typeof(string) && type.Namespace?.StartsWith("BioForge", StringComparison.Ordinal) == true;

    private static Type? ElementType(Type type) =>
        type.IsArray ? type.GetElementType() : type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>) ? type.GetGenericArguments()[0] : null;

    /// <summary>More values than any run file holds: aliases of aliases ("billion laughs") expand past it in a few lines.</summary>
    private const int MaxValues = 100_000;

    private static JsonNode? ToJson(YamlNode node, string path)
    {
        int values = 0;
        return Convert(node);

        JsonNode? Convert(YamlNode node)
        {
            if (++values > MaxValues)
                throw new BioForgeException($"{path}:{node.Start.Line}: more than {MaxValues:N0} values once its aliases are expanded; a run file is far smaller");
            return node switch
            {
                YamlMappingNode mapping => new JsonObject(mapping.Children.Select(kv => KeyValuePair.Create(
                    (kv.Key as YamlScalarNode)?.Value ?? throw new BioForgeException($"{path}:{kv.Key.Start.Line}: keys must be plain names"), Convert(kv.Value)))),
                YamlSequenceNode sequence => new JsonArray([.. sequence.Children.Select(Convert)]),
                YamlScalarNode scalar => Scalar(scalar),
                _ => throw new BioForgeException($"{path}:{node.Start.Line}: unsupported YAML node"),
            };
        }
    }

    /// <summary>YAML 1.2 core schema for plain scalars (null, booleans, numbers); quoted scalars stay strings.</summary>
    private static JsonNode? Scalar(YamlScalarNode scalar)
    {
        string text = scalar.Value ?? "";
        if (scalar.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted) return JsonValue.Create(text);
        if (text is "" or "~" or "null" or "Null" or "NULL") return null;
        if (text is "true" or "True" or "TRUE") return JsonValue.Create(true);
        if (text is "false" or "False" or "FALSE") return JsonValue.Create(false);
        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long integer)) return JsonValue.Create(integer);
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double real) && double.IsFinite(real)) return JsonValue.Create(real);
        return JsonValue.Create(text);
    }
}
