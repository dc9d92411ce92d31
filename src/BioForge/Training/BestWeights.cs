using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BioForge.Training;

/// <summary>
/// Early stopping's copy of the parameters at the best epoch so far: <see cref="Keep"/> after an epoch that improved,
/// <see cref="Restore"/> when training ends. Disposing frees the copy whatever ended the training (an error, a stop).
/// </summary>
internal sealed class BestWeights(IReadOnlyList<Parameter> parameters) : IDisposable
{
    private List<Tensor>? copy;

    /// <summary>Whether an epoch was kept.</summary>
    public bool Kept => copy is not null;

    public void Keep()
    {
        using var _ = no_grad();
        // Under no_grad a clone records no graph (detach() would leave a handle per parameter). The copy is this object's
        // (freed by Dispose), whatever dispose scope Keep is called in.
        if (copy is null) copy = [.. parameters.Select(p => p.clone().DetachFromDisposeScope())];
        else foreach (var (saved, p) in copy.Zip(parameters)) saved.copy_(p);
    }

    public void Restore()
    {
        if (copy is null) throw new InvalidOperationException("no weights were kept");
        using var _ = no_grad();
        foreach (var (p, saved) in parameters.Zip(copy)) p.copy_(saved);
    }

    public void Dispose()
    {
        foreach (var t in copy ?? []) t.Dispose();
        copy = null;
    }
}
