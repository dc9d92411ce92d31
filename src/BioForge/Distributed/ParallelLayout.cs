using static TorchSharp.torch;

namespace BioForge.Distributed;

/// <summary>
/// How a model's layers are split across a tensor-parallel group (Megatron-Core's layer spec in miniature). Model
/// files build their projections through <see cref="Column"/> and <see cref="Row"/>, their token table through
/// <see cref="Embedding"/>, and size their attention with <see cref="Local"/>; with a group of one these are plain
/// <c>nn.Linear</c>/<c>nn.Embedding</c> layers and whole counts, so a model reads the same with and without parallelism.
/// </summary>
/// <param name="splitVocabulary">Also split the token embedding and the output projection by vocabulary rows (worth
/// it for vocabularies of tens of thousands; the vocabulary size must then divide by the group size).</param>
public sealed class ParallelLayout(Communicator tensorGroup, bool splitVocabulary = false)
{
    public static ParallelLayout Single { get; } = new(new SingleProcessCommunicator());

    public Communicator TensorGroup => tensorGroup;

    public int Size => tensorGroup.Size;

    /// <summary>True when logits come out as this rank's slice of the vocabulary (the loss must be vocabulary-parallel).</summary>
    public bool SplitsVocabulary => splitVocabulary && Size > 1;

    /// <summary>A projection whose outputs are split across the group (query/key/value, MLP up and gate).</summary>
    /// <param name="entered">The caller passes the input through <see cref="EnterColumns"/> once for all the projections
    /// that read it (query, key and value; gate and up): one all-reduce of its gradient in the backward pass instead of
    /// one per projection, as Megatron-Core's fused QKV and gate-up layers have.</param>
    public nn.Module<Tensor, Tensor> Column(int inFeatures, int outFeatures, bool hasBias, bool entered = false) =>
        Size == 1 ? nn.Linear(inFeatures, outFeatures, hasBias) : new ColumnParallelLinear(inFeatures, outFeatures, hasBias, tensorGroup, copiesInput: !entered);

    /// <summary>
    /// Megatron's "f" for an input several column-parallel projections read (made with <c>entered: true</c>): the
    /// identity forward, its gradient summed across the group backward. The identity with a group of one.
    /// </summary>
    public Tensor EnterColumns(Tensor input) => Size == 1 ? input : TensorParallelRegion.Copy(input, tensorGroup);

    /// <summary>A projection whose inputs are split and whose outputs are summed (attention output, MLP down).</summary>
    public nn.Module<Tensor, Tensor> Row(int inFeatures, int outFeatures, bool hasBias) =>
        Size == 1 ? nn.Linear(inFeatures, outFeatures, hasBias) : new RowParallelLinear(inFeatures, outFeatures, hasBias, tensorGroup);

    /// <summary>The token table: split by vocabulary rows when <see cref="SplitsVocabulary"/>, whole otherwise.</summary>
    public nn.Module<Tensor, Tensor> Embedding(int vocabularySize, int hidden) =>
        SplitsVocabulary ? new VocabParallelEmbedding(vocabularySize, hidden, tensorGroup) : nn.Embedding(vocabularySize, hidden);

    /// <summary>The output projection onto the vocabulary (untied heads): column-parallel when the vocabulary is split.</summary>
    public nn.Module<Tensor, Tensor> VocabularyProjection(int hidden, int vocabularySize) =>
        SplitsVocabulary ? new ColumnParallelLinear(hidden, vocabularySize, hasBias: false, tensorGroup) : nn.Linear(hidden, vocabularySize, hasBias: false);

    /// <summary>
    /// Hidden states about to be multiplied by this rank's vocabulary rows of a tied embedding: Megatron's "f", so the
    /// gradient reaching the hidden states sums every rank's share. The identity when the vocabulary is whole.
    /// </summary>
    public Tensor EnterVocabularyShards(Tensor hidden) => SplitsVocabulary ? TensorParallelRegion.Copy(hidden, tensorGroup) : hidden;

    /// <summary>This rank's share of <paramref name="count"/> (heads, say), refusing counts the group cannot split.</summary>
    public int Local(int count, string what)
    {
        TensorParallelism.RequireDivisible(count, Size, what);
        return count / Size;
    }

    /// <summary>This rank's part of an unsharded tensor along <paramref name="dimension"/>.</summary>
    public Tensor Shard(Tensor full, int dimension)
    {
        long part = full.shape[dimension] / Size;
        return full.narrow(dimension, tensorGroup.Rank * part, part);
    }

    /// <summary>The unsharded tensor from every rank's part along <paramref name="dimension"/> (a collective).</summary>
    public Tensor Unshard(Tensor part, int dimension)
    {
        if (dimension == 0) return tensorGroup.AllGather(part.contiguous());
        using var moved = part.transpose(0, dimension).contiguous();
        using var gathered = tensorGroup.AllGather(moved);
        return gathered.transpose(0, dimension).contiguous();
    }
}

/// <summary>
/// Which parameters of one model are split across its tensor-parallel group, and along which dimension: checkpoint
/// loading narrows an unsharded tensor to this rank's part, saving gathers the parts, random initialisation draws the
/// whole tensor and keeps this rank's part (so a TP run starts from the weights a single process would).
/// </summary>
public sealed class ShardedParameters
{
    private readonly ParallelLayout layout;
    private readonly Dictionary<string, int> dimensions;

    private ShardedParameters(ParallelLayout layout, Dictionary<string, int> dimensions)
    {
        this.layout = layout;
        this.dimensions = dimensions;
    }

    public static ShardedParameters Of(nn.Module model, ParallelLayout? layout)
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
        return new ShardedParameters(layout ?? ParallelLayout.Single, dimensions);
    }

    public ParallelLayout Layout => layout;

    public bool IsSharded(string name) => dimensions.ContainsKey(name);

    /// <summary>This rank's part of the unsharded tensor stored under <paramref name="name"/> (the tensor itself if whole).</summary>
    public Tensor Shard(string name, Tensor whole) => dimensions.TryGetValue(name, out int d) ? layout.Shard(whole, d) : whole.alias();

    /// <summary>The unsharded tensor; a collective over the group for split parameters (call for every name, in the same order, on every rank).</summary>
    public Tensor Unshard(string name, Tensor part) => dimensions.TryGetValue(name, out int d) ? layout.Unshard(part, d) : part.alias();

    /// <summary>The shape of the unsharded tensor whose part has <paramref name="shape"/>.</summary>
    public long[] WholeShape(string name, long[] shape)
    {
        var whole = (long[])shape.Clone();
        if (dimensions.TryGetValue(name, out int d)) whole[d] *= layout.Size;
        return whole;
    }
}
