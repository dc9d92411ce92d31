using BioForge.Generation;
using BioForge.Models;
using BioForge.Models.Llama;
using static TorchSharp.torch;

namespace BioForge.Tests;

public sealed class LlamaSamplingTests
{
    private static LlamaForCausalLM Load() => LlamaForCausalLM.Load(TestData.Path("hf", "llama_tiny"), TestData.Cpu.Device, TestData.Cpu.DType);

    /// <summary>
    /// One rule set for every sampler (the command line, the server, the optimizer's and the text sampler): each bound
    /// holds, a NaN is out of every range, and top-k −1 means all tokens as 0 does.
    /// </summary>
    [Fact]
    public void SamplingSettingsOutOfRangeAreNamed()
    {
        var fine = new SamplingOptions();
        Assert.Null(fine.FirstProblem());
        Assert.Null((fine with { TopK = -1, Temperature = 0, MinNewTokens = 0, PresencePenalty = -2, FrequencyPenalty = 2 }).FirstProblem());
        (SamplingOptions Options, SamplingSetting Setting, string Problem)[] cases =
        [
            (fine with { Temperature = double.NaN }, SamplingSetting.Temperature, "must be 0 to 100 (got NaN)"),
            (fine with { Temperature = 100.5 }, SamplingSetting.Temperature, "must be 0 to 100 (got 100.5)"),
            (fine with { TopP = 0 }, SamplingSetting.TopP, "must be in (0, 1] (got 0)"),
            (fine with { TopK = -2 }, SamplingSetting.TopK, "must be −1 or 0 (all tokens) or positive (got -2)"),
            (fine with { MaxNewTokens = 0 }, SamplingSetting.MaxNewTokens, "must be positive (got 0)"),
            (fine with { MinNewTokens = -1 }, SamplingSetting.MinNewTokens, "must be 0 or more (got -1)"),
            (fine with { RepetitionPenalty = double.PositiveInfinity }, SamplingSetting.RepetitionPenalty, "must be positive (got Infinity)"),
            (fine with { PresencePenalty = double.NaN }, SamplingSetting.PresencePenalty, "must be −2 to 2 (got NaN)"),
            (fine with { FrequencyPenalty = -2.5 }, SamplingSetting.FrequencyPenalty, "must be −2 to 2 (got -2.5)"),
        ];
        foreach (var (options, setting, problem) in cases)
            Assert.Equal(new SamplingProblem(setting, problem), options.FirstProblem());
        Assert.Equal("top_p must be in (0, 1] (got 1.5)", Assert.Throws<BioForgeException>(() => (fine with { TopP = 1.5 }).Validate()).Message);
    }

    [Fact]
    public void CachedDecodingGivesTheSameLogitsAsAFullForward()
    {
        using var model = Load();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var ids = tensor(new long[] { 1, 5, 9, 12, 7, 30, 41 }, [1, 7]);
        var full = model.Forward(ids, ones_like(ids)).Logits;
        using var cache = new KeyValueCache(model.Config.NumHiddenLayers);
        var first = model.Forward(ids.narrow(1, 0, 4), ones(1, 4, ScalarType.Int64), cache: cache).Logits;
        var rest = Enumerable.Range(4, 3).Select(i => model.Forward(ids.narrow(1, i, 1), ones(1, i + 1, ScalarType.Int64), cache: cache).Logits).ToList();
        var stepwise = cat([first, .. rest], dim: 1);
        Assert.Equal(full.shape, stepwise.shape);
        Assert.True((full - stepwise).abs().max().item<float>() <= 1e-5);
    }

    [Fact]
    public void SampledLikelihoodsEqualTeacherForcedOnesAndSeedsReproduce()
    {
        using var model = Load();
        var options = new SamplingOptions { Temperature = 1.3, TopK = 20, TopP = 0.95, MaxNewTokens = 10 };
        IReadOnlyList<SampledSequence> Draw(ulong seed)
        {
            using var generator = new Generator(seed);
            return Sampling.Sample(model, 6, options, generator);
        }
        var samples = Draw(7);
        Assert.Equal(samples.Select(s => string.Join(',', s.Tokens)), Draw(7).Select(s => string.Join(',', s.Tokens)));
        Assert.Contains(samples, s => s.Tokens.Length > 0);

        foreach (var s in samples)
        {
            Assert.Equal(TeacherForced(model, s), s.LogLikelihood, 1e-4);
            Assert.True(s.Finished || s.Tokens.Length == options.MaxNewTokens);
        }
    }

    /// <summary>The sequence's log-likelihood from one full forward pass: each token after the begin token, and the end token when it finished.</summary>
    private static double TeacherForced(LlamaForCausalLM model, SampledSequence s)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        long[] sequence = [model.Config.BosTokenId, .. s.Tokens];
        var ids = tensor(sequence, [1, sequence.Length]);
        var logProbs = model.Forward(ids, ones_like(ids)).Logits[0].log_softmax(-1);
        double expected = 0;
        for (int i = 1; i < sequence.Length; i++) expected += logProbs[i - 1, sequence[i]].item<float>();
        if (s.Finished) expected += logProbs[sequence.Length - 1, model.Config.EosTokenId].item<float>();
        return expected;
    }

    [Fact]
    public void PromptsOfAnyLengthsStartTheirSequencesInOneBatchAndCountInTheLikelihood()
    {
        using var model = Load();
        var options = new SamplingOptions { Temperature = 1.2, TopK = 5, MaxNewTokens = 10 };
        long[]?[] prompts = [null, [5, 9], [12, 7, 30, 41, 8], [], [3]];
        using var generator = new Generator(11);
        var samples = Sampling.Sample(model, prompts.Length, options, generator, prompts);
        for (int i = 0; i < samples.Count; i++)
        {
            var s = samples[i];
            long[] prompt = prompts[i] ?? [];
            Assert.Equal(prompt, s.Tokens.Take(prompt.Length));
            Assert.True(s.Finished || s.Tokens.Length == options.MaxNewTokens);
            Assert.Equal(TeacherForced(model, s), s.LogLikelihood, 1e-4);
        }
        Assert.Throws<ArgumentException>(() => Sampling.Sample(model, 2, options, generator, prompts));
    }

    [Fact]
    public void DrawsAreMadeOnTheHostSoASeedGivesTheSameTokensOnEveryDevice()
    {
        // CUDA's multinomial refuses a CPU generator, and TorchSharp makes one whatever device it is asked for: the
        // draws are made on the host, so the generator is a host one and the tokens do not depend on the model's device.
        using var model = Load();
        var options = new SamplingOptions { Temperature = 1.1, MaxNewTokens = 8 };
        using var host = Sampling.CreateGenerator(11);
        Assert.Equal(TorchSharp.DeviceType.CPU, host.device.type);
        var drawn = Sampling.Sample(model, 5, options, host);
        using var plain = new Generator(11);
        Assert.Equal(drawn.Select(s => string.Join(',', s.Tokens)), Sampling.Sample(model, 5, options, plain).Select(s => string.Join(',', s.Tokens)));
    }

    [Fact]
    public void TopOneSamplingIsGreedy()
    {
        using var model = Load();
        using var generator = new Generator(1);
        var sample = Sampling.Sample(model, 2, new SamplingOptions { TopK = 1, MaxNewTokens = 12 }, generator);
        long[] greedy = model.GreedyDecode([model.Config.BosTokenId], 12);
        Assert.All(sample, s => Assert.Equal(greedy.Skip(1).TakeWhile(t => t != model.Config.EosTokenId), s.Tokens));
    }
}
