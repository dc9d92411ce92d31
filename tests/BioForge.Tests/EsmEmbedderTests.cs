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

    /// <summary>
    /// `embed`'s mean pooling and the one the server's /v1/embeddings and the affinity features use (batched by
    /// <see cref="Models.SequenceEncoder.MeanEmbeddings"/>) are written apart: they must give one vector per sequence.
    /// </summary>
    [Fact]
    public void EmbedAndTheServersMeanPoolingGiveTheSameVectors()
    {
        var cpu = TestData.Cpu;
        var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        var embedded = Embed(model, new EmbedOptions());
        using var encoder = Models.SequenceEncoder.ForEsm(model);
        var served = encoder.MeanEmbeddings([.. Records.Select(r => encoder.Encode(r.Sequence, stopCodon: false))], cpu.Device, maxBatch: 2);
        for (int i = 0; i < Records.Length; i++) AssertClose(embedded[i].Values, served[i]);
    }

    /// <summary>
    /// Per-rank per-residue CSVs merged as mpirun merges them: a record cut at its start keeps its positions, and two
    /// records of one id in a row stay two (they were joined into one of twice the rows, numbered from 1).
    /// </summary>
    [Fact]
    public void MergedPerResidueCsvsKeepPositionsAndRecords()
    {
        string directory = TestData.TempDirectory(), part = Path.Combine(directory, "e.rank0.csv"), merged = Path.Combine(directory, "e.csv");
        using (var writer = EmbeddingWriters.Create(part, Pooling.None, new Dictionary<string, string>()))
        {
            writer.Write(new Embedding(new FastaRecord("cut", "", "MKTAYIAK", 1), [1, 2, 3, 4, 5, 6], 3, 2) { Offset = 5, Residues = 3 });
            writer.Write(new Embedding(new FastaRecord("x", "", "MK", 3), [7, 8, 9, 10], 2, 2));
            writer.Write(new Embedding(new FastaRecord("x", "", "GS", 5), [11, 12, 13, 14], 2, 2));
            // --unknown-as-unk lets any printable character be a residue: a comma or quote is quoted, not a field more.
            writer.Write(new Embedding(new FastaRecord("q", "", ",\"", 7), [15, 16, 17, 18], 2, 2));
            writer.Complete();
        }
        EmbeddingReaders.Concatenate([part], merged, Pooling.None, new Dictionary<string, string>());
        Assert.Equal(File.ReadAllText(part), File.ReadAllText(merged));
        Assert.Equal(["id,position,residue,dim_0,dim_1", "cut,6,I,1,2", "cut,7,A,3,4", "cut,8,K,5,6", "x,1,M,7,8", "x,2,K,9,10", "x,1,G,11,12", "x,2,S,13,14", "q,1,\",\",15,16", "q,2,\"\"\"\",17,18"],
            File.ReadAllLines(merged));
        Assert.Equal([("cut", 3, "XXXXXIAK"), ("x", 2, "MK"), ("x", 2, "GS"), ("q", 2, ",\"")],
            EmbeddingReaders.Read(merged, Pooling.None).Select(e => (e.Record.Id, e.Rows, e.Record.Sequence)));
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
        var layer0 = Embed(model, new EmbedOptions { Pooling = Pooling.Cls, Layers = [0] });
        Assert.Equal(Records[2].Sequence.Length, none[2].Rows);
        var manualMean = Enumerable.Range(0, 64).Select(d => Enumerable.Range(0, none[2].Rows).Average(r => none[2].Values[r * 64 + d])).Select(v => (float)v).ToArray();
        AssertClose(manualMean, mean[2].Values);

        // Layer 0 at <cls> is the scaled token embedding of <cls>: 0.88 × E[cls] (no masks, token dropout on).
        using var scope = NewDisposeScope();
        var embedding = model.Model.named_parameters().First(p => p.name == "esm.embeddings.word_embeddings.weight").parameter;
        var expected = (embedding[0] * 0.88).data<float>().ToArray();
        AssertClose(expected, layer0[0].Values);
        Assert.Throws<BioForgeException>(() => Embed(model, new EmbedOptions { Layers = [3] }));
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

    /// <summary>
    /// 1,100 residues (1,102 tokens framed) with the tiny model's 1,026 positions: windows of 1,024 tokens from token 0 and
    /// token 78 of [&lt;cls&gt;, residues…, &lt;eos&gt;]. A residue read by one window has that window's vector, one read by both
    /// their mean weighted by <see cref="ResidueWindows.Weight"/>; mean pooling averages those; a record the model reads
    /// whole is embedded as without windows. Checked against the windows' forward passes by hand.
    /// </summary>
    [Fact]
    public void WindowsCoverALongSequenceAndAverageWhereTheyOverlap()
    {
        var cpu = TestData.Cpu;
        using var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        string body = string.Concat(Enumerable.Range(0, 1100).Select(i => "ACDEFGHIKLMNPQRSTVWY"[(i * 7 + i / 13) % 20]));
        FastaRecord[] records = [new("long", "", body, 1), Records[0]];
        var options = new EmbedOptions { Pooling = Pooling.None, BatchTokens = 2100, WindowTokens = 1500, Truncate = Truncation.Window };
        var windowed = new EsmEmbedder(model, options).Embed(records).ToList();
        Assert.Equal(["long", "a"], windowed.Select(e => e.Record.Id));
        Assert.Equal(1100, windowed[0].Rows);

        float[][] Hidden(int start)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var ids = tensor(model.Tokenizer.Encode(body).Select(t => (long)t).ToArray()[start..(start + 1024)], [1, 1024]);
            var states = model.Model.Forward(ids, ones_like(ids), new EsmForwardOptions()).LastHiddenState[0].contiguous().data<float>().ToArray();
            return [.. Enumerable.Range(0, 1024).Select(p => states[(p * 64)..((p + 1) * 64)])];
        }
        var (first, second) = (Hidden(0), Hidden(78));
        float[] Row(Embedding e, int r) => e.Values[(r * 64)..((r + 1) * 64)];
        AssertClose(first[1], Row(windowed[0], 0));         // residue 1: token 1 of the first window only
        AssertClose(first[77], Row(windowed[0], 76));       // the last residue before the second window starts
        AssertClose(second[1022], Row(windowed[0], 1099));  // the last residue: the second window's token 1,022 (its <eos> at 1,023)
        double a = ResidueWindows.Weight(501, 1024), b = ResidueWindows.Weight(423, 1024);
        AssertClose([.. first[501].Zip(second[423], (x, y) => (float)((a * x + b * y) / (a + b)))], Row(windowed[0], 500));
        AssertClose(Embed(model, new EmbedOptions { Pooling = Pooling.None })[0].Values, windowed[1].Values);

        var mean = new EsmEmbedder(model, options with { Pooling = Pooling.Mean }).Embed(records).ToList();
        Assert.Equal(1, mean[0].Rows);
        AssertClose([.. Enumerable.Range(0, 64).Select(d => (float)Enumerable.Range(0, 1100).Average(r => windowed[0].Values[r * 64 + d]))], mean[0].Values);
        AssertClose(Embed(model, new EmbedOptions())[0].Values, mean[1].Values);
        Assert.Contains("a <cls> vector per window", Assert.Throws<BioForgeException>(() =>
            new EsmEmbedder(model, new EmbedOptions { Truncate = Truncation.Window, Pooling = Pooling.Cls }).Embed(records).ToList()).Message);
    }

    private static void AssertClose(float[] expected, float[] actual, double tolerance = 1e-5)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst <= tolerance, $"max |difference| {worst:E2}");
    }
}
