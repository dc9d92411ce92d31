using BioForge.IO;
using BioForge.Models.Esm;
using static TorchSharp.torch;

namespace BioForge.Tests;

/// <summary>ESM-2 against Hugging Face transformers 5.17 (fixture esm_tiny): every output within 1e-5.</summary>
public sealed class EsmParityTests
{
    private const double Tolerance = 1e-5;

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        double diff = (expected - actual.to(expected.dtype)).abs().max().item<float>();
        Assert.True(diff <= Tolerance, $"{what}: max |difference| {diff:E2} exceeds {Tolerance:E0}");
    }

    [Theory]
    [InlineData(AttentionKernel.Explicit)]
    [InlineData(AttentionKernel.Fused)]
    public void LogitsAndHiddenStatesMatchTransformers(AttentionKernel kernel)
    {
        var cpu = TestData.Cpu;
        using var scope = NewDisposeScope();
        using var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        using var expected = SafetensorsFile.Open(Path.Combine(TestData.EsmTiny, "expected.safetensors"));
        var ids = expected.ToTensor("input_ids");
        var mask = expected.ToTensor("attention_mask");
        using var _ = no_grad();
        var output = model.Model.Forward(ids, mask, new EsmForwardOptions { Logits = true, HiddenStates = true, Kernel = kernel });
        AssertClose(expected.ToTensor("logits"), output.Logits!, "logits");
        Assert.Equal(3, output.HiddenStates!.Count);
        for (int i = 0; i < 3; i++)
            AssertClose(expected.ToTensor($"hidden_states.{i}"), output.HiddenStates[i], $"hidden_states.{i}");
    }

    [Fact]
    public void AttentionProbabilitiesMatchTransformers()
    {
        var cpu = TestData.Cpu;
        using var scope = NewDisposeScope();
        using var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        using var expected = SafetensorsFile.Open(Path.Combine(TestData.EsmTiny, "expected.safetensors"));
        using var _ = no_grad();
        var output = model.Model.Forward(expected.ToTensor("input_ids"), expected.ToTensor("attention_mask"),
            new EsmForwardOptions { Attentions = true, Kernel = AttentionKernel.Explicit });
        Assert.Equal(2, output.Attentions!.Count);
        for (int i = 0; i < 2; i++)
            AssertClose(expected.ToTensor($"attentions.{i}"), output.Attentions[i], $"attentions.{i}");
    }

    [Fact]
    public void ContactMapsMatchTransformers()
    {
        var cpu = TestData.Cpu;
        using var scope = NewDisposeScope();
        using var model = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, cpu.DType);
        using var expected = SafetensorsFile.Open(Path.Combine(TestData.EsmTiny, "expected.safetensors"));
        using var contacts = SafetensorsFile.Open(Path.Combine(TestData.EsmTiny, "expected_contacts.safetensors"));
        using var _ = no_grad();
        var actual = model.Model.PredictContacts(expected.ToTensor("input_ids"), expected.ToTensor("attention_mask"));
        AssertClose(contacts.ToTensor("contacts"), actual, "contacts");
    }

    [Fact]
    public void Bfloat16WeightsStayCloseToFloat32()
    {
        var cpu = TestData.Cpu;
        using var scope = NewDisposeScope();
        using var full = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, ScalarType.Float32);
        using var half = EsmCheckpoint.Load(TestData.EsmTiny, cpu.Device, ScalarType.BFloat16);
        using var expected = SafetensorsFile.Open(Path.Combine(TestData.EsmTiny, "expected.safetensors"));
        var ids = expected.ToTensor("input_ids");
        var mask = expected.ToTensor("attention_mask");
        using var _ = no_grad();
        var a = full.Model.Forward(ids, mask, new EsmForwardOptions { Logits = true }).Logits!;
        var b = half.Model.Forward(ids, mask, new EsmForwardOptions { Logits = true }).Logits!;
        Assert.Equal(ScalarType.BFloat16, b.dtype);
        double diff = (a - b.to(ScalarType.Float32)).abs().max().item<float>();
        Assert.InRange(diff, 1e-6, 0.1); // bf16 keeps 8 bits of mantissa: close, but not identical
    }

    /// <summary>
    /// A bfloat16 model's contact map (the CUDA default) is the float32 one to a few 1e-5: the head's APC subtracts
    /// nearly equal sums, which in bfloat16 differed from float32 by 1.9e-3 here, as much as the whole map varies.
    /// </summary>
    [Fact]
    public void ABfloat16ModelsContactMapIsItsFloat32Map()
    {
        var cpu = TestData.Cpu;
        using var scope = NewDisposeScope();
        string shipped = Path.Combine(Repository.Root, "models", "esm2-small");
        using var full = EsmCheckpoint.Load(shipped, cpu.Device, ScalarType.Float32);
        using var half = EsmCheckpoint.Load(shipped, cpu.Device, ScalarType.BFloat16);
        var ids = tensor(Tokenizers.EsmTokenizer.Esm2.Encode("MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILEQLKALGSKVLDTFDGSTRVLEHLQKLGLSIEHAT").Select(i => (long)i).ToArray()).unsqueeze(0);
        using var _ = no_grad();
        var a = full.Model.PredictContacts(ids, ones_like(ids));
        var b = half.Model.PredictContacts(ids, ones_like(ids));
        Assert.Equal(ScalarType.Float32, b.dtype);
        Assert.True(a.std().item<float>() > 1e-4, "the map must vary for the comparison to mean anything");
        double diff = (a - b).abs().max().item<float>();
        Assert.True(diff < 3e-4, $"bf16 contacts differ from fp32 by {diff:E2}");
    }
}
