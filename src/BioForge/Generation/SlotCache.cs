using BioForge.Models.Llama;
using static TorchSharp.torch;

namespace BioForge.Generation;

/// <summary>
/// What the scheduler needs of a decoder network: its shape for the key/value slots, and one forward pass over rows at
/// positions of their own. A model family that serves generation adds one adapter (see <see cref="LlamaDecoder"/>).
/// </summary>
public interface IDecoderModel
{
    int Layers { get; }
    int KeyValueHeads { get; }
    int HeadDim { get; }
    /// <summary>Longest sequence the model takes (prompt and generated tokens).</summary>
    int MaxPositions { get; }
    int BosTokenId { get; }
    int EosTokenId { get; }
    int VocabularySize { get; }
    Device Device { get; }
    ScalarType DType { get; }

    /// <summary>Logits [B, T, vocab] (see <see cref="LlamaForCausalLM.Forward(Tensor, Tensor, Tensor, IKeyValueStore)"/>).</summary>
    Tensor Forward(Tensor inputIds, Tensor positions, Tensor allowed, IKeyValueStore cache);
}

/// <summary>A <see cref="LlamaForCausalLM"/> as a decoder for the scheduler.</summary>
public sealed class LlamaDecoder(LlamaForCausalLM model) : IDecoderModel
{
    private readonly Tensor anyParameter = model.parameters().First();

    public int Layers => model.Config.NumHiddenLayers;
    public int KeyValueHeads => model.Config.NumKeyValueHeads;
    public int HeadDim => model.Config.HeadDim;
    public int MaxPositions => model.Config.MaxPositionEmbeddings;
    public int BosTokenId => model.Config.BosTokenId;
    public int EosTokenId => model.Config.EosTokenId;
    public int VocabularySize => model.Config.VocabSize;
    public Device Device => anyParameter.device;
    public ScalarType DType => anyParameter.dtype;

    public Tensor Forward(Tensor inputIds, Tensor positions, Tensor allowed, IKeyValueStore cache) => model.Forward(inputIds, positions, allowed, cache);
}

/// <summary>
/// Keys and values in fixed slots, allocated once: per layer [slots × length, kv heads, head dim], a sequence owning
/// one slot of <c>length</c> positions from admission to its end. Before each forward pass <see cref="Bind"/> says which
/// slots the batch rows are and where their new tokens go; attention then reads each row's slot up to the longest
/// position in the batch (shorter rows are masked by the caller).
/// </summary>
public sealed class SlotCache : IKeyValueStore, IDisposable
{
    private readonly Tensor[] keys;
    private readonly Tensor[] values;
    private readonly int heads, headDim;
    private readonly Device device;
    private Tensor? rows, writeIndex;
    private long attended;

    public SlotCache(IDecoderModel model, int slots, int length)
    {
        if (slots < 1) throw new BioForgeException($"the key/value cache needs at least one slot (got {slots})");
        Slots = slots;
        Length = length;
        heads = model.KeyValueHeads;
        headDim = model.HeadDim;
        device = model.Device;
        keys = new Tensor[model.Layers];
        values = new Tensor[model.Layers];
        for (int i = 0; i < model.Layers; i++)
        {
            // Zeros, not empty memory: masked positions are multiplied by zero weights, and NaN · 0 would be NaN.
            keys[i] = zeros([(long)slots * length, heads, headDim], model.DType, model.Device);
            values[i] = zeros([(long)slots * length, heads, headDim], model.DType, model.Device);
        }
    }

    public int Slots { get; }

    /// <summary>Positions per slot.</summary>
    public int Length { get; }

    /// <summary>Bytes one slot takes for <paramref name="model"/> at <paramref name="length"/> positions.</summary>
    public static long BytesPerSlot(IDecoderModel model, int length) =>
        2L * model.Layers * length * model.KeyValueHeads * model.HeadDim * model.DType.ElementSize();

    /// <summary>The next forward pass: batch row b is slot <paramref name="slots"/>[b], its <paramref name="count"/> tokens go to
    /// positions <paramref name="starts"/>[b] onwards, and attention reads positions 0 … <paramref name="attend"/> − 1. The
    /// index tensors are made in the caller's dispose scope.</summary>
    public void Bind(IReadOnlyList<int> slots, IReadOnlyList<int> starts, int count, long attend)
    {
        var index = new long[slots.Count * count];
        for (int b = 0; b < slots.Count; b++)
            for (int t = 0; t < count; t++) index[b * count + t] = (long)slots[b] * Length + starts[b] + t;
        rows = tensor(slots.Select(s => (long)s).ToArray()).to(device);
        writeIndex = tensor(index).to(device);
        attended = attend;
    }

    public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        if (rows is null || writeIndex is null) throw new InvalidOperationException("SlotCache.Bind must precede the forward pass");
        return (Store(keys[layer], k), Store(values[layer], v));
    }

    private Tensor Store(Tensor cache, Tensor x)
    {
        cache.index_copy_(0, writeIndex!, x.transpose(1, 2).reshape(-1, heads, headDim));
        return cache.view(Slots, Length, heads, headDim).narrow(1, 0, attended).index_select(0, rows!).transpose(1, 2);
    }

    public void Dispose()
    {
        foreach (var t in keys) t.Dispose();
        foreach (var t in values) t.Dispose();
    }
}

internal static class ScalarTypeSize
{
    public static int ElementSize(this ScalarType type) => type switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Int16 => 2,
        _ => 1,
    };
}
