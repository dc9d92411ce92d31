using System.Numerics;
using BioForge.Runtime;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BioForge.Models;

/// <summary>Scaled dot-product attention as the decoder families use it, scores scaled by 1/√head_dim.</summary>
internal static class Attention
{
    /// <summary>
    /// LibTorch's kernel under a mask. Grouped-query attention (fewer key/value heads than query heads) folds the query
    /// heads of one key/value head into extra query rows of that head, so keys and values are read where they lie (a
    /// decode step's cache view) instead of being repeated: the queries and the mask are the small tensors. Query head h
    /// uses key/value head h / groups, as repeat_interleave would pair them.
    /// </summary>
    /// <param name="queries">[B, heads, T, head dim].</param>
    /// <param name="keys">[B, kv heads, K, head dim]; <paramref name="values"/> alike.</param>
    /// <param name="allowed">[B, 1, T, K] bool: which keys each query sees.</param>
    /// <returns>[B, heads, T, head dim].</returns>
    public static Tensor Masked(Tensor queries, Tensor keys, Tensor values, Tensor allowed)
    {
        long b = queries.shape[0], heads = queries.shape[1], t = queries.shape[2], headDim = queries.shape[3], kvHeads = keys.shape[1];
        long groups = heads / kvHeads;
        if (groups == 1) return F.scaled_dot_product_attention(queries, keys, values, allowed);
        var folded = queries.reshape(b, kvHeads, groups * t, headDim);
        var mask = allowed.unsqueeze(2).expand(allowed.shape[0], allowed.shape[1], groups, t, allowed.shape[3])
            .reshape(allowed.shape[0], allowed.shape[1], groups * t, allowed.shape[3]);
        return F.scaled_dot_product_attention(folded, keys, values, mask).reshape(b, heads, t, headDim);
    }

    /// <summary>Rows below which a ragged step stays on the calling thread (a hand-off costs more than a few rows).</summary>
    private const int ParallelItems = 8;

    /// <summary>
    /// One decoding step's attention over a slot cache, each row reading only its own positions — what paged attention's
    /// kernels do on a GPU. LibTorch's CPU attention takes one length for the whole batch, so rows at mixed positions
    /// (continuous batching) would all read and mask up to the longest. Float32 on the CPU; computed on LibTorch's
    /// intra-op thread count, each row and key/value head by one thread (the same sums in the same order for any batch).
    /// </summary>
    /// <param name="queries">[B, heads, 1, head dim] float32 on the CPU.</param>
    /// <param name="keys">[slots × slot length, kv heads, head dim], contiguous; <paramref name="values"/> alike.</param>
    /// <param name="slots">Row b's slot.</param>
    /// <param name="lengths">Positions 0 … lengths[b] − 1 of its slot are what row b sees (its own included).</param>
    /// <returns>[B, heads, 1, head dim].</returns>
    public static unsafe Tensor Ragged(Tensor queries, Tensor keys, Tensor values, IReadOnlyList<int> slots, IReadOnlyList<int> lengths, int slotLength)
    {
        int rows = (int)queries.shape[0], heads = (int)queries.shape[1], headDim = (int)queries.shape[3], kvHeads = (int)keys.shape[1];
        int groups = heads / kvHeads;
        // The kernel reads raw memory: a shape or index out of place would read past the cache, not throw.
        long slotCount = keys.shape[0] / slotLength;
        if (queries.shape[2] != 1 || slots.Count != rows || lengths.Count != rows)
            throw new ArgumentException($"ragged attention takes one query per row and a slot and length for each of {rows} rows");
        if (new[] { queries, keys, values }.Any(t => t.dtype != ScalarType.Float32 || t.device_type != TorchSharp.DeviceType.CPU))
            throw new ArgumentException("ragged attention computes float32 tensors on the CPU");
        if (groups * kvHeads != heads || keys.shape[2] != headDim || !keys.shape.SequenceEqual(values.shape) || slotCount * slotLength != keys.shape[0])
            throw new ArgumentException($"keys and values [{string.Join(", ", keys.shape)}] do not fit {heads} query heads of {headDim} in slots of {slotLength}");
        for (int b = 0; b < rows; b++)
            if (slots[b] < 0 || slots[b] >= slotCount || lengths[b] < 1 || lengths[b] > slotLength)
                throw new ArgumentException($"row {b}: slot {slots[b]} of {slotCount}, length {lengths[b]} of {slotLength}");
        var q = queries.contiguous();
        var output = empty_like(q);
        var k = keys.contiguous();
        var v = values.contiguous();
        float* qData = (float*)TensorMemory.Address(q), kData = (float*)TensorMemory.Address(k), vData = (float*)TensorMemory.Address(v), outData = (float*)TensorMemory.Address(output);
        int longest = lengths.Max();
        float scale = 1f / MathF.Sqrt(headDim);
        long positionStride = (long)kvHeads * headDim;
        void Item(int item)
        {
            int row = item / kvHeads, head = item % kvHeads, length = lengths[row];
            float* rowKeys = kData + (long)slots[row] * slotLength * positionStride + (long)head * headDim;
            float* rowValues = vData + (long)slots[row] * slotLength * positionStride + (long)head * headDim;
            Span<float> weights = longest <= 2048 ? stackalloc float[length] : new float[length];
            for (int g = 0; g < groups; g++)
            {
                long offset = ((long)row * heads + head * groups + g) * headDim;
                float* query = qData + offset, context = outData + offset;
                float max = float.NegativeInfinity;
                for (int p = 0; p < length; p++)
                {
                    weights[p] = Dot(query, rowKeys + p * positionStride, headDim) * scale;
                    max = MathF.Max(max, weights[p]);
                }
                float total = ExpInPlace(weights, max);
                new Span<float>(context, headDim).Clear();
                for (int p = 0; p < length; p++) AddScaled(context, rowValues + p * positionStride, weights[p], headDim);
                Scale(context, 1f / total, headDim);
            }
        }
        int items = rows * kvHeads, threads = get_num_threads();
        if (threads > 1 && items >= ParallelItems) Parallel.For(0, items, new ParallelOptions { MaxDegreeOfParallelism = threads }, Item);
        else for (int i = 0; i < items; i++) Item(i);
        // The addresses above are not references: keep the tensors they point into alive until the kernel is done.
        GC.KeepAlive(q);
        GC.KeepAlive(k);
        GC.KeepAlive(v);
        return output;
    }

    private static unsafe float Dot(float* a, float* b, int n)
    {
        int i = 0, width = Vector<float>.Count;
        var sum = Vector<float>.Zero;
        for (; i + width <= n; i += width) sum = Vector.FusedMultiplyAdd(Vector.Load(a + i), Vector.Load(b + i), sum);
        float total = Vector.Sum(sum);
        for (; i < n; i++) total += a[i] * b[i];
        return total;
    }

    /// <summary>exp(x − max) in place; returns the sum.</summary>
    private static float ExpInPlace(Span<float> x, float max)
    {
        int i = 0, width = Vector<float>.Count;
        var shift = new Vector<float>(max);
        var sum = Vector<float>.Zero;
        for (; i + width <= x.Length; i += width)
        {
            var e = Vector.Exp(new Vector<float>(x[i..]) - shift);
            e.CopyTo(x[i..]);
            sum += e;
        }
        float total = Vector.Sum(sum);
        for (; i < x.Length; i++) total += x[i] = MathF.Exp(x[i] - max);
        return total;
    }

    private static unsafe void AddScaled(float* into, float* x, float weight, int n)
    {
        int i = 0, width = Vector<float>.Count;
        var w = new Vector<float>(weight);
        for (; i + width <= n; i += width) Vector.Store(Vector.FusedMultiplyAdd(Vector.Load(x + i), w, Vector.Load(into + i)), into + i);
        for (; i < n; i++) into[i] += x[i] * weight;
    }

    private static unsafe void Scale(float* x, float factor, int n)
    {
        int i = 0, width = Vector<float>.Count;
        var f = new Vector<float>(factor);
        for (; i + width <= n; i += width) Vector.Store(Vector.Load(x + i) * f, x + i);
        for (; i < n; i++) x[i] *= factor;
    }
}
