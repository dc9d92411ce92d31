using System.Text.Json.Nodes;
using BioForge.Models.Esm;
using BioForge.Models.Llama;
using static TorchSharp.torch;

namespace BioForge.Tests;

public sealed class EsmCheckpointTests
{
    /// <summary>
    /// The shipped models' configs say what a save writes today, float fields with their point: they were written
    /// before that rule, with <c>"rope_theta": 10000</c> and <c>"attention_dropout": 0</c>, which transformers 5's strict
    /// configs refuse for a float.
    /// </summary>
    [Theory]
    [InlineData("esm2-small")]
    [InlineData("smiles-llama-small")]
    [InlineData("protein-llama-small")]
    public void AShippedModelsConfigIsWhatASaveWrites(string model)
    {
        string path = Path.Combine(Repository.Root, "models", model, "config.json");
        var file = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var written = model.StartsWith("esm", StringComparison.Ordinal) ? EsmConfig.FromJson(path).ToJson() : LlamaConfig.FromJson(path).ToJson();
        foreach (var (key, value) in written.Where(kv => kv.Key != "dtype"))
            Assert.True(value?.ToJsonString() == file[key]?.ToJsonString(), $"{path}: {key} is {file[key]?.ToJsonString()}; a save writes {value?.ToJsonString()}");
    }

    [Theory]
    [InlineData(5_000_000_000L)]
    [InlineData(100_000L)]
    public void SaveThenLoadGivesIdenticalWeights(long maxShardBytes)
    {
        var cpu = TestData.Cpu;
        string dir = TestData.TempDirectory();
        using var original = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        original.Save(dir, maxShardBytes: maxShardBytes);
        Assert.Equal(maxShardBytes < 1_000_000, File.Exists(Path.Combine(dir, "model.safetensors.index.json")));
        using var reloaded = EsmCheckpoint.Load(dir, cpu.Device, cpu.DType);
        Assert.Equal(original.Config, reloaded.Config);
        var a = original.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var b = reloaded.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, p) in a) Assert.True(p.eq(b[name]).all().item<bool>(), name);
    }

    /// <summary>
    /// A damaged checkpoint is refused on loading, named, instead of computing NaN for every output: a NaN weight, and
    /// a layer-norm epsilon that is not positive.
    /// </summary>
    [Fact]
    public void NonFiniteWeightsAndANonPositiveLayerNormEpsilonAreRefused()
    {
        var cpu = TestData.Cpu;
        string damaged = TestData.TempDirectory();
        File.Copy(Path.Combine(TestData.EsmTiny, "config.json"), Path.Combine(damaged, "config.json"));
        const string broken = "esm.encoder.emb_layer_norm_after.weight";
        using (var scope = NewDisposeScope())
        using (var weights = BioForge.IO.SafetensorsCheckpoint.Open(TestData.EsmTiny))
            BioForge.IO.SafetensorsWriter.Write(Path.Combine(damaged, "model.safetensors"),
                [.. weights.Names.Select(n => new KeyValuePair<string, Tensor>(n, n == broken ? weights.Load(n).fill_(double.NaN) : weights.Load(n)))]);
        var nan = Assert.Throws<BioForgeException>(() => EsmCheckpoint.Load(damaged, cpu.Device, cpu.DType));
        Assert.Contains($"tensor '{broken}' holds NaN or infinite values", nan.Message);

        string epsilon = TestData.TempDirectory();
        foreach (string name in Directory.GetFiles(TestData.EsmTiny)) File.Copy(name, Path.Combine(epsilon, Path.GetFileName(name)));
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(epsilon, "config.json")))!.AsObject();
        config["layer_norm_eps"] = -1;
        File.WriteAllText(Path.Combine(epsilon, "config.json"), config.ToJsonString());
        Assert.Contains("layer_norm_eps must be a positive number (got -1)", Assert.Throws<BioForgeException>(() => EsmCheckpoint.Load(epsilon, cpu.Device, cpu.DType)).Message);
    }

    /// <summary>The tiny ESM-2 fixture saved as a bare <c>EsmModel</c> (no <c>esm.</c> prefix, no <c>lm_head.*</c>) in a new folder.</summary>
    internal static string BareEncoder()
    {
        string bare = TestData.TempDirectory();
        File.Copy(Path.Combine(TestData.EsmTiny, "config.json"), Path.Combine(bare, "config.json"));
        using var scope = NewDisposeScope();
        using var weights = BioForge.IO.SafetensorsCheckpoint.Open(TestData.EsmTiny);
        BioForge.IO.SafetensorsWriter.Write(Path.Combine(bare, "model.safetensors"),
            [.. weights.Names.Where(n => !n.StartsWith("lm_head.", StringComparison.Ordinal)).Select(n => new KeyValuePair<string, Tensor>(n.Replace("esm.", ""), weights.Load(n)))]);
        return bare;
    }

    /// <summary>
    /// A bare <c>EsmModel</c> checkpoint (no <c>esm.</c> prefix, no masked-LM head: how encoders are saved after
    /// fine-tuning elsewhere) loads for embeddings, equal to the whole model's; token predictions are refused by name;
    /// saved again, it has no head, and loads again.
    /// </summary>
    [Fact]
    public void ABareEncoderWithoutItsHeadLoadsForEmbeddings()
    {
        var cpu = TestData.Cpu;
        string bare = BareEncoder();
        using var whole = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        using var encoder = EsmCheckpoint.Load(bare, cpu.Device, cpu.DType);
        Assert.False(encoder.Model.HasLanguageModelHead);
        using var ids = tensor(new long[] { 0, 20, 15, 11, 2 }).unsqueeze(0);
        using var mask = ones_like(ids);
        using (var scope = NewDisposeScope())
        {
            var expected = whole.Model.Forward(ids, mask, new EsmForwardOptions()).LastHiddenState;
            var actual = encoder.Model.Forward(ids, mask, new EsmForwardOptions()).LastHiddenState;
            Assert.True(expected.allclose(actual), "the encoder's hidden states differ from the whole model's");
        }
        Assert.Contains("no masked-LM head", Assert.Throws<BioForgeException>(() => encoder.Model.Forward(ids, mask, new EsmForwardOptions { Logits = true })).Message);

        string saved = TestData.TempDirectory();
        encoder.Save(saved);
        using (var file = BioForge.IO.SafetensorsFile.Open(Path.Combine(saved, "model.safetensors")))
            Assert.DoesNotContain(file.Entries, e => e.Name.StartsWith("lm_head.", StringComparison.Ordinal));
        // Declared as what it is: an EsmForMaskedLM would be loaded by a fill-mask pipeline with a random head.
        Assert.Equal("EsmModel", (string?)System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(saved, "config.json")))!["architectures"]![0]);
        using var again = EsmCheckpoint.Load(saved, cpu.Device, cpu.DType);
        Assert.False(again.Model.HasLanguageModelHead);

        // A fine-tuned classifier (EsmForSequenceClassification: the encoder and a task head, no masked-LM head) is read
        // for its encoder, the task head left aside, as transformers' AutoModel reads it.
        string classifier = TestData.TempDirectory();
        File.Copy(Path.Combine(TestData.EsmTiny, "config.json"), Path.Combine(classifier, "config.json"));
        using (var scope = NewDisposeScope())
        using (var weights = BioForge.IO.SafetensorsCheckpoint.Open(TestData.EsmTiny))
            BioForge.IO.SafetensorsWriter.Write(Path.Combine(classifier, "model.safetensors"),
                [.. weights.Names.Where(n => !n.StartsWith("lm_head.", StringComparison.Ordinal)).Select(n => new KeyValuePair<string, Tensor>(n, weights.Load(n))),
                    new("classifier.dense.weight", randn(64, 64)), new("classifier.dense.bias", zeros(64)), new("classifier.out_proj.weight", randn(2, 64)), new("classifier.out_proj.bias", zeros(2))]);
        using var fineTuned = EsmCheckpoint.Load(classifier, cpu.Device, cpu.DType);
        Assert.False(fineTuned.Model.HasLanguageModelHead);
        using (var scope = NewDisposeScope())
            Assert.True(whole.Model.Forward(ids, mask, new EsmForwardOptions()).LastHiddenState.allclose(fineTuned.Model.Forward(ids, mask, new EsmForwardOptions()).LastHiddenState));
    }

    [Theory]
    [InlineData(0.0, "0.0")]
    [InlineData(10000.0, "10000.0")]
    [InlineData(0.1, "0.1")]
    [InlineData(1e-5, "1E-05")]
    [InlineData(-2.0, "-2.0")]
    public void ConfigFloatsAreWrittenWithTheirPoint(double value, string written)
    {
        var node = BioForge.Models.ConfigJson.Float(value);
        Assert.Equal(written, node.ToJsonString());
        Assert.Equal(value, node.GetValue<double>());
    }

    [Fact]
    public void SavedLayoutUsesHuggingFaceKeys()
    {
        var cpu = TestData.Cpu;
        string dir = TestData.TempDirectory();
        using (var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType)) model.Save(dir);
        using var file = BioForge.IO.SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        var names = file.Entries.Select(e => e.Name).ToHashSet();
        Assert.Contains("esm.embeddings.word_embeddings.weight", names);
        Assert.Contains("esm.encoder.layer.1.attention.self.query.weight", names);
        Assert.Contains("esm.encoder.layer.0.attention.LayerNorm.weight", names);
        Assert.Contains("esm.contact_head.regression.weight", names);
        Assert.Contains("lm_head.bias", names);
        Assert.DoesNotContain("lm_head.decoder.weight", names); // tied to the embedding, as save_pretrained writes it
        Assert.Equal("pt", file.Metadata["format"]);
        // Floats as Python writes them: transformers 5's strict configs refuse an integer 0 for a float field.
        string config = File.ReadAllText(Path.Combine(dir, "config.json"));
        Assert.Contains("\"architectures\": [\n    \"EsmForMaskedLM\"", config);
        Assert.Contains("\"rope_theta\": 10000.0,", config);
        Assert.Contains("\"layer_norm_eps\": 1E-05,", config);
    }

    [Fact]
    public void BadCheckpointDirectoriesGiveClearErrors()
    {
        var cpu = TestData.Cpu;
        Assert.Contains("does not exist", Assert.Throws<BioForgeException>(() => EsmCheckpoint.Load("/no/such/model", cpu.Device, cpu.DType)).Message);

        string dir = TestData.TempDirectory();
        Assert.Contains("no config.json", Assert.Throws<BioForgeException>(() => EsmCheckpoint.Load(dir, cpu.Device, cpu.DType)).Message);

        File.Copy(Path.Combine(TestData.EsmTiny, "config.json"), Path.Combine(dir, "config.json"));
        Assert.Contains("no model.safetensors", Assert.Throws<BioForgeException>(() => EsmCheckpoint.Load(dir, cpu.Device, cpu.DType)).Message);

        byte[] weights = File.ReadAllBytes(Path.Combine(TestData.EsmTiny, "model.safetensors"));
        File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), weights[..(weights.Length / 2)]);
        Assert.Contains("invalid safetensors file", Assert.Throws<BioForgeException>(() => EsmCheckpoint.Load(dir, cpu.Device, cpu.DType)).Message);

        File.WriteAllText(Path.Combine(dir, "config.json"), File.ReadAllText(Path.Combine(TestData.EsmTiny, "config.json")).Replace("\"hidden_size\": 64", "\"hidden_size\": 128"));
        File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), weights);
        Assert.Contains("has shape", Assert.Throws<BioForgeException>(() => EsmCheckpoint.Load(dir, cpu.Device, cpu.DType)).Message);

        // Read as Hugging Face would compute it, or refused: an untied decoder would be replaced by the embeddings.
        File.WriteAllText(Path.Combine(dir, "config.json"), File.ReadAllText(Path.Combine(TestData.EsmTiny, "config.json")).Replace("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false"));
        Assert.Contains("tie_word_embeddings false", Assert.Throws<BioForgeException>(() => EsmCheckpoint.Load(dir, cpu.Device, cpu.DType)).Message);
        File.WriteAllText(Path.Combine(dir, "config.json"), File.ReadAllText(Path.Combine(TestData.EsmTiny, "config.json")).Replace("\"pad_token_id\": 1", "\"pad_token_id\": 40"));
        Assert.Contains("pad_token_id 40 is outside the vocabulary of 33", Assert.Throws<BioForgeException>(() => EsmCheckpoint.Load(dir, cpu.Device, cpu.DType)).Message);
        var rotary = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.EsmTiny, "config.json")))!.AsObject();
        rotary["rope_theta"] = 500;
        File.WriteAllText(Path.Combine(dir, "config.json"), rotary.ToJsonString());
        Assert.Contains("rope_theta 500: ESM-2's rotary embeddings use 10000", Assert.Throws<BioForgeException>(() => EsmCheckpoint.Load(dir, cpu.Device, cpu.DType)).Message);
        // A size left out is named, not taken from ESM-2 8M (the defaults of a training configuration).
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.EsmTiny, "config.json")))!.AsObject();
        config.Remove("num_attention_heads");
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        Assert.Contains("config.json: no 'num_attention_heads'", Assert.Throws<BioForgeException>(() => EsmCheckpoint.Load(dir, cpu.Device, cpu.DType)).Message);
    }

    /// <summary>
    /// A snapshot of the Hugging Face cache is symbolic links into its blobs (the safetensors length must be the blob's,
    /// not the link's); transformers strips spaces around vocab.txt lines; a weight stored as integers is refused, not cast.
    /// </summary>
    [Fact]
    public void AHuggingFaceCacheSnapshotLoadsAndIntegerWeightsAreRefused()
    {
        var cpu = TestData.Cpu;
        string cache = TestData.TempDirectory(), blobs = Path.Combine(cache, "blobs"), snapshot = Path.Combine(cache, "snapshots", "abc");
        Directory.CreateDirectory(blobs);
        Directory.CreateDirectory(snapshot);
        foreach (var file in Directory.GetFiles(TestData.EsmTiny))
        {
            string blob = Path.Combine(blobs, Path.GetFileName(file) + ".blob");
            File.Copy(file, blob);
            File.CreateSymbolicLink(Path.Combine(snapshot, Path.GetFileName(file)), Path.Combine("..", "..", "blobs", Path.GetFileName(blob)));
        }
        string vocab = Path.Combine(snapshot, "vocab.txt");
        File.Delete(vocab);
        File.WriteAllLines(vocab, File.ReadAllLines(Path.Combine(TestData.EsmTiny, "vocab.txt")).Select(l => l + " "));
        using (var linked = EsmCheckpoint.Load(snapshot, cpu.Device, cpu.DType))
        using (var direct = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType))
        {
            Assert.Equal(direct.Tokenizer.Vocabulary, linked.Tokenizer.Vocabulary);
            Assert.True(direct.Model.state_dict().Zip(linked.Model.state_dict()).All(p => p.First.Value.allclose(p.Second.Value, 0, 0)));
        }

        // The same bytes relabelled I32: copy_ would have made integers of them.
        string dir = TestData.TempDirectory();
        foreach (var file in Directory.GetFiles(TestData.EsmTiny)) File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        byte[] weights = File.ReadAllBytes(Path.Combine(dir, "model.safetensors"));
        int headerLength = (int)BitConverter.ToInt64(weights, 0);
        var header = System.Text.Json.Nodes.JsonNode.Parse(weights.AsSpan(8, headerLength))!.AsObject();
        header["esm.embeddings.word_embeddings.weight"]!["dtype"] = "I32";
        byte[] relabelled = System.Text.Encoding.UTF8.GetBytes(header.ToJsonString().PadRight(headerLength));
        Assert.Equal(headerLength, relabelled.Length);
        relabelled.CopyTo(weights, 8);
        File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), weights);
        Assert.Contains("tensor 'esm.embeddings.word_embeddings.weight' holds Int32 values where the ESM-2 model has Float32 weights",
            Assert.Throws<BioForgeException>(() => EsmCheckpoint.Load(dir, cpu.Device, cpu.DType)).Message);
    }

    /// <summary>A key a config.json leaves out takes transformers' default, so the network computes as Hugging Face's.</summary>
    [Fact]
    public void AnOmittedLayerNormEpsilonIsHuggingFacesDefault()
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.EsmTiny, "config.json")))!.AsObject();
        Assert.Equal(1e-5, EsmConfig.FromJson(json, "config.json").LayerNormEps);
        json.Remove("layer_norm_eps");
        Assert.Equal(1e-12, EsmConfig.FromJson(json, "config.json").LayerNormEps);
    }

    [Fact]
    public void RandomModelsOfTheFamilyHaveTheDocumentedSizes()
    {
        var cpu = TestData.Cpu;
        using var model = EsmCheckpoint.Random(EsmConfig.Esm2Sizes["8M"], cpu.Device, cpu.DType, seed: 1);
        long parameters = model.Model.parameters().Sum(p => p.numel());
        Assert.InRange(parameters, 7_500_000, 7_900_000); // facebook/esm2_t6_8M_UR50D has 7.84M including the contact head
    }
}
