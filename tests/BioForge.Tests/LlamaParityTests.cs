using BioForge.IO;
using BioForge.Models.Llama;
using static TorchSharp.torch;

namespace BioForge.Tests;

/// <summary>The Llama-style decoder against Hugging Face transformers 5.17 (fixture llama_tiny).</summary>
public sealed class LlamaParityTests
{
    private static string Fixture => TestData.Path("hf", "llama_tiny");

    [Fact]
    public void LogitsAndHiddenStatesMatchTransformers()
    {
        var cpu = TestData.Cpu;
        using var scope = NewDisposeScope();
        using var model = LlamaForCausalLM.Load(Fixture, cpu.Device, cpu.DType);
        using var expected = SafetensorsFile.Open(Path.Combine(Fixture, "expected.safetensors"));
        using var _ = no_grad();
        var output = model.Forward(expected.ToTensor("input_ids"), expected.ToTensor("attention_mask"), hiddenStates: true);
        // Padded positions of the second row are compared too: they attend to the real tokens before them, as in transformers.
        AssertClose(expected.ToTensor("logits"), output.Logits, "logits");
        Assert.Equal(3, output.HiddenStates!.Count);
        for (int i = 0; i < 3; i++)
            AssertClose(expected.ToTensor($"hidden_states.{i}"), output.HiddenStates[i], $"hidden_states.{i}");
    }

    [Fact]
    public void GreedyDecodingIsTokenForTokenIdentical()
    {
        var cpu = TestData.Cpu;
        using var model = LlamaForCausalLM.Load(Fixture, cpu.Device, cpu.DType);
        using var expected = SafetensorsFile.Open(Path.Combine(Fixture, "expected.safetensors"));
        using var greedy = expected.ToTensor("greedy");
        long[] reference = greedy[0].data<long>().ToArray();
        Assert.Equal(reference, model.GreedyDecode([1, 5, 9], maxNewTokens: 12));
    }

    /// <summary>
    /// A config Hugging Face reads but BioForge's Llama would compute differently is refused, also in the older
    /// <c>rope_scaling {"type": …}</c> spelling; a value of the wrong JSON type is one message naming the file and key.
    /// </summary>
    [Theory]
    [InlineData("\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}", "rope_type 'linear' is not supported")]
    [InlineData("\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}", "rope_type 'llama3' is not supported")]
    [InlineData("\"rms_norm_eps\": \"1e-5\"", "'rms_norm_eps' must be a number (got \"1e-5\")")]
    [InlineData("\"tie_word_embeddings\": \"yes\"", "'tie_word_embeddings' must be true or false")]
    // Checked before anything divides by them or sizes a tensor with them.
    [InlineData("\"num_key_value_heads\": 0", "num_key_value_heads must be positive (got 0)")]
    [InlineData("\"head_dim\": 0", "head_dim (hidden_size / num_attention_heads when absent) must be positive (got 0)")]
    [InlineData("\"bos_token_id\": 100000", "bos_token_id 100000 is outside the vocabulary of")]
    [InlineData("\"pad_token_id\": -1", "pad_token_id -1 is outside the vocabulary of")]
    public void ConfigsItWouldReadWronglyAreRefused(string entry, string expected)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(Fixture, "config.json")))!.AsObject();
        var extra = System.Text.Json.Nodes.JsonNode.Parse("{" + entry + "}")!.AsObject();
        foreach (var (key, value) in extra.ToList())
        {
            extra.Remove(key);
            json[key] = value;
        }
        string path = Path.Combine(TestData.TempDirectory(), "config.json");
        File.WriteAllText(path, json.ToJsonString());
        var e = Assert.Throws<BioForgeException>(() => LlamaConfig.FromJson(path));
        Assert.Equal($"{path}: ", e.Message[..(path.Length + 2)]);
        Assert.Contains(expected, e.Message);
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        double diff = (expected - actual).abs().max().item<float>();
        Assert.True(diff <= 1e-5, $"{what}: max |difference| {diff:E2} exceeds 1e-5");
    }
}
