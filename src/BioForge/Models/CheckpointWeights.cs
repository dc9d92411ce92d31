using System.Text.Json;
using System.Text.Json.Nodes;
using BioForge.Distributed;
using BioForge.IO;
using BioForge.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.Models;

/// <summary>Copies checkpoint tensors into a module's parameters by name, refusing anything that does not fit.</summary>
internal static class CheckpointWeights
{
    /// <summary>Fills a new network from its checkpoint (<paramref name="load"/>) and places it on the device in eval
    /// mode; the network is disposed when any of it fails (a missing tensor, a shape, memory).</summary>
    public static T Place<T>(T network, Action<T> load, Device device, ScalarType dtype) where T : nn.Module
    {
        try
        {
            load(network);
            network.to(device, dtype);
            network.eval();
            return network;
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    /// <param name="candidates">Checkpoint names to try for a parameter name, in order.</param>
    /// <param name="ignorable">Checkpoint tensors that may be left unused (recomputed or tied buffers).</param>
    /// <param name="architecture">Model family for messages, e.g. "ESM-2".</param>
    /// <param name="part">Tensor parallelism: the part of a stored (unsharded) tensor this process's parameter holds.</param>
    /// <param name="optional">Parameters the checkpoint may lack (they keep their initial values).</param>
    /// <returns>The optional parameters the checkpoint lacked.</returns>
    public static IReadOnlyList<string> LoadInto(nn.Module module, SafetensorsCheckpoint weights, Func<string, IEnumerable<string>> candidates,
        Func<string, bool> ignorable, string architecture, Func<string, Tensor, Tensor>? part = null, Func<string, bool>? optional = null) =>
        LoadInto(module, weights.Directory, weights.Names, weights.Contains, weights.Load, candidates, ignorable, architecture, part, optional);

    /// <summary>The same from tensors already in memory (a PyTorch <c>state_dict</c> file), which stay the caller's.</summary>
    public static void LoadInto(nn.Module module, string source, IReadOnlyDictionary<string, Tensor> weights, Func<string, IEnumerable<string>> candidates,
        Func<string, bool> ignorable, string architecture) =>
        LoadInto(module, source, [.. weights.Keys], weights.ContainsKey, name => weights[name].alias(), candidates, ignorable, architecture, null, null);

    /// <param name="load">A stored tensor, which the caller disposes.</param>
    private static IReadOnlyList<string> LoadInto(nn.Module module, string source, IReadOnlyCollection<string> names, Func<string, bool> contains, Func<string, Tensor> load,
        Func<string, IEnumerable<string>> candidates, Func<string, bool> ignorable, string architecture, Func<string, Tensor, Tensor>? part, Func<string, bool>? optional)
    {
        var used = new HashSet<string>(StringComparer.Ordinal);
        var missing = new List<string>();
        var lacked = new List<string>();
        using (no_grad())
        {
            foreach (var (name, parameter) in module.named_parameters())
            {
                string? stored = candidates(name).FirstOrDefault(contains);
                if (stored is null)
                {
                    (optional?.Invoke(name) == true ? lacked : missing).Add(name);
                    continue;
                }
                using var whole = load(stored);
                using var tensor = part is null ? whole.alias() : part(name, whole);
                if (!tensor.shape.SequenceEqual(parameter.shape))
                    throw new BioForgeException($"{source}: tensor '{stored}' has shape [{string.Join(", ", tensor.shape)}] but config.json implies [{string.Join(", ", parameter.shape)}]");
                // copy_ would turn stored integers into weights without a word.
                if (parameter.is_floating_point() && !tensor.is_floating_point())
                    throw new BioForgeException($"{source}: tensor '{stored}' holds {tensor.dtype} values where the {architecture} model has {parameter.dtype} weights");
                // A NaN or infinite weight (a damaged or diverged checkpoint) turns every output it touches into NaN,
                // written out as numbers; refused here, once, with the tensor's name.
                if (tensor.is_floating_point() && !AllFinite(tensor))
                    throw new BioForgeException($"{source}: tensor '{stored}' holds NaN or infinite values (a damaged or diverged checkpoint)");
                parameter.copy_(tensor);
                used.Add(stored);
            }
        }
        if (missing.Count > 0)
            throw new BioForgeException($"{source}: checkpoint lacks {missing.Count} tensor(s) the {architecture} model needs, e.g. '{missing[0]}'");
        var unexpected = names.Where(n => !used.Contains(n) && !ignorable(n)).OrderBy(n => n, StringComparer.Ordinal).ToList();
        if (unexpected.Count > 0)
            throw new BioForgeException($"{source}: {unexpected.Count} tensor(s) do not belong to an {architecture} model, e.g. '{unexpected[0]}'");
        return lacked;
    }

    private static bool AllFinite(Tensor tensor)
    {
        using var finite = tensor.isfinite();
        using var all = finite.all();
        return all.item<bool>();
    }

    /// <summary>
    /// The module's parameters as unsharded tensors, by name. With tensor parallelism this is a collective: every rank
    /// of the group calls it, and every rank gets the whole tensors.
    /// </summary>
    public static List<KeyValuePair<string, Tensor>> Unsharded(nn.Module module, ShardedParameters sharded) =>
        [.. module.named_parameters().Select(p => new KeyValuePair<string, Tensor>(p.name, sharded.Unshard(p.name, p.parameter.detach())))];

    /// <summary>
    /// Writes tensors in the layout <c>save_pretrained</c> produces: <c>config.json</c> and <c>model.safetensors</c>
    /// (or shards), on the CPU, sorted by name; float32 unless <paramref name="storage"/> says float16 (half the bytes,
    /// for shipped models; loading converts back to the compute dtype).
    /// </summary>
    public static void Save(IEnumerable<KeyValuePair<string, Tensor>> weights, JsonObject config, string directory, long maxShardBytes = 5_000_000_000,
        ScalarType storage = ScalarType.Float32)
    {
        if (storage is not (ScalarType.Float32 or ScalarType.Float16)) throw new BioForgeException($"weights are stored as float32 or float16, not {storage}");
        Directory.CreateDirectory(directory);
        using var scope = NewDisposeScope();
        var tensors = weights
            .OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => new KeyValuePair<string, Tensor>(p.Key, p.Value.detach().to(storage).cpu()))
            .ToList();
        SafetensorsCheckpoint.Save(directory, tensors, maxShardBytes);
        config["dtype"] = storage == ScalarType.Float16 ? "float16" : "float32"; // Hugging Face reads it as the weights' type
        AtomicFile.WriteText(Path.Combine(directory, ModelRegistry.ConfigFile), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>
    /// GPT-2/BERT-style initialisation: matrices ~ N(0, 0.02), norm weights 1, everything else 0. A tensor-parallel
    /// shard draws its whole matrix and keeps its part, so every group size starts from the same network.
    /// </summary>
    public static void InitializeRandomly(nn.Module module, Func<string, bool> isNormWeight, ulong seed, ShardedParameters? sharded = null)
    {
        using var generator = new Generator(seed);
        using var _ = no_grad();
        foreach (var (name, p) in module.named_parameters())
        {
            // nn.init.normal_ ignores its generator argument in TorchSharp 0.107: draw explicitly so a seed reproduces.
            if (name.EndsWith(".weight", StringComparison.Ordinal) && p.dim() == 2)
            {
                using var draw = randn(sharded?.WholeShape(name, p.shape) ?? p.shape, p.dtype, p.device, generator: generator);
                using var part = sharded is null ? draw.alias() : sharded.Shard(name, draw);
                p.copy_(part.MulInPlace(0.02));
            }
            else if (isNormWeight(name)) nn.init.ones_(p);
            else nn.init.zeros_(p);
        }
    }
}
