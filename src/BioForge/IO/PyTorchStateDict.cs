using System.Collections;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace BioForge.IO;

/// <summary>
/// A <c>state_dict</c> that PyTorch's <c>torch.save</c> wrote (<c>pytorch_model.bin</c>, or shards listed by
/// <c>pytorch_model.bin.index.json</c>), for checkpoints published before safetensors. Read with TorchSharp.PyBridge,
/// whose unpickler rebuilds tensors only and runs no Python code. Every tensor is in memory at once: dispose the result.
/// </summary>
internal sealed class PyTorchStateDict : IDisposable
{
    public const string SingleFileName = "pytorch_model.bin";
    public const string IndexFileName = "pytorch_model.bin.index.json";

    private readonly Dictionary<string, Tensor> tensors = new(StringComparer.Ordinal);

    private PyTorchStateDict(string directory) => Directory = directory;

    public string Directory { get; }

    public IReadOnlyDictionary<string, Tensor> Tensors => tensors;

    /// <summary>True when <paramref name="directory"/> holds PyTorch weights (single file or index).</summary>
    public static bool Exists(string directory) =>
        File.Exists(Path.Combine(directory, SingleFileName)) || File.Exists(Path.Combine(directory, IndexFileName));

    public static PyTorchStateDict Open(string directory)
    {
        var result = new PyTorchStateDict(directory);
        try
        {
            // The single file first, as Hugging Face's from_pretrained looks.
            string index = Path.Combine(directory, IndexFileName), single = Path.Combine(directory, SingleFileName);
            if (File.Exists(single) || !File.Exists(index)) result.Add(single);
            else
                foreach (string file in ShardFiles(index)) result.Add(Path.Combine(directory, file));
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    private static IEnumerable<string> ShardFiles(string index)
    {
        try
        {
            var map = (JsonFile.Read(index) as JsonObject)?["weight_map"] as JsonObject
                ?? throw new BioForgeException($"{index}: no weight_map object");
            return map.Select(kv => SafetensorsCheckpoint.ShardName(index, kv.Key, kv.Value)).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new BioForgeException($"{index}: not a valid index ({e.Message})");
        }
    }

    private void Add(string path)
    {
        if (!File.Exists(path)) throw new BioForgeException($"{path} does not exist");
        Hashtable table;
        try
        {
            table = PyTorchUnpickler.UnpickleStateDict(path);
        }
        catch (Exception e) when (e is not BioForgeException)
        {
            // A legacy (pre-1.6, non-zip) file, a whole pickled model or a damaged file: one message naming it.
            // LibTorch's messages carry its C++ stack after the first line ("Exception raised from …, frame #0: …").
            string reason = e.Message.Split('\n', 2)[0].Trim();
            throw new BioForgeException($"{path}: not a PyTorch state_dict that can be read ({e.GetType().Name}: {reason}); save it with torch.save(model.state_dict()) or as safetensors");
        }
        var entries = table.Cast<DictionaryEntry>().ToList();
        string? error = null;
        foreach (var (key, value) in entries.Select(e => (e.Key, e.Value)))
        {
            if (error is null && key is string name && value is Tensor t && tensors.TryAdd(name, t.DetachFromDisposeScope())) continue;
            error ??= key is string && value is Tensor ? $"tensor '{key}' appears in two shards" : $"entry '{key}' is not a named tensor";
            (value as IDisposable)?.Dispose(); // the rest of a refused file is freed here; what was added, by Dispose
        }
        if (error is not null) throw new BioForgeException($"{path}: {error}");
    }

    public void Dispose()
    {
        foreach (var t in tensors.Values) t.Dispose();
        tensors.Clear();
    }
}
