using static TorchSharp.torch;

namespace BioForge.Distributed;

/// <summary>
/// How a model's layers are split across a tensor-parallel group (Megatron-Core's layer spec in miniature). Model
/// files build their projections through <see cref="Column"/> and <see cref="Row"/> and size their attention with
/// <see cref="Local"/>; with a group of one these are plain <c>nn.Linear</c> layers and whole counts, so a model reads
/// the same with and without parallelism.
/// </summary>
public sealed class ParallelLayout(Communicator tensorGroup)
{
    public static ParallelLayout Single { get; } = new(new SingleProcessCommunicator());

    public Communicator TensorGroup => tensorGroup;

    public int Size => tensorGroup.Size;

    /// <summary>A projection whose outputs are split across the group (query/key/value, MLP up and gate).</summary>
    public nn.Module<Tensor, Tensor> Column(int inFeatures, int outFeatures, bool hasBias) =>
        Size == 1 ? nn.Linear(inFeatures, outFeatures, hasBias) : new ColumnParallelLinear(inFeatures, outFeatures, hasBias, tensorGroup);

    /// <summary>A projection whose inputs are split and whose outputs are summed (attention output, MLP down).</summary>
    public nn.Module<Tensor, Tensor> Row(int inFeatures, int outFeatures, bool hasBias) =>
        Size == 1 ? nn.Linear(inFeatures, outFeatures, hasBias) : new RowParallelLinear(inFeatures, outFeatures, hasBias, tensorGroup);

    /// <summary>This rank's share of <paramref name="count"/> (heads, say), refusing counts the group cannot split.</summary>
    public int Local(int count, string what)
    {
        TensorParallelism.RequireDivisible(count, Size, what);
        return count / Size;
    }

    /// <summary>
    /// For each sharded parameter of <paramref name="model"/>: the dimension split across the group. Checkpoint loading
    /// narrows an unsharded tensor along it to this rank's part; saving gathers along it.
    /// </summary>
    public static Dictionary<string, int> ShardedDimensions(nn.Module model)
    {
        var dimensions = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (name, module) in model.named_modules())
        {
            string prefix = name.Length == 0 ? "" : name + ".";
            if (module is ColumnParallelLinear)
            {
                dimensions[prefix + "weight"] = 0;
                dimensions[prefix + "bias"] = 0;
            }
            else if (module is RowParallelLinear) dimensions[prefix + "weight"] = 1;
            else if (module is VocabParallelEmbedding) dimensions[prefix + "weight"] = 0;
        }
        return dimensions;
    }

    /// <summary>This rank's part of an unsharded tensor along <paramref name="dimension"/>.</summary>
    public Tensor Shard(Tensor full, int dimension)
    {
        long part = full.shape[dimension] / Size;
        return full.narrow(dimension, tensorGroup.Rank * part, part);
    }
}
