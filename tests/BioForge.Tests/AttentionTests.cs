using BioForge.Models;
using static TorchSharp.torch;

namespace BioForge.Tests;

/// <summary>The CPU decode kernel that reads each row's own positions equals LibTorch's attention under the mask it replaces.</summary>
public sealed class AttentionTests
{
    [Theory]
    [InlineData(6, 3, 32, 40)] // grouped-query (Llama): two query heads per key/value head
    [InlineData(4, 4, 20, 40)] // multi-head (GPT-2), a head size that is no multiple of the vector width
    [InlineData(2, 1, 8, 2100)] // one key/value head, rows longer than the kernel keeps on the stack
    public void RaggedDecodeAttentionEqualsMaskedAttention(int heads, int kvHeads, int headDim, int slotLength)
    {
        _ = TestData.Cpu;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int slotCount = 7;
        int[] slots = [3, 0, 6, 2, 5];
        int[] lengths = [1, slotLength / 2 - 3, slotLength, 9, slotLength - 7];
        // A generator of its own: LibTorch's global one is seeded by training tests running beside this one.
        using var generator = new Generator(11);
        var queries = randn([slots.Length, heads, 1, headDim], generator: generator);
        var keys = randn([(long)slotCount * slotLength, kvHeads, headDim], generator: generator);
        var values = randn([(long)slotCount * slotLength, kvHeads, headDim], generator: generator);

        var ragged = Attention.Ragged(queries, keys, values, slots, lengths, slotLength);

        // The same through LibTorch: each row's slot up to the longest length, the positions past its own masked.
        var rows = tensor(slots.Select(s => (long)s).ToArray());
        var keyRows = keys.view(slotCount, slotLength, kvHeads, headDim).index_select(0, rows).transpose(1, 2);
        var valueRows = values.view(slotCount, slotLength, kvHeads, headDim).index_select(0, rows).transpose(1, 2);
        var allowed = arange(slotLength).view(1, 1, 1, slotLength).lt(tensor(lengths.Select(l => (long)l).ToArray()).view(-1, 1, 1, 1));
        var masked = Attention.Masked(queries, keyRows, valueRows, allowed);

        Assert.Equal(masked.shape, ragged.shape);
        double difference = (ragged - masked).abs().max().item<float>();
        Assert.True(difference < 2e-6, $"largest difference {difference:E2}");
        // A row of one position returns its value exactly: softmax of one score is 1.
        Assert.True(ragged[0, 0, 0].allclose(values[(long)slots[0] * slotLength, 0], rtol: 0, atol: 1e-6));
    }
}
