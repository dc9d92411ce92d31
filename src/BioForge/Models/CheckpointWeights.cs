using BioForge.IO;
using static TorchSharp.torch;

namespace BioForge.Models;

/// <summary>Copies checkpoint tensors into a module's parameters by name, refusing anything that does not fit.</summary>
internal static class CheckpointWeights
{
    /// <param name="candidates">Checkpoint names to try for a parameter name, in order.</param>
    /// <param name="ignorable">Checkpoint tensors that may be left unused (recomputed or tied buffers).</param>
    /// <param name="architecture">Model family for messages, e.g. "ESM-2".</param>
    public static void LoadInto(nn.Module module, SafetensorsCheckpoint weights, Func<string, IEnumerable<string>> candidates,
        Func<string, bool> ignorable, string architecture)
    {
        var used = new HashSet<string>(StringComparer.Ordinal);
        var missing = new List<string>();
        using (no_grad())
        {
            foreach (var (name, parameter) in module.named_parameters())
            {
                string? stored = candidates(name).FirstOrDefault(weights.Contains);
                if (stored is null)
                {
                    missing.Add(name);
                    continue;
                }
                using var tensor = weights.Load(stored);
                if (!tensor.shape.SequenceEqual(parameter.shape))
                    throw new BioForgeException($"{weights.Directory}: tensor '{stored}' has shape [{string.Join(", ", tensor.shape)}] but config.json implies [{string.Join(", ", parameter.shape)}]");
                parameter.copy_(tensor);
                used.Add(stored);
            }
        }
        if (missing.Count > 0)
            throw new BioForgeException($"{weights.Directory}: checkpoint lacks {missing.Count} tensor(s) the {architecture} model needs, e.g. '{missing[0]}'");
        var unexpected = weights.Names.Where(n => !used.Contains(n) && !ignorable(n)).OrderBy(n => n, StringComparer.Ordinal).ToList();
        if (unexpected.Count > 0)
            throw new BioForgeException($"{weights.Directory}: {unexpected.Count} tensor(s) do not belong to an {architecture} model, e.g. '{unexpected[0]}'");
    }
}
