using BioForge.Models.Esm;
using BioForge.Models.Llama;
using static TorchSharp.torch;

namespace BioForge.Tests;

public sealed class ActivationCheckpointTests
{
    private static Dictionary<string, Tensor> Gradients(nn.Module module, Func<Tensor> loss)
    {
        foreach (var p in module.parameters()) p.grad = null;
        loss().backward();
        // Parameters outside the loss (the ESM contact head) get no gradient either way.
        return module.named_parameters().Where(p => p.parameter.grad is not null).ToDictionary(p => p.name, p => p.parameter.grad!.clone());
    }

    private static void AssertSame(Dictionary<string, Tensor> expected, Dictionary<string, Tensor> actual)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, g) in expected)
        {
            double diff = (g - actual[name]).abs().max().item<float>();
            Assert.True(diff <= 1e-6 * Math.Max(1, g.abs().max().item<float>()), $"{name}: gradient differs by {diff:E2}");
        }
    }

    [Fact]
    public void LlamaGradientsAreUnchangedByRecomputation()
    {
        using var model = LlamaForCausalLM.Load(TestData.Path("hf", "llama_tiny"), TestData.Cpu.Device, TestData.Cpu.DType);
        model.train();
        using var scope = NewDisposeScope();
        var ids = tensor(new long[] { 1, 5, 9, 12, 7, 30, 41, 3, 1, 8, 8, 2, 0, 0, 0, 0 }, [2, 8]);
        var mask = ids.ne(0).to(ScalarType.Int64);
        Tensor Loss() => model.Forward(ids, mask).Logits.pow(2).mean();
        var plain = Gradients(model, Loss);
        model.ActivationCheckpointing = true;
        var recomputed = Gradients(model, Loss);
        AssertSame(plain, recomputed);
    }

    [Fact]
    public void EsmGradientsAreUnchangedByRecomputationAndDropoutIsRefused()
    {
        using var esm = EsmCheckpoint.Random(new EsmConfig { HiddenSize = 32, NumHiddenLayers = 3, NumAttentionHeads = 4, IntermediateSize = 64 },
            TestData.Cpu.Device, TestData.Cpu.DType, seed: 2);
        esm.Model.train();
        using var scope = NewDisposeScope();
        var ids = tensor(new long[] { 0, 5, 9, 12, 7, 32, 11, 2, 0, 8, 8, 2, 1, 1, 1, 1 }, [2, 8]);
        var mask = ids.ne(1).to(ScalarType.Int64);
        Tensor Loss() => esm.Model.Forward(ids, mask, new EsmForwardOptions { Logits = true }).Logits!.pow(2).mean();
        var plain = Gradients(esm.Model, Loss);
        esm.Model.ActivationCheckpointing = true;
        var recomputed = Gradients(esm.Model, Loss);
        AssertSame(plain, recomputed);

        using var withDropout = EsmCheckpoint.Load(TestData.EsmTiny, TestData.Cpu.Device, TestData.Cpu.DType);
        Assert.Throws<BioForgeException>(() => withDropout.Model.ActivationCheckpointing = true);
    }
}
