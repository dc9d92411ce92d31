using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;

namespace BioForge.IO;

/// <summary>
/// The weights of a Hugging Face checkpoint directory: <c>model.safetensors</c>, or shards listed in
/// <c>model.safetensors.index.json</c>.
/// </summary>
public sealed class SafetensorsCheckpoint : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly List<SafetensorsFile> files = [];
    private readonly Dictionary<string, SafetensorsFile> owner = new(StringComparer.Ordinal);

    public string Directory { get; }
    public IReadOnlyCollection<string> Names => owner.Keys;

    private SafetensorsCheckpoint(string directory) => Directory = directory;

    public static SafetensorsCheckpoint Open(string directory)
    {
        var checkpoint = new SafetensorsCheckpoint(directory);
        try
        {
            string index = Path.Combine(directory, IndexFileName);
            string single = Path.Combine(directory, SingleFileName);
            // The single file first, as Hugging Face's from_pretrained looks.
            if (File.Exists(single)) checkpoint.Add(SafetensorsFile.Open(single), expected: null);
            else if (File.Exists(index)) checkpoint.OpenShards(index);
            else throw new BioForgeException($"{directory}: no {SingleFileName} or {IndexFileName} (only safetensors checkpoints are read)");
            return checkpoint;
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    private void OpenShards(string indexPath)
    {
        var index = JsonFile.Read(indexPath) as JsonObject;
        if (index?["weight_map"] is not JsonObject map) throw new BioForgeException($"{indexPath}: no \"weight_map\" object");
        var byShard = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var (name, value) in map)
        {
            string shard = ShardName(indexPath, name, value);
            if (!byShard.TryGetValue(shard, out var names)) byShard[shard] = names = new HashSet<string>(StringComparer.Ordinal);
            names.Add(name);
        }
        foreach (var (shard, names) in byShard.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            Add(SafetensorsFile.Open(Path.Combine(Directory, shard)), names);
    }

    /// <summary>The file an index's <c>weight_map</c> names for a tensor: a plain name in the checkpoint's directory.</summary>
    internal static string ShardName(string indexPath, string tensor, JsonNode? value)
    {
        string? shard = value?.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null;
        if (string.IsNullOrEmpty(shard) || shard.Contains('/') || shard.Contains('\\') || shard.StartsWith('.'))
            throw new BioForgeException($"{indexPath}: tensor '{tensor}' maps to an invalid shard file name '{shard}'");
        return shard;
    }

    private void Add(SafetensorsFile file, HashSet<string>? expected)
    {
        files.Add(file);
        foreach (var entry in file.Entries)
        {
            if (owner.ContainsKey(entry.Name)) throw new BioForgeException($"{file.Path}: tensor '{entry.Name}' is also stored in {owner[entry.Name].Path}");
            owner[entry.Name] = file;
        }
        if (expected is null) return;
        foreach (string name in expected)
            if (!file.Contains(name)) throw new BioForgeException($"{file.Path}: the index lists tensor '{name}' here but the file does not contain it");
    }

    public bool Contains(string name) => owner.ContainsKey(name);

    public SafetensorsEntry Entry(string name) => FileOf(name)[name];

    public torch.Tensor Load(string name) => FileOf(name).ToTensor(name);

    private SafetensorsFile FileOf(string name) =>
        owner.TryGetValue(name, out var f) ? f : throw new BioForgeException($"{Directory}: checkpoint has no tensor '{name}'");

    /// <summary>
    /// Writes tensors as <c>model.safetensors</c>, or, when they exceed <paramref name="maxShardBytes"/>, as
    /// <c>model-0000i-of-0000n.safetensors</c> shards plus the index, the layout <c>save_pretrained</c> uses.
    /// </summary>
    public static void Save(string directory, IReadOnlyList<KeyValuePair<string, torch.Tensor>> tensors, long maxShardBytes = 5_000_000_000)
    {
        System.IO.Directory.CreateDirectory(directory);
        var shards = new List<List<KeyValuePair<string, torch.Tensor>>> { new() };
        long current = 0, total = 0;
        foreach (var kv in tensors)
        {
            long bytes = kv.Value.numel() * kv.Value.element_size();
            if (current > 0 && current + bytes > maxShardBytes)
            {
                shards.Add([]);
                current = 0;
            }
            shards[^1].Add(kv);
            current += bytes;
            total += bytes;
        }
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        string index = Path.Combine(directory, IndexFileName);
        if (shards.Count == 1)
        {
            SafetensorsWriter.Write(Path.Combine(directory, SingleFileName), shards[0], meta);
            File.Delete(index);
            return;
        }
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < shards.Count; i++)
        {
            string name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            SafetensorsWriter.Write(Path.Combine(directory, name), shards[i], meta);
            foreach (var kv in shards[i]) weightMap[kv.Key] = name;
        }
        // An older single file goes before the index comes: it is read first, and a crash between the two must not
        // leave stale weights that load.
        File.Delete(Path.Combine(directory, SingleFileName));
        var json = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = JsonSerializer.SerializeToNode(weightMap) };
        AtomicFile.WriteText(index, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    public void Dispose()
    {
        foreach (var f in files) f.Dispose();
        files.Clear();
    }
}
