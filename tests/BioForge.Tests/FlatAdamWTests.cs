using BioForge.Models.Esm;
using BioForge.Training;
using static TorchSharp.torch;

namespace BioForge.Tests;

public sealed class FlatAdamWTests
{
    private static EsmCheckpoint Model() => EsmCheckpoint.Load(TestData.EsmTiny, TestData.Cpu.Device, TestData.Cpu.DType);

    private static Tensor Loss(EsmCheckpoint model, int step)
    {
        using var generator = new Generator((ulong)step);
        var ids = randint(4, 24, [4, 12], generator: generator);
        var logits = model.Model.Forward(ids, ones_like(ids), new EsmForwardOptions { Logits = true }).Logits!;
        return nn.functional.cross_entropy(logits.reshape(-1, 33), ids.reshape(-1));
    }

    [Fact]
    public void MatchesTorchSharpAdamWStepForStepWithoutDecay()
    {
        using var flat = Model();
        using var reference = Model();
        // Evaluation mode: the fixture's config asks for dropout, whose draws would differ between the two copies.
        flat.Model.eval();
        reference.Model.eval();
        using var optimizer = new FlatAdamW(flat.Model.parameters(), new AdamWOptions { Beta1 = 0.9, Beta2 = 0.98, Epsilon = 1e-8, WeightDecay = 0 });
        var torchOptimizer = optim.AdamW(reference.Model.parameters(), lr: 1e-3, beta1: 0.9, beta2: 0.98, eps: 1e-8, weight_decay: 0);
        for (int step = 0; step < 5; step++)
        {
            using (var scope = NewDisposeScope())
            {
                optimizer.ZeroGrad();
                Loss(flat, step).backward();
                optimizer.Update(1e-3);
                torchOptimizer.zero_grad();
                Loss(reference, step).backward();
                torchOptimizer.step();
            }
        }
        var expected = reference.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in flat.Model.named_parameters())
        {
            double diff = (p - expected[name]).abs().max().item<float>();
            Assert.True(diff < 1e-5, $"{name}: max |difference| {diff:E2}");
        }
    }

    [Fact]
    public void AResetOptimizerStepsAsAFreshOneFromTheWeightsSetSince()
    {
        using var used = Model();
        using var fresh = Model();
        used.Model.eval();
        fresh.Model.eval();
        using var optimizer = new FlatAdamW(used.Model.parameters(), new AdamWOptions { WeightDecay = 0 });
        for (int step = 0; step < 3; step++)
            using (NewDisposeScope())
            {
                optimizer.ZeroGrad();
                Loss(used, step).backward();
                optimizer.Update(1e-3);
            }
        // Back to the starting weights, as an optimization restarting from its prior sets them.
        using (no_grad())
            foreach (var (weight, start) in used.Model.parameters().Zip(fresh.Model.parameters())) weight.copy_(start);
        optimizer.Reset();
        Assert.Equal(0, optimizer.Step);
        using var reference = new FlatAdamW(fresh.Model.parameters(), new AdamWOptions { WeightDecay = 0 });
        foreach (var (model, adam) in new[] { (used, optimizer), (fresh, reference) })
            using (NewDisposeScope())
            {
                adam.ZeroGrad();
                Loss(model, 7).backward();
                adam.Update(1e-3);
            }
        foreach (var (a, b) in used.Model.parameters().Zip(fresh.Model.parameters()))
            Assert.True(a.allclose(b, rtol: 0, atol: 1e-7), "a reset optimizer's first step differs from a fresh one's");
    }

    [Fact]
    public void DecaysMatricesButNotVectors()
    {
        using var model = Model();
        var before = model.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        using var optimizer = new FlatAdamW(model.Model.parameters(), new AdamWOptions { WeightDecay = 0.1 });
        optimizer.ZeroGrad();
        optimizer.Update(0.5); // zero gradients: only the decoupled decay moves anything
        foreach (var (name, p) in model.Model.named_parameters())
        {
            var expected = p.dim() >= 2 ? before[name] * (1 - 0.5 * 0.1) : before[name];
            Assert.True((p - expected).abs().max().item<float>() < 1e-6, name);
        }
    }

    [Fact]
    public void ClippingBoundsTheGlobalGradientNorm()
    {
        using var model = Model();
        model.Model.train();
        using var optimizer = new FlatAdamW(model.Model.parameters(), new AdamWOptions());
        optimizer.ZeroGrad();
        using (var scope = NewDisposeScope()) (Loss(model, 0) * 1000).backward();
        double before = optimizer.ClipGradNorm(1.0);
        Assert.True(before > 1.0);
        double after = Math.Sqrt(model.Model.parameters().Sum(p => p.grad!.pow(2).sum().item<float>()));
        Assert.InRange(after, 0.99, 1.0 + 1e-6); // float32 rounding of the rescaled gradients
    }
}
