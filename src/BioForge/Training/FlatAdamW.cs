using BioForge.Distributed;
using BioForge.Runtime;
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
/// <para>
/// Mixed precision: when the parameters are bf16 or fp16, the optimizer keeps float32 master weights, float32 moments
/// and a float32 gradient accumulator (<see cref="AccumulateGradients"/> after each backward pass); the low-precision
/// parameters are rounded copies of the masters after every update. TorchSharp has no autocast, so the network simply
/// computes in the parameters' type and only the optimizer state is wide.
/// </para>
/// </summary>
public sealed class FlatAdamW : IDisposable
{
    private sealed class Group : IDisposable
    {
        /// <summary>The parameters' storage, in their own type.</summary>
        public required Tensor Values { get; init; }
        /// <summary>Where autograd accumulates, in the parameters' type.</summary>
        public required Tensor Gradients { get; init; }
        /// <summary>Float32 master weights and gradient sum; the same tensors as Values/Gradients in float32 training.</summary>
        public required Tensor Master { get; init; }
        public required Tensor MasterGradients { get; init; }
        public required Tensor ExpAvg { get; init; }
        public required Tensor ExpAvgSq { get; init; }
        public required bool Decay { get; init; }
        public string Name => Decay ? "decay" : "no_decay";

        public void Dispose()
        {
            Values.Dispose();
            Gradients.Dispose();
            ExpAvg.Dispose();
            ExpAvgSq.Dispose();
            if (!ReferenceEquals(Master, Values)) Master.Dispose();
            if (!ReferenceEquals(MasterGradients, Gradients)) MasterGradients.Dispose();
        }
    }

    private readonly List<Group> groups = [];
    private readonly AdamWOptions options;

    public long Step { get; private set; }

    /// <summary>True when float32 master weights stand behind low-precision parameters.</summary>
    public bool HasMasterWeights { get; }

    public FlatAdamW(IEnumerable<Parameter> parameters, AdamWOptions options)
    {
        this.options = options;
        var all = parameters.Where(p => p.requires_grad).ToList();
        if (all.Count == 0) throw new BioForgeException("no trainable parameters");
        if (all.Select(p => p.dtype).Distinct().Count() > 1) throw new ArgumentException("all trainable parameters must share one dtype", nameof(parameters));
        HasMasterWeights = all[0].dtype != ScalarType.Float32;
        foreach (bool decay in new[] { true, false })
        {
            var members = all.Where(p => (p.dim() >= 2) == decay).ToList();
            if (members.Count > 0) groups.Add(Flatten(members, decay));
        }
    }

    /// <summary>Moves each parameter's storage into one buffer and points its gradient into another.</summary>
    private Group Flatten(List<Parameter> members, bool decay)
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
        var master = HasMasterWeights ? values.to(ScalarType.Float32) : values;
        return new Group
        {
            Values = values,
            Gradients = gradients,
            Master = master,
            MasterGradients = HasMasterWeights ? zeros_like(master) : gradients,
            ExpAvg = zeros_like(master),
            ExpAvgSq = zeros_like(master),
            Decay = decay,
        };
    }

    public void ZeroGrad()
    {
        foreach (var g in groups)
        {
            g.Gradients.zero_();
            if (HasMasterWeights) g.MasterGradients.zero_();
        }
    }

    /// <summary>
    /// Call after each backward pass: adds the low-precision gradients into the float32 sum and clears them, so
    /// gradient accumulation over micro-batches happens in float32. Nothing to do in float32 training.
    /// </summary>
    public void AccumulateGradients()
    {
        if (!HasMasterWeights) return;
        using var _ = no_grad();
        foreach (var g in groups)
        {
            g.MasterGradients.add_(g.Gradients);
            g.Gradients.zero_();
        }
    }

    /// <summary>
    /// Data parallelism: sums the float32 gradient buffers across <paramref name="group"/>, in buckets of at most
    /// <paramref name="bucketElements"/> values (each a contiguous slice of a flat buffer, reduced in place).
    /// </summary>
    public void AllReduceGradients(Communicator group, long bucketElements)
    {
        if (group.Size == 1) return;
        using var _ = no_grad();
        foreach (var g in groups)
            for (long offset = 0; offset < g.MasterGradients.numel(); offset += bucketElements)
                using (var bucket = g.MasterGradients.narrow(0, offset, Math.Min(bucketElements, g.MasterGradients.numel() - offset)))
                    group.AllReduce(bucket);
    }

    /// <summary>Makes every rank's parameters (and master weights) equal to those of <paramref name="root"/>.</summary>
    public void Broadcast(Communicator group, int root = 0)
    {
        if (group.Size == 1) return;
        using var _ = no_grad();
        foreach (var g in groups)
        {
            group.Broadcast(g.Master, root);
            if (HasMasterWeights) g.Values.copy_(g.Master);
        }
    }

    /// <summary>Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm before clipping.</summary>
    public double ClipGradNorm(double maxNorm)
    {
        using var scope = NewDisposeScope();
        double norm = Math.Sqrt(groups.Sum(g => g.MasterGradients.to(ScalarType.Float32).square().sum().item<float>()));
        if (norm > maxNorm && norm > 0)
            foreach (var g in groups) g.MasterGradients.MulInPlace(maxNorm / (norm + 1e-6));
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
            if (g.Decay && options.WeightDecay != 0) g.Master.MulInPlace(1 - learningRate * options.WeightDecay);
            g.ExpAvg.MulInPlace(options.Beta1).AddScaledInPlace(g.MasterGradients, 1 - options.Beta1);
            g.ExpAvgSq.MulInPlace(options.Beta2).AddProductInPlace(g.MasterGradients, g.MasterGradients, 1 - options.Beta2);
            var denominator = g.ExpAvgSq.sqrt().Div(Math.Sqrt(bias2)).AddInPlace(options.Epsilon);
            g.Master.AddQuotientInPlace(g.ExpAvg, denominator, -learningRate / bias1);
            if (HasMasterWeights) g.Values.copy_(g.Master);
        }
    }

    /// <summary>Bytes of optimizer state (moments, master weights and their gradient sum), for memory reports.</summary>
    public long StateBytes => groups.Sum(g => (g.ExpAvg.numel() * 2 + (HasMasterWeights ? g.Master.numel() * 2 : 0)) * 4);

    /// <summary>The tensors a checkpoint must hold to resume exactly (views of the live state; copy before changing them).</summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> State()
    {
        var state = new List<KeyValuePair<string, Tensor>>();
        foreach (var g in groups)
        {
            state.Add(new($"{g.Name}.exp_avg", g.ExpAvg));
            state.Add(new($"{g.Name}.exp_avg_sq", g.ExpAvgSq));
            if (HasMasterWeights) state.Add(new($"{g.Name}.master", g.Master));
        }
        return state;
    }

    /// <summary>Restores <see cref="State"/> and the step counter; the parameters take the master weights' values.</summary>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state, long step, string where)
    {
        using var _ = no_grad();
        foreach (var (name, target) in State())
        {
            if (!state.TryGetValue(name, out var source))
                throw new BioForgeException($"{where}: optimizer state lacks '{name}' (was it written with another precision?)");
            if (!source.shape.SequenceEqual(target.shape))
                throw new BioForgeException($"{where}: optimizer tensor '{name}' has {source.numel()} values, the model needs {target.numel()}");
            target.copy_(source);
        }
        if (HasMasterWeights)
            foreach (var g in groups) g.Values.copy_(g.Master);
        Step = step;
    }

    public void Dispose()
    {
        foreach (var g in groups) g.Dispose();
    }
}
