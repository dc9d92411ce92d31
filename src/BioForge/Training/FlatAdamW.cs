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

    /// <summary>The checks every run file makes of its <c>optimizer</c> section, under the names the files use.</summary>
    public void Validate(double gradClip, Action<bool, string> require)
    {
        require(Beta1 is >= 0 and < 1 && Beta2 is >= 0 and < 1, "optimizer.beta1 and beta2 must be in [0, 1)");
        require(Epsilon > 0, $"optimizer.eps must be positive (got {Epsilon})");
        require(WeightDecay >= 0 && gradClip >= 0, "optimizer.weight_decay and grad_clip must be >= 0");
    }
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
/// <para>
/// ZeRO stage 1 (Rajbhandari et al. 2020), with a shard group: each flat buffer is padded to a multiple of the group
/// size and rank r owns the r-th equal slice of the moments and master weights. Gradients are reduce-scattered (each
/// rank receives the summed slice it owns), the owned slice is updated, and the parameters are all-gathered, so
/// optimizer memory per rank falls to about 1/N while every step computes what unsharded AdamW computes.
/// </para>
/// <para>
/// Tensor parallelism: parameters that are shards of a split matrix live in their own flat groups, so gradient
/// clipping sums their squares across the tensor-parallel group (replicated parameters count once), and the
/// checkpointed state is per parameter and unsharded — a checkpoint resumes on any data- or tensor-parallel size.
/// </para>
/// </summary>
public sealed class FlatAdamW : IDisposable
{
    /// <summary>A parameter's place in its group's flat buffer.</summary>
    private sealed record Member(string Name, long Offset, long[] Shape)
    {
        public long Count => Shape.Aggregate(1L, (a, b) => a * b);
    }

    private sealed class Group : IDisposable
    {
        public required List<Member> Members { get; init; }
        /// <summary>The parameters' storage, in their own type (padded to a multiple of the shard count).</summary>
        public required Tensor Values { get; init; }
        /// <summary>Where autograd accumulates, in the parameters' type.</summary>
        public required Tensor Gradients { get; init; }
        /// <summary>The float32 gradient sum over micro-batches (the same tensor as Gradients in float32 training).</summary>
        public required Tensor MasterGradients { get; init; }
        /// <summary>Parameters in use, without the padding.</summary>
        public required long Length { get; init; }
        /// <summary>The slice of the padded buffer this rank updates: all of it without sharding.</summary>
        public required long Start { get; init; }
        public required long ShardLength { get; init; }
        /// <summary>Float32 master weights of the owned slice (a view of Values in unsharded float32 training).</summary>
        public required Tensor Master { get; init; }
        /// <summary>Float32 summed gradients of the owned slice (MasterGradients itself without sharding).</summary>
        public required Tensor ShardGradients { get; init; }
        public required Tensor ExpAvg { get; init; }
        public required Tensor ExpAvgSq { get; init; }
        public required bool Decay { get; init; }
        /// <summary>Its parameters are tensor-parallel shards (each rank holds different values).</summary>
        public required bool TensorSharded { get; init; }

        public void Dispose()
        {
            foreach (var t in new[] { Values, Gradients, MasterGradients, Master, ShardGradients, ExpAvg, ExpAvgSq }.Distinct(ReferenceEqualityComparer.Instance)) ((Tensor)t!).Dispose();
        }
    }

    private readonly List<Group> groups = [];
    private readonly AdamWOptions options;
    private readonly Communicator? shards;
    private readonly ShardedParameters? tensorSharding;

    public long Step { get; private set; }

    /// <summary>True when float32 master weights stand behind low-precision parameters.</summary>
    public bool HasMasterWeights { get; }

    /// <summary>An optimizer whose state is never saved: parameters are named by position.</summary>
    public FlatAdamW(IEnumerable<Parameter> parameters, AdamWOptions options)
        : this(parameters.Select((p, i) => (i.ToString(System.Globalization.CultureInfo.InvariantCulture), p)), options)
    {
    }

    /// <param name="parameters">Trainable parameters by name; the names key the checkpointed state.</param>
    /// <param name="shardAcross">ZeRO-1: shard the optimizer state across this data-parallel group (null: keep it whole).</param>
    /// <param name="tensorSharding">Tensor parallelism: which parameters are shards of split matrices.</param>
    /// <param name="masters">
    /// Mixed precision: the float32 weights the low-precision parameters were rounded from, by name (a run starting
    /// from a float32 <c>model.init</c> learns from those, not from their rounding); null: the parameters' own values.
    /// </param>
    public FlatAdamW(IEnumerable<(string Name, Parameter Parameter)> parameters, AdamWOptions options, Communicator? shardAcross = null, ShardedParameters? tensorSharding = null,
        IReadOnlyDictionary<string, Tensor>? masters = null)
    {
        this.options = options;
        shards = shardAcross is { Size: > 1 } ? shardAcross : null;
        this.tensorSharding = tensorSharding is { Layout.Size: > 1 } ? tensorSharding : null;
        var all = parameters.Where(p => p.Parameter.requires_grad).ToList();
        if (all.Count == 0) throw new BioForgeException("no trainable parameters");
        if (all.Select(p => p.Parameter.dtype).Distinct().Count() > 1) throw new ArgumentException("all trainable parameters must share one dtype", nameof(parameters));
        HasMasterWeights = all[0].Parameter.dtype != ScalarType.Float32;
        if (masters is not null && !HasMasterWeights) throw new ArgumentException("float32 parameters are their own master weights", nameof(masters));
        foreach (bool decay in new[] { true, false })
            foreach (bool split in new[] { false, true })
            {
                var members = all.Where(p => (p.Parameter.dim() >= 2) == decay && (this.tensorSharding?.IsSharded(p.Name) ?? false) == split).ToList();
                if (members.Count > 0) groups.Add(Flatten(members, decay, split, masters));
            }
    }

    /// <summary>Moves each parameter's storage into one buffer and points its gradient into another.</summary>
    private Group Flatten(List<(string Name, Parameter Parameter)> members, bool decay, bool split, IReadOnlyDictionary<string, Tensor>? masters)
    {
        int count = shards?.Size ?? 1;
        long length = members.Sum(p => p.Parameter.numel());
        long padded = (length + count - 1) / count * count, shardLength = padded / count, start = (shards?.Rank ?? 0) * shardLength;
        var first = members[0].Parameter;
        var values = zeros(padded, first.dtype, first.device);
        var gradients = zeros(padded, first.dtype, first.device);
        using var wholeMaster = masters is not null ? zeros(padded, ScalarType.Float32, first.device) : null;
        var placed = new List<Member>();
        using (no_grad())
        {
            long offset = 0;
            foreach (var (name, p) in members)
            {
                // Every temporary belongs to the scope until the native calls that read it have returned. A temporary
                // passed straight into a call is unreachable for the GC during it, so its finalizer may free the
                // tensor under LibTorch: a server creating optimizers while other threads allocate crashed here
                // (segmentation fault in copy_, twice in 30-minute soaks).
                using var scope = NewDisposeScope();
                long n = p.numel();
                placed.Add(new Member(name, offset, p.shape));
                values.narrow(0, offset, n).copy_(p.detach().reshape(-1));
                if (wholeMaster is not null)
                {
                    var source = masters!.TryGetValue(name, out var m) ? m : throw new ArgumentException($"no master weight for {name}", nameof(masters));
                    if (!source.shape.SequenceEqual(p.shape)) throw new ArgumentException($"the master weight of {name} has another shape", nameof(masters));
                    wholeMaster.narrow(0, offset, n).copy_(source.reshape(-1));
                }
                p.set_(values.narrow(0, offset, n).view(p.shape));
                p.grad = gradients.narrow(0, offset, n).view(p.shape);
                offset += n;
            }
        }
        var masterGradients = HasMasterWeights ? zeros(padded, ScalarType.Float32, first.device) : gradients;
        Tensor master;
        if (HasMasterWeights)
        {
            using var slice = (wholeMaster ?? values).narrow(0, start, shardLength);
            master = slice.to(ScalarType.Float32, copy: true);
        }
        else master = shards is not null ? values.narrow(0, start, shardLength) : values;
        return new Group
        {
            Members = placed,
            Values = values,
            Gradients = gradients,
            MasterGradients = masterGradients,
            Length = length,
            Start = start,
            ShardLength = shardLength,
            Master = master,
            ShardGradients = shards is null ? masterGradients : zeros(shardLength, ScalarType.Float32, first.device),
            ExpAvg = zeros(shardLength, ScalarType.Float32, first.device),
            ExpAvgSq = zeros(shardLength, ScalarType.Float32, first.device),
            Decay = decay,
            TensorSharded = split,
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
            g.MasterGradients.PlusInPlace(g.Gradients);
            g.Gradients.zero_();
        }
    }

    /// <summary>
    /// Data parallelism, once per step after the last micro-batch: sums the float32 gradients across
    /// <paramref name="group"/> — all-reduced in buckets of at most <paramref name="bucketElements"/> values, or, with
    /// ZeRO-1, reduce-scattered so each rank receives the summed slice it updates.
    /// </summary>
    public void ReduceGradients(Communicator group, long bucketElements)
    {
        using var _ = no_grad();
        if (shards is not null)
        {
            foreach (var g in groups)
                using (var mine = shards.ReduceScatter(g.MasterGradients)) g.ShardGradients.copy_(mine);
            return;
        }
        if (group.Size == 1) return;
        foreach (var g in groups)
            for (long offset = 0; offset < g.MasterGradients.numel(); offset += bucketElements)
                using (var bucket = g.MasterGradients.narrow(0, offset, Math.Min(bucketElements, g.MasterGradients.numel() - offset)))
                    group.AllReduce(bucket);
    }

    /// <summary>
    /// Makes every rank's parameters and master weights equal to those of <paramref name="root"/>. In mixed precision
    /// the float32 masters travel (the parameters are their rounding); sharded, the whole is gathered first.
    /// </summary>
    public void Broadcast(Communicator group, int root = 0)
    {
        if (group.Size == 1) return;
        using var _ = no_grad();
        foreach (var g in groups)
        {
            if (!HasMasterWeights)
            {
                group.Broadcast(g.Values, root);
                continue;
            }
            using var whole = shards is not null ? shards.AllGather(g.Master) : g.Master.alias();
            group.Broadcast(whole, root);
            g.Values.copy_(whole);
            using var owned = whole.narrow(0, g.Start, g.ShardLength);
            g.Master.copy_(owned);
        }
    }

    /// <summary>
    /// Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/> (infinity: the norm alone);
    /// returns the norm before clipping. The squares of tensor-parallel shards are summed across their group, replicated parameters counted
    /// once; with ZeRO-1 each rank's slice is summed across the data-parallel group.
    /// </summary>
    public double ClipGradNorm(double maxNorm)
    {
        using var scope = NewDisposeScope();
        Tensor Squares(bool split) => groups.Where(g => g.TensorSharded == split)
            .Select(g => g.ShardGradients.Squared().sum().to(ScalarType.Float64).cpu())
            .Aggregate(zeros(1, ScalarType.Float64), (a, b) => a.Plus(b));
        var replicated = Squares(split: false);
        var sharded = Squares(split: true);
        tensorSharding?.Layout.TensorGroup.AllReduce(sharded);
        var squares = replicated.Plus(sharded);
        shards?.AllReduce(squares);
        double norm = Math.Sqrt(squares.item<double>());
        if (norm > maxNorm && norm > 0)
            foreach (var g in groups) g.ShardGradients.MulInPlace(maxNorm / (norm + 1e-6));
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
            g.ExpAvg.MulInPlace(options.Beta1).AddScaledInPlace(g.ShardGradients, 1 - options.Beta1);
            g.ExpAvgSq.MulInPlace(options.Beta2).AddProductInPlace(g.ShardGradients, g.ShardGradients, 1 - options.Beta2);
            var denominator = g.ExpAvgSq.sqrt().Div(Math.Sqrt(bias2)).AddInPlace(options.Epsilon);
            g.Master.AddQuotientInPlace(g.ExpAvg, denominator, -learningRate / bias1);
            if (shards is not null) g.Values.copy_(shards.AllGather(g.Master));
            else if (HasMasterWeights) g.Values.copy_(g.Master);
        }
    }

    /// <summary>
    /// A fresh optimizer over the parameters as they are now (set from outside, e.g. an optimization restarting from
    /// its prior): moments and step count zeroed, master weights taken from the parameters.
    /// </summary>
    public void Reset()
    {
        using var _ = no_grad();
        foreach (var g in groups)
        {
            g.ExpAvg.zero_();
            g.ExpAvgSq.zero_();
            if (HasMasterWeights)
                using (var owned = g.Values.narrow(0, g.Start, g.ShardLength)) g.Master.copy_(owned);
        }
        Step = 0;
    }

    /// <summary>Bytes of optimizer state this rank holds: moments and master weights (what ZeRO-1 shards).</summary>
    public long StateBytes => groups.Sum(g => (g.ExpAvg.numel() * 2 + (HasMasterWeights ? g.Master.numel() : 0)) * 4);

    /// <summary>
    /// The tensors a checkpoint must hold to resume exactly, per parameter (<c>NAME.exp_avg</c>, <c>NAME.exp_avg_sq</c>,
    /// and <c>NAME.master</c> in mixed precision), whole and on the host: independent of the data- and tensor-parallel
    /// sizes, so a checkpoint resumes on any number of ranks. With ZeRO-1 or tensor parallelism every rank must call
    /// this: it gathers, one parameter group at a time.
    /// </summary>
    /// <param name="keep">False on a rank that only takes part in the gathers (it writes nothing): each tensor is
    /// dropped as soon as it is gathered, so that rank's device never holds more than one group's worth — the state
    /// ZeRO-1 shards is never whole on every GPU at once.</param>
    public IReadOnlyList<KeyValuePair<string, Tensor>> State(bool keep = true)
    {
        var state = new List<KeyValuePair<string, Tensor>>();
        foreach (var g in groups)
            foreach (var (suffix, owned) in Moments(g))
                state.AddRange(Whole(g, owned, keep).Select(t => new KeyValuePair<string, Tensor>($"{t.Key}.{suffix}", t.Value)));
        return state;
    }

    /// <summary>
    /// Mixed precision: the float32 master weights by parameter name, whole and on the host (what the run has learnt; the
    /// parameters are their bf16 rounding). Empty in float32 training. A collective like <see cref="State"/>: every rank
    /// calls it, <paramref name="keep"/> as there.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> MasterWeights(bool keep = true) => HasMasterWeights ? [.. groups.SelectMany(g => Whole(g, g.Master, keep))] : [];

    /// <summary>
    /// Each member's part of a group's flat float32 buffer <paramref name="owned"/> (this rank's slice with ZeRO-1),
    /// gathered, unsharded and copied to the host (none when not <paramref name="keep"/>).
    /// </summary>
    private List<KeyValuePair<string, Tensor>> Whole(Group g, Tensor owned, bool keep)
    {
        var parts = new List<KeyValuePair<string, Tensor>>();
        using var gathered = shards?.AllGather(owned);
        var whole = gathered ?? owned;
        foreach (var m in g.Members)
        {
            using var part = whole.narrow(0, m.Offset, m.Count).view(m.Shape);
            // Unsharding gathers across the tensor-parallel group: every rank takes part, kept or not.
            using var unsharded = tensorSharding is not null && tensorSharding.IsSharded(m.Name) ? tensorSharding.Unshard(m.Name, part) : null;
            if (!keep) continue;
            var value = unsharded ?? part;
            // A copy either way: on the CPU a view would alias the optimizer's live buffer.
            parts.Add(new(m.Name, value.device_type == TorchSharp.DeviceType.CPU ? value.clone() : value.cpu()));
        }
        return parts;
    }

    private IEnumerable<(string Suffix, Tensor Owned)> Moments(Group g) =>
        new[] { ("exp_avg", g.ExpAvg), ("exp_avg_sq", g.ExpAvgSq) }.Concat(HasMasterWeights ? [("master", g.Master)] : []);

    /// <summary>
    /// Restores <see cref="State"/> and the step counter; the parameters take the master weights' values.
    /// <paramref name="read"/> gives a tensor by name (null when absent), read when needed and disposed here: a rank
    /// holds one at a time, not the whole state.
    /// </summary>
    public void LoadState(Func<string, Tensor?> read, long step, string where)
    {
        using var _ = no_grad();
        foreach (var g in groups)
        {
            foreach (var (suffix, target) in Moments(g))
            {
                using var flat = zeros(g.Length, ScalarType.Float32, target.device);
                foreach (var m in g.Members)
                {
                    string name = $"{m.Name}.{suffix}";
                    using var source = read(name)
                        ?? throw new BioForgeException($"{where}: optimizer state lacks '{name}' (was it written with another precision or for another model?)");
                    var shape = tensorSharding?.WholeShape(m.Name, m.Shape) ?? m.Shape;
                    if (!source.shape.SequenceEqual(shape))
                        throw new BioForgeException($"{where}: optimizer tensor '{name}' has shape [{string.Join(", ", source.shape)}], the model needs [{string.Join(", ", shape)}]");
                    using var part = tensorSharding?.Shard(m.Name, source) ?? source.alias();
                    using var slot = flat.narrow(0, m.Offset, m.Count);
                    using var flatPart = part.reshape(-1); // a view of source: left to the GC it would keep source's memory
                    slot.copy_(flatPart);
                }
                target.zero_();
                long end = Math.Min(g.Start + g.ShardLength, g.Length);
                if (end > g.Start)
                    using (var owned = flat.narrow(0, g.Start, end - g.Start))
                    using (var slot = target.narrow(0, 0, end - g.Start))
                        slot.copy_(owned);
                if (suffix == "master")
                    using (var values = g.Values.narrow(0, 0, g.Length)) values.copy_(flat);
            }
        }
        Step = step;
    }

    public void Dispose()
    {
        foreach (var g in groups) g.Dispose();
    }
}
