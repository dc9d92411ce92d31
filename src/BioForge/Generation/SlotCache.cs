using BioForge.IO;
using BioForge.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.Generation;

/// <summary>
/// Keys and values in fixed slots, allocated once: per layer [slots × length, kv heads, head dim], a sequence owning
/// one slot of <c>length</c> positions from admission to its end. Before each forward pass <see cref="Bind"/> says which
/// slots the batch rows are and where their new tokens go. A decoding step (one token per row) in float32 on the CPU
/// attends with a kernel that reads each row's own positions (<see cref="Attention.Ragged"/>); otherwise LibTorch's
/// kernel reads each row's slot up to the longest position in the batch (shorter rows masked by the caller), in place
/// when the rows are slots 0 … B − 1 in order (the scheduler keeps its running sequences there, <see cref="Move"/>), or
/// from a copy of the rows' slots, at every layer of the pass.
/// </summary>
public sealed class SlotCache : IKeyValueStore, IDisposable
{
    private readonly Tensor[] keys;
    private readonly Tensor[] values;
    private readonly int heads, headDim;
    private readonly Device device;
    private Tensor? rows, writeIndex;
    private long attended, leadingRows;
    private int[] rowSlots = [], rowLengths = [];
    private bool ragged;

    public SlotCache(DecoderNetwork model, int slots, int length)
    {
        if (slots < 1) throw new BioForgeException($"the key/value cache needs at least one slot (got {slots})");
        Slots = slots;
        Length = length;
        heads = model.KeyValueHeads;
        headDim = model.HeadDim;
        device = model.Device;
        keys = new Tensor[model.Layers];
        values = new Tensor[model.Layers];
        try
        {
            for (int i = 0; i < model.Layers; i++)
            {
                // Zeros, not empty memory: masked positions are multiplied by zero weights, and NaN · 0 would be NaN.
                keys[i] = zeros([(long)slots * length, heads, headDim], model.DType, model.Device);
                values[i] = zeros([(long)slots * length, heads, headDim], model.DType, model.Device);
            }
        }
        catch
        {
            Dispose(); // out of memory part-way: the layers already allocated go back
            throw;
        }
    }

    public int Slots { get; }

    /// <summary>Positions per slot.</summary>
    public int Length { get; }

    /// <summary>Bytes one slot takes for <paramref name="model"/> at <paramref name="length"/> positions.</summary>
    public static long BytesPerSlot(DecoderNetwork model, int length) =>
        2L * model.Layers * length * model.KeyValueHeads * model.HeadDim * SafetensorsDTypes.FromTorch(model.DType).ByteSize();

    /// <summary>The next forward pass: batch row b is slot <paramref name="slots"/>[b], its <paramref name="count"/> tokens go to
    /// positions <paramref name="starts"/>[b] onwards, and attention reads positions 0 … <paramref name="attend"/> − 1. The
    /// index tensors are made in the caller's dispose scope.</summary>
    public void Bind(IReadOnlyList<int> slots, IReadOnlyList<int> starts, int count, long attend)
    {
        // The ragged kernel reads each row's positions through raw offsets: a position past its slot would read (and the
        // write index would overwrite) another sequence's keys, so the caller's arithmetic is checked here, once a step.
        if (slots.Count != starts.Count || count < 1 || attend > Length)
            throw new InvalidOperationException($"SlotCache.Bind: {slots.Count} slots, {starts.Count} starts, {count} tokens, attending {attend} of {Length} positions");
        for (int b = 0; b < slots.Count; b++)
            if (slots[b] < 0 || slots[b] >= Slots || starts[b] < 0 || starts[b] + count > attend)
                throw new InvalidOperationException($"SlotCache.Bind: row {b} is slot {slots[b]} of {Slots}, positions {starts[b]}–{starts[b] + count - 1}, attending {attend}");
        var index = new long[slots.Count * count];
        for (int b = 0; b < slots.Count; b++)
            for (int t = 0; t < count; t++) index[b * count + t] = (long)slots[b] * Length + starts[b] + t;
        bool leading = true;
        for (int b = 0; b < slots.Count && leading; b++) leading = slots[b] == b;
        leadingRows = leading ? slots.Count : 0;
        rows = leading ? null : tensor(slots.Select(s => (long)s).ToArray()).to(device);
        writeIndex = tensor(index).to(device);
        attended = attend;
        rowSlots = [.. slots];
        rowLengths = [.. starts.Select(start => start + count)];
        ragged = count == 1 && device.type == DeviceType.CPU && keys[0].dtype == ScalarType.Float32 && !is_grad_enabled();
    }

    /// <summary>Ends the pass <see cref="Bind"/> began: its index tensors die with the caller's scope, so none is kept.</summary>
    public void Unbind()
    {
        writeIndex = null;
        rows = null;
    }

    /// <summary>Copies the first <paramref name="positions"/> keys and values of slot <paramref name="from"/> into slot
    /// <paramref name="to"/> (a sequence changing slots).</summary>
    public void Move(int from, int to, int positions)
    {
        if (from == to || positions == 0) return;
        using var scope = NewDisposeScope();
        foreach (var cache in keys.Concat(values))
        {
            var slots = cache.view(Slots, Length, heads, headDim);
            slots[to].narrow(0, 0, positions).copy_(slots[from].narrow(0, 0, positions));
        }
    }

    public Tensor Attend(int layer, Tensor queries, Tensor k, Tensor v, Tensor allowed)
    {
        if (writeIndex is null) throw new InvalidOperationException("SlotCache.Bind must precede the forward pass");
        Store(keys[layer], k);
        Store(values[layer], v);
        if (ragged) return Attention.Ragged(queries, keys[layer], values[layer], rowSlots, rowLengths, Length);
        return Attention.Masked(queries, Attended(keys[layer]), Attended(values[layer]), allowed);
    }

    private void Store(Tensor cache, Tensor x) => cache.index_copy_(0, writeIndex!, x.transpose(1, 2).reshape(-1, heads, headDim));

    /// <summary>The rows' slots up to the longest position: [B, kv heads, attended, head dim].</summary>
    private Tensor Attended(Tensor cache)
    {
        var attendedSlots = cache.view(Slots, Length, heads, headDim).narrow(1, 0, attended);
        return (rows is null ? attendedSlots.narrow(0, 0, leadingRows) : attendedSlots.index_select(0, rows)).transpose(1, 2);
    }

    public void Dispose()
    {
        foreach (var t in keys) t?.Dispose();
        foreach (var t in values) t?.Dispose();
    }
}
