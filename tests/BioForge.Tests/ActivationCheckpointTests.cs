using System.Runtime.ExceptionServices;
using BioForge.Models.Esm;
using BioForge.Models.Llama;
using BioForge.Runtime;
using TorchSharp;
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

    /// <summary>
    /// Runs <paramref name="work"/> on a thread of its own, as LibTorch's CUDA autograd worker runs backward bodies:
    /// no dispose scope of the thread that built the graph reaches it.
    /// </summary>
    private static T OnAnotherThread<T>(Func<T> work)
    {
        T result = default!;
        ExceptionDispatchInfo? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = work();
            }
            catch (Exception e)
            {
                error = ExceptionDispatchInfo.Capture(e);
            }
        });
        thread.Start();
        thread.Join();
        error?.Throw();
        return result;
    }

    [Fact]
    public void BackwardOnAnotherThreadLeavesNoTensorBehind()
    {
        using var esm = EsmCheckpoint.Random(new EsmConfig { HiddenSize = 32, NumHiddenLayers = 3, NumAttentionHeads = 4, IntermediateSize = 64 },
            TestData.Cpu.Device, TestData.Cpu.DType, seed: 2);
        esm.Model.train();
        esm.Model.ActivationCheckpointing = true;
        using var scope = NewDisposeScope();
        var ids = tensor(new long[] { 0, 5, 9, 12, 7, 32, 11, 2, 0, 8, 8, 2, 1, 1, 1, 1 }, [2, 8]);
        var mask = ids.ne(1).to(ScalarType.Int64);
        using var pass = new BackwardPass();
        var loss = esm.Model.Forward(ids, mask, new EsmForwardOptions { Logits = true }).Logits!.pow(2).mean();
        long left = OnAnotherThread(() =>
        {
            long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            pass.Backward(loss);
            return DisposeScopeManager.Statistics.ThreadTotalLiveCount - before;
        });
        Assert.Equal(0, left);
        Assert.All(esm.Model.named_parameters().Where(p => p.name.Contains("encoder.layer", StringComparison.Ordinal)), p => Assert.NotNull(p.parameter.grad));
    }

    [Fact]
    public void AnExceptionInABackwardBodyArrivesAfterBackwardAsAMessage()
    {
        _ = TestData.Cpu;
        using var scope = NewDisposeScope();
        var x = randn(4, 3).requires_grad_(true);
        int calls = 0;
        // The second call is the recomputation in backward: where a CUDA out-of-memory would strike.
        Tensor Segment(Tensor h) => ++calls == 2 ? throw new InvalidOperationException("CUDA out of memory (simulated)") : h.tanh();
        using var pass = new BackwardPass();
        var loss = ActivationCheckpoint.Run(Segment, x).sum();
        var error = Assert.Throws<BioForgeException>(() => OnAnotherThread(() =>
        {
            pass.Backward(loss);
            return 0;
        }));
        Assert.Equal("the backward pass failed in ActivationCheckpoint: CUDA out of memory (simulated)", error.Message);
    }

    /// <summary>
    /// Peak resident memory of one checkpointed training step (bench train in a process of its own, glibc returning
    /// every large block at once so that the peak follows the live tensors), for a given number of ESM-2 layers.
    /// </summary>
    private static double PeakMiB(string config, int layers)
    {
        var start = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "BioForge.Cli.dll"), "bench", "train", "--config", config, "--steps", "1", "--warmup", "0",
            $"model.config.num_hidden_layers={layers}", "train.activation_checkpointing=true" })
            start.ArgumentList.Add(a);
        start.Environment["MALLOC_MMAP_THRESHOLD_"] = "65536";
        start.Environment["MALLOC_TRIM_THRESHOLD_"] = "65536";
        using var process = System.Diagnostics.Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd(), error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, error);
        return System.Text.Json.Nodes.JsonNode.Parse(output)!["peak_rss_mib"]!.GetValue<double>();
    }

    [Fact]
    public void CheckpointedTrainingHoldsAboutOneInputPerLayer()
    {
        // 8,192 tokens × 64 features × 4 bytes = 2 MiB: the input each checkpointed layer keeps. Temporaries held for
        // the whole micro-batch (the defect) cost ~108 MiB per layer here; each layer's parameters, gradients and
        // AdamW state about 1 MiB more.
        string config = Path.Combine(TestData.TempDirectory(), "esm.yaml");
        File.WriteAllText(config, $$"""
            seed: 5
            data:
              dir: {{TinyRuns.Proteins}}
              tokens_per_batch: 8192
              max_length: 128
            model:
              type: esm
              config:
                hidden_size: 64
                intermediate_size: 256
                num_attention_heads: 4
                hidden_dropout_prob: 0.0
                attention_probs_dropout_prob: 0.0
            train:
              threads: 2
              device: cpu
              output_dir: {{Path.Combine(Path.GetDirectoryName(config)!, "run")}}
            """);
        double perLayer = (PeakMiB(config, 6) - PeakMiB(config, 2)) / 4;
        Assert.True(perLayer < 6, $"peak memory grows by {perLayer:F1} MiB per checkpointed layer");
    }
}
