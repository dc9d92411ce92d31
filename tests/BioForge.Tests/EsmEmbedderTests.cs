using BioForge.IO;
using BioForge.Models.Esm;
using BioForge.Proteins;
using static TorchSharp.torch;

namespace BioForge.Tests;

public sealed class EsmEmbedderTests
{
    private static readonly FastaRecord[] Records =
    [
        new("a", "", "MKTAYIAKQRQISFVKSHFSRQ", 1),
        new("b", "", "GSHMLEDPV", 3),
        new("c", "", "MALWMRLLPLLALLALWGPDPAAAFVNQHLCGSHLVEALYLVCGERGFFYTPKT", 5),
        new("d", "", "MK", 7),
    ];

    private static List<Embedding> Embed(EsmCheckpoint model, EmbedOptions options) => new EsmEmbedder(model, options).Embed(Records).ToList();

    [Fact]
    public void BatchingAndPaddingDoNotChangeEmbeddings()
    {
        var cpu = TestData.Cpu;
        using var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        var alone = Embed(model, new EmbedOptions { BatchTokens = 1 });          // one sequence per batch
        var together = Embed(model, new EmbedOptions { BatchTokens = 1 << 20 }); // all in one padded batch
        var windows = Embed(model, new EmbedOptions { BatchTokens = 64, WindowTokens = 10 });
        Assert.Equal(Records.Select(r => r.Id), together.Select(e => e.Record.Id)); // input order kept
        for (int i = 0; i < Records.Length; i++)
        {
            AssertClose(alone[i].Values, together[i].Values);
            AssertClose(alone[i].Values, windows[i].Values);
        }
    }

    [Fact]
    public void FusedAttentionEqualsExplicitAttention()
    {
        var cpu = TestData.Cpu;
        using var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        var fused = Embed(model, new EmbedOptions { Kernel = AttentionKernel.Fused, Pooling = Pooling.None });
        var plain = Embed(model, new EmbedOptions { Kernel = AttentionKernel.Explicit, Pooling = Pooling.None });
        for (int i = 0; i < Records.Length; i++) AssertClose(plain[i].Values, fused[i].Values);
    }

    [Fact]
    public void PoolingAndLayersSelectTheDocumentedVectors()
    {
        var cpu = TestData.Cpu;
        using var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        var none = Embed(model, new EmbedOptions { Pooling = Pooling.None });
        var mean = Embed(model, new EmbedOptions { Pooling = Pooling.Mean });
        var layer0 = Embed(model, new EmbedOptions { Pooling = Pooling.Cls, Layer = 0 });
        Assert.Equal(Records[2].Sequence.Length, none[2].Rows);
        var manualMean = Enumerable.Range(0, 64).Select(d => Enumerable.Range(0, none[2].Rows).Average(r => none[2].Values[r * 64 + d])).Select(v => (float)v).ToArray();
        AssertClose(manualMean, mean[2].Values);

        // Layer 0 at <cls> is the scaled token embedding of <cls>: 0.88 × E[cls] (no masks, token dropout on).
        using var scope = NewDisposeScope();
        var embedding = model.Model.named_parameters().First(p => p.name == "esm.embeddings.word_embeddings.weight").parameter;
        var expected = (embedding[0] * 0.88).data<float>().ToArray();
        AssertClose(expected, layer0[0].Values);
        Assert.Throws<BioForgeException>(() => Embed(model, new EmbedOptions { Layer = 3 }));
    }

    [Fact]
    public void OverLongSequencesAreRefused()
    {
        var cpu = TestData.Cpu;
        using var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        var longRecord = new FastaRecord("long", "", new string('A', 1025), 9);
        var e = Assert.Throws<BioForgeException>(() => new EsmEmbedder(model, new EmbedOptions()).Embed([longRecord]).ToList());
        Assert.Contains("line 9: record 'long' has 1025 residues; this model takes at most 1024", e.Message);
    }

    private static void AssertClose(float[] expected, float[] actual, double tolerance = 1e-5)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst <= tolerance, $"max |difference| {worst:E2}");
    }
}
