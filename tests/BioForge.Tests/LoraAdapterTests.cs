using BioForge.FineTuning;
using BioForge.IO;
using BioForge.Models.Esm;
using BioForge.Models.Llama;
using static TorchSharp.torch;

namespace BioForge.Tests;

public sealed class LoraAdapterTests
{
    private static readonly long[,] Tokens = { { 0, 5, 9, 11, 7, 2 }, { 0, 13, 6, 8, 2, 1 } };

    [Fact]
    public void FreshAdaptersLeaveTheNetworkUnchanged()
    {
        using var model = LlamaForCausalLM.Load(TestData.Path("hf", "llama_tiny"), TestData.Cpu.Device, ScalarType.Float32);
        using var before = LlamaLogits(model);
        using var lora = LoraAdapters.Attach(model, new LoraOptions(4, 8, 0, ["q_proj", "v_proj"]), seed: 1);
        Assert.Equal(2 * 2, lora.AdaptedModules.Count); // two layers × two projections
        using var after = LlamaLogits(model);
        Assert.True(before.allclose(after, rtol: 0, atol: 0));
    }

    [Fact]
    public void MergedWeightsReproduceTheHookedLlama()
    {
        string directory = TestData.TempDirectory();
        using var model = LlamaForCausalLM.Load(TestData.Path("hf", "llama_tiny"), TestData.Cpu.Device, ScalarType.Float32);
        using var original = LlamaLogits(model);
        using var lora = LoraAdapters.Attach(model, new LoraOptions(4, 8, 0, ["q_proj", "v_proj", "down_proj"]), seed: 1);
        Randomize(lora);
        using var adapted = LlamaLogits(model);
        Assert.False(adapted.allclose(original, rtol: 0, atol: 1e-3)); // the adapters do something
        lora.Save(directory, "llama_tiny", LlamaFamily.Instance);
        // PEFT's AutoPeftModel loads the class auto_mapping names (without it or a task type it refuses the folder); the
        // adapters' names are that class's modules.
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "adapter_config.json")))!;
        Assert.Equal("LlamaForCausalLM", (string?)config["auto_mapping"]!["base_model_class"]);
        Assert.Equal("transformers.models.llama.modeling_llama", (string?)config["auto_mapping"]!["parent_library"]);
        Assert.Null(config["task_type"]);
        Assert.Equal("0.0", config["lora_dropout"]!.ToJsonString());
        using (var weights = SafetensorsFile.Open(Path.Combine(directory, "adapter_model.safetensors")))
            Assert.Contains(weights.Entries, e => e.Name == "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");

        using (var reloaded = LlamaForCausalLM.Load(TestData.Path("hf", "llama_tiny"), TestData.Cpu.Device, ScalarType.Float32))
        using (LoraAdapters.Load(reloaded, directory))
        using (var again = LlamaLogits(reloaded))
            AssertClose(adapted, again);

        lora.Merge();
        using var merged = LlamaLogits(model);
        AssertClose(adapted, merged);
    }

    [Fact]
    public void MergedWeightsReproduceTheHookedEsm()
    {
        using var checkpoint = EsmCheckpoint.Load(TestData.EsmTiny, TestData.Cpu.Device, ScalarType.Float32);
        using var original = EsmHidden(checkpoint.Model);
        using var lora = LoraAdapters.Attach(checkpoint.Model, new LoraOptions(2, 4, 0, ["query", "value", "output.dense"]), seed: 2);
        Randomize(lora);
        using var adapted = EsmHidden(checkpoint.Model);
        Assert.False(adapted.allclose(original, rtol: 0, atol: 1e-3)); // the adapters do something
        lora.Merge();
        using var merged = EsmHidden(checkpoint.Model);
        AssertClose(adapted, merged);
    }

    [Fact]
    public void ATargetThatMatchesNothingIsRefused()
    {
        using var model = LlamaForCausalLM.Load(TestData.Path("hf", "llama_tiny"), TestData.Cpu.Device, ScalarType.Float32);
        var e = Assert.Throws<BioForgeException>(() => LoraAdapters.Attach(model, new LoraOptions(4, 8, 0, ["query"]), seed: 1));
        Assert.Contains("'query' matches no linear layer", e.Message);
    }

    private static void Randomize(LoraAdapters lora)
    {
        using var _ = no_grad();
        using var generator = new TorchSharp.torch.Generator(7);
        foreach (var p in lora.Parameters())
            using (var draw = randn(p.shape, generator: generator)) p.copy_(draw.mul_(0.2));
    }

    private static Tensor LlamaLogits(LlamaForCausalLM model)
    {
        using var _ = no_grad();
        using var ids = tensor(Tokens);
        using var mask = ones_like(ids);
        return model.Forward(ids, mask).Logits;
    }

    private static Tensor EsmHidden(EsmForMaskedLM model)
    {
        using var _ = no_grad();
        using var ids = tensor(new long[,] { { 0, 5, 9, 11, 7, 2 } });
        using var mask = ones_like(ids);
        return model.Forward(ids, mask, new EsmForwardOptions()).LastHiddenState;
    }

    private static void AssertClose(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.shape, actual.shape); // no broadcasting between different shapes
        double difference = (expected - actual).abs().max().item<float>();
        Assert.True(difference < 1e-5, $"max difference {difference}");
    }
}
