using BioForge.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BioForge.Distributed;

/// <summary>
/// Megatron-LM's conjugate operators (Shoeybi et al. 2019) for a tensor-parallel group: <see cref="Copy"/> ("f") is
/// the identity forward and sums gradients across the group backward; <see cref="Reduce"/> ("g") sums across the
/// group forward and passes gradients through backward. A column-parallel layer enters through f, a row-parallel layer
/// leaves through g, so the pair (e.g. an MLP) costs one all-reduce forward and one backward.
/// </summary>
internal static class TensorParallelRegion
{
    public static Tensor Copy(Tensor input, Communicator group) =>
        group.Size == 1 || !is_grad_enabled() || !input.requires_grad ? input : CopyFunction.apply(input, group);

    public static Tensor Reduce(Tensor input, Communicator group)
    {
        if (group.Size == 1) return input;
        if (!is_grad_enabled() || !input.requires_grad)
        {
            var sum = input.clone();
            group.AllReduce(sum);
            return sum;
        }
        return ReduceFunction.apply(input, group);
    }

    private sealed class CopyFunction : autograd.SingleTensorFunction<CopyFunction>
    {
        public override string Name => "TensorParallelCopy";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            ctx.save_data("group", vars[1]);
            BackwardPass.Attach(ctx);
            return ((Tensor)vars[0]).view_as((Tensor)vars[0]);
        }

        // An NCCL or MPI failure here is carried to the caller of backward() (see BackwardPass), not thrown through LibTorch.
        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput) =>
            BackwardPass.Run(ctx, Name, gradOutput, results: 2, () =>
            {
                var gradient = gradOutput.clone();
                ((Communicator)ctx.get_data("group")).AllReduce(gradient);
                return [gradient, null!];
            });
    }

    private sealed class ReduceFunction : autograd.SingleTensorFunction<ReduceFunction>
    {
        public override string Name => "TensorParallelReduce";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var sum = ((Tensor)vars[0]).clone();
            ((Communicator)vars[1]).AllReduce(sum);
            BackwardPass.Attach(ctx);
            return sum;
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput) =>
            BackwardPass.Run(ctx, Name, gradOutput, results: 2, () => [gradOutput, null!]);
    }
}

/// <summary>
/// y = x Aᵀ with A split by output rows across the group: each rank holds [out / N, in] and produces its slice of the
/// outputs (not gathered: the next layer is row-parallel, or attention works on the rank's heads).
/// </summary>
public sealed class ColumnParallelLinear : nn.Module<Tensor, Tensor>
{
    private readonly Communicator group;
    private readonly bool copiesInput;
    private readonly Parameter weight;
    private readonly Parameter? bias;

    /// <param name="copiesInput">False when the caller has passed the input through Megatron's "f" already
    /// (<see cref="ParallelLayout.EnterColumns"/>), once for several projections of it.</param>
    public ColumnParallelLinear(int inFeatures, int outFeatures, bool hasBias, Communicator group, bool copiesInput = true) : base(nameof(ColumnParallelLinear))
    {
        TensorParallelism.RequireDivisible(outFeatures, group.Size, "output features");
        this.group = group;
        this.copiesInput = copiesInput;
        weight = new Parameter(zeros(outFeatures / group.Size, inFeatures));
        if (hasBias) bias = new Parameter(zeros(outFeatures / group.Size));
        RegisterComponents();
    }

    public override Tensor forward(Tensor input) => F.linear(copiesInput ? TensorParallelRegion.Copy(input, group) : input, weight, bias);

    /// <summary>Takes this rank's rows of an unsharded weight [out, in] (and bias [out]).</summary>
    public void LoadShard(Tensor fullWeight, Tensor? fullBias)
    {
        using var _ = no_grad();
        long rows = weight.shape[0];
        weight.copy_(fullWeight.narrow(0, group.Rank * rows, rows));
        if (bias is not null && fullBias is not null) bias.copy_(fullBias.narrow(0, group.Rank * rows, rows));
    }

    /// <summary>The unsharded weight (a collective: every rank of the group must call it).</summary>
    public Tensor FullWeight() => group.AllGather(weight.detach());

    public Tensor WeightShard => weight;
}

/// <summary>
/// y = x Aᵀ + b with A split by input columns: each rank holds [out, in / N], multiplies its slice of the inputs, and
/// the partial products are summed across the group; the bias is added once, after the sum.
/// </summary>
public sealed class RowParallelLinear : nn.Module<Tensor, Tensor>
{
    private readonly Communicator group;
    private readonly Parameter weight;
    private readonly Parameter? bias;

    public RowParallelLinear(int inFeatures, int outFeatures, bool hasBias, Communicator group) : base(nameof(RowParallelLinear))
    {
        TensorParallelism.RequireDivisible(inFeatures, group.Size, "input features");
        this.group = group;
        weight = new Parameter(zeros(outFeatures, inFeatures / group.Size));
        if (hasBias) bias = new Parameter(zeros(outFeatures));
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        var partial = TensorParallelRegion.Reduce(F.linear(input, weight), group);
        return bias is null ? partial : partial.Plus(bias);
    }

    /// <summary>Takes this rank's columns of an unsharded weight [out, in]; the bias is whole on every rank.</summary>
    public void LoadShard(Tensor fullWeight, Tensor? fullBias)
    {
        using var _ = no_grad();
        long columns = weight.shape[1];
        weight.copy_(fullWeight.narrow(1, group.Rank * columns, columns));
        if (bias is not null && fullBias is not null) bias.copy_(fullBias);
    }

    /// <summary>The unsharded weight (a collective: every rank of the group must call it).</summary>
    public Tensor FullWeight()
    {
        using var transposed = weight.detach().t().contiguous();
        using var gathered = group.AllGather(transposed);
        return gathered.t().contiguous();
    }

    public Tensor WeightShard => weight;
}

/// <summary>
/// An embedding table split by vocabulary rows: each rank looks up the ids in its range, zeros the others, and the
/// partial embeddings are summed across the group.
/// </summary>
public sealed class VocabParallelEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly Communicator group;
    private readonly Parameter weight;
    private readonly long first;

    public VocabParallelEmbedding(int vocabularySize, int hidden, Communicator group) : base(nameof(VocabParallelEmbedding))
    {
        TensorParallelism.RequireDivisible(vocabularySize, group.Size, "vocabulary size");
        this.group = group;
        long rows = vocabularySize / group.Size;
        first = group.Rank * rows;
        weight = new Parameter(zeros(rows, hidden));
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids)
    {
        var outside = ids.Lt(first).logical_or(ids.Ge(first + weight.shape[0]));
        var local = ids.Sub(first).MaskedFill(outside, 0);
        var rows = weight.index_select(0, local.reshape(-1)).reshape([.. ids.shape, weight.shape[1]]);
        var partial = rows * outside.logical_not().unsqueeze(-1).to(weight.dtype);
        return TensorParallelRegion.Reduce(partial, group);
    }

    public void LoadShard(Tensor fullWeight)
    {
        using var _ = no_grad();
        weight.copy_(fullWeight.narrow(0, first, weight.shape[0]));
    }

    public Tensor WeightShard => weight;
}

public static class TensorParallelism
{
    /// <summary>
    /// Cross-entropy summed over the targets when the logits' vocabulary dimension is split across the group (each
    /// rank holds [.., V / N]): the global max, the sum of exponentials and the target's logit are assembled with
    /// all-reduces, so no rank ever holds the whole [tokens, V] matrix. Targets equal to <paramref name="ignoreIndex"/>
    /// count zero. Returns the same scalar on every rank; gradients reach each rank's slice of the logits.
    /// </summary>
    public static Tensor VocabParallelCrossEntropySum(Tensor localLogits, Tensor targets, Communicator group, long ignoreIndex = -100)
    {
        long width = localLogits.shape[^1], first = group.Rank * width;
        var logits = localLogits.reshape(-1, width).to(ScalarType.Float32);
        var flatTargets = targets.reshape(-1);
        var max = logits.detach().amax([1]);
        group.AllReduce(max, ReduceOp.Max);
        var shifted = logits - max.unsqueeze(1);
        var sumExp = TensorParallelRegion.Reduce(shifted.exp().sum(1), group);
        var mine = flatTargets.Ge(first).logical_and(flatTargets.Lt(first + width));
        var index = flatTargets.Sub(first).MaskedFill(mine.logical_not(), 0).unsqueeze(1);
        var targetLogit = TensorParallelRegion.Reduce(shifted.gather(1, index).squeeze(1) * mine.to(ScalarType.Float32), group);
        var kept = flatTargets.Ne(ignoreIndex).to(ScalarType.Float32);
        return ((sumExp.log() - targetLogit) * kept).sum();
    }

    /// <summary>Refuses, before any work, a size the group cannot split evenly — with the numbers in the message.</summary>
    public static void RequireDivisible(long size, int parts, string what)
    {
        if (parts < 1 || size % parts != 0)
            throw new BioForgeException($"tensor parallelism: {what} ({size}) is not divisible by the tensor-parallel size ({parts})");
    }
}
