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

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        double diff = (expected - actual).abs().max().item<float>();
        Assert.True(diff <= 1e-5, $"{what}: max |difference| {diff:E2} exceeds 1e-5");
    }
}
