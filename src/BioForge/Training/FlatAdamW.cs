using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BioForge.Training;

public sealed record AdamWOptions
{
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.98;
    public double Epsilon { get; init; } = 1e-8;
    public double WeightDecay { get; init; } = 0.01;
}

/// <summary>
/// AdamW (Loshchilov &amp; Hutter) over flat buffers: the parameters of each group live inside one contiguous tensor,
/// autograd accumulates their gradients into one contiguous tensor, and a step is a handful of large kernels instead
/// of a loop over hundreds of small tensors (the per-parameter loop is what makes TorchSharp's bf16 training slower
/// than PyTorch's <c>foreach</c> optimizer, REFERENCE §1). Matrices are decayed; vectors (biases, norm weights) are not.
/// </summary>
public sealed class FlatAdamW : IDisposable
{
    private sealed class Group(Tensor values, Tensor gradients, bool decay) : IDisposable
    {
        public Tensor Values { get; } = values;
        public Tensor Gradients { get; } = gradients;
        public Tensor ExpAvg { get; } = zeros_like(values);
        public Tensor ExpAvgSq { get; } = zeros_like(values);
        public bool Decay { get; } = decay;

        public void Dispose()
        {
            Values.Dispose();
            Gradients.Dispose();
            ExpAvg.Dispose();
            ExpAvgSq.Dispose();
        }
    }

    private readonly List<Group> groups = [];
    private readonly AdamWOptions options;

    public long Step { get; private set; }

    public FlatAdamW(IEnumerable<Parameter> parameters, AdamWOptions options)
    {
        this.options = options;
        var all = parameters.Where(p => p.requires_grad).ToList();
        if (all.Count == 0) throw new BioForgeException("no trainable parameters");
        foreach (bool decay in new[] { true, false })
        {
            var members = all.Where(p => (p.dim() >= 2) == decay).ToList();
            if (members.Count > 0) groups.Add(Flatten(members, decay));
        }
    }

    /// <summary>Moves each parameter's storage into one buffer and points its gradient into another.</summary>
    private static Group Flatten(List<Parameter> members, bool decay)
    {
        long total = members.Sum(p => p.numel());
        var first = members[0];
        var values = zeros(total, first.dtype, first.device);
        var gradients = zeros(total, first.dtype, first.device);
        using (no_grad())
        {
            long offset = 0;
            foreach (var p in members)
            {
                long n = p.numel();
                using var slot = values.narrow(0, offset, n);
                slot.copy_(p.detach().reshape(-1));
                using var view = values.narrow(0, offset, n).view(p.shape);
                p.set_(view);
                p.grad = gradients.narrow(0, offset, n).view(p.shape);
                offset += n;
            }
        }
        return new Group(values, gradients, decay);
    }

    public void ZeroGrad()
    {
        foreach (var g in groups) g.Gradients.zero_();
    }

    /// <summary>Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm before clipping.</summary>
    public double ClipGradNorm(double maxNorm)
    {
        using var scope = NewDisposeScope();
        double norm = Math.Sqrt(groups.Sum(g => g.Gradients.to(ScalarType.Float32).pow(2).sum().item<float>()));
        if (norm > maxNorm && norm > 0)
            foreach (var g in groups) g.Gradients.mul_(maxNorm / (norm + 1e-6));
        return norm;
    }

    public void Update(double learningRate)
    {
        Step++;
        double bias1 = 1 - Math.Pow(options.Beta1, Step), bias2 = 1 - Math.Pow(options.Beta2, Step);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (var g in groups)
        {
            if (g.Decay && options.WeightDecay != 0) g.Values.mul_(1 - learningRate * options.WeightDecay);
            g.ExpAvg.mul_(options.Beta1).add_(g.Gradients, alpha: 1 - options.Beta1);
            g.ExpAvgSq.mul_(options.Beta2).addcmul_(g.Gradients, g.Gradients, 1 - options.Beta2);
            var denominator = (g.ExpAvgSq.sqrt() / Math.Sqrt(bias2)).add_(options.Epsilon);
            g.Values.addcdiv_(g.ExpAvg, denominator, -learningRate / bias1);
        }
    }

    public void Dispose()
    {
        foreach (var g in groups) g.Dispose();
    }
}
