using BioForge.Generation;
using BioForge.Models.Llama;
using BioForge.Tokenizers;
using static TorchSharp.torch;

namespace BioForge.Tests;

public sealed class DecodeSchedulerTests
{
    private static LlamaForCausalLM Tiny() => LlamaForCausalLM.Load(TestData.Path("hf", "llama_tiny"), TestData.Cpu.Device, TestData.Cpu.DType);

    private static LlamaCheckpoint Smiles() => LlamaCheckpoint.Load(Path.Combine(Repository.Root, "models", "smiles-llama-small"), TestData.Cpu.Device, TestData.Cpu.DType);

    private sealed class Collected
    {
        public List<int> Tokens { get; } = [];
        public FinishReason? Reason { get; set; }
        public double LogLikelihood { get; set; }
    }

    private static SequenceJob Job(Collected into, int[] prompt, SamplingOptions options, ulong seed, long index, Func<bool>? cancelled = null) => new()
    {
        Prompt = prompt,
        Options = options,
        Seed = seed,
        Index = index,
        Cancelled = cancelled,
        OnToken = draw =>
        {
            into.Tokens.Add(draw.Token);
            return true;
        },
        OnFinished = (reason, ll) =>
        {
            into.Reason = reason;
            into.LogLikelihood = ll;
        },
    };

    private static void RunToEnd(DecodeScheduler scheduler)
    {
        for (int guard = 0; scheduler.Busy; guard++)
        {
            Assert.True(guard < 10_000, "the scheduler did not finish");
            var step = scheduler.Step();
            // Each row of a pass but padding draws one token: rows are counted once, a one-token prompt joining the decoding pass too.
            Assert.Equal(step.Tokens, step.Prefilled + step.Decoded - step.Padding);
            Assert.True(step.Padding == 0 || scheduler.Mode == BatchingMode.Padded, $"{step.Padding} padding rows in {scheduler.Mode} batching");
        }
    }

    /// <summary>
    /// Rows of different prompt lengths at different positions share steps: each equals the model's own greedy decoding.
    /// In float32 the decoding steps attend with the ragged CPU kernel; in float64 with LibTorch's masked attention (the
    /// path a GPU takes).
    /// </summary>
    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void SlotCachedDecodingAtMixedPositionsEqualsGreedyDecoding(ScalarType dtype)
    {
        using var model = LlamaForCausalLM.Load(TestData.Path("hf", "llama_tiny"), TestData.Cpu.Device, dtype);
        int[][] prompts = [[1], [1, 5, 9, 12], [1, 30], [1, 7, 7, 7, 7, 7, 3]];
        var greedy = new SamplingOptions { Temperature = 0, MaxNewTokens = 9 };
        using var scheduler = new DecodeScheduler(DecoderNetwork.Of(model), slots: 3, length: 32, BatchingMode.Continuous, queueCapacity: 8);
        var results = prompts.Select(_ => new Collected()).ToArray();
        // Submitted one step apart, so joins happen while others decode.
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.True(scheduler.TrySubmit([Job(results[i], prompts[i], greedy, 0, i)]));
            var step = scheduler.Step();
            Assert.Equal(step.Tokens, step.Prefilled + step.Decoded);
        }
        RunToEnd(scheduler);
        for (int i = 0; i < prompts.Length; i++)
        {
            var expected = model.GreedyDecode(prompts[i].Select(t => (long)t).ToList(), 9).Skip(prompts[i].Length).ToList();
            bool ended = expected.Count > 0 && expected[^1] == model.Config.EosTokenId;
            Assert.Equal(expected.Where(t => t != model.Config.EosTokenId).Select(t => (int)t), results[i].Tokens);
            Assert.Equal(ended ? FinishReason.Stop : FinishReason.Length, results[i].Reason);
        }
    }

    /// <summary>
    /// A finish callback that throws keeps no other job from being told it ended: cancelled waiting jobs and, after a
    /// failed step, running ones are each told; the exception comes after.
    /// </summary>
    [Fact]
    public void AThrowingCallbackDoesNotKeepTheOtherJobsWaiting()
    {
        using var model = Tiny();
        using var scheduler = new DecodeScheduler(DecoderNetwork.Of(model), slots: 2, length: 32, BatchingMode.Continuous, queueCapacity: 8);
        var options = new SamplingOptions { Temperature = 0, MaxNewTokens = 20 };
        SequenceJob Throwing(Func<bool>? cancelled) => new()
        {
            Prompt = [1],
            Options = options,
            Seed = 0,
            Index = 0,
            Cancelled = cancelled,
            OnToken = _ => true,
            OnFinished = (_, _) => throw new InvalidOperationException("callback"),
        };
        var told = new Collected();
        Assert.True(scheduler.TrySubmit([Throwing(() => true), Job(told, [1], options, 0, 1, () => true)]));
        Assert.Equal("callback", Assert.Throws<InvalidOperationException>(() => scheduler.Step()).Message);
        Assert.Equal(FinishReason.Cancelled, told.Reason);
        Assert.False(scheduler.Busy);

        var running = new Collected();
        Assert.True(scheduler.TrySubmit([Throwing(null), Job(running, [1], options, 0, 1)]));
        scheduler.Step(); // both admitted and decoding
        Assert.Throws<InvalidOperationException>(() => scheduler.CancelRunning());
        Assert.Equal(FinishReason.Cancelled, running.Reason);
        Assert.False(scheduler.Busy);
    }

    /// <summary>A row bound past its slot would read and overwrite another sequence's keys: refused before the pass.</summary>
    [Fact]
    public void BindingARowOutsideItsSlotIsRefused()
    {
        using var model = LlamaForCausalLM.Load(TestData.Path("hf", "llama_tiny"), TestData.Cpu.Device, ScalarType.Float32);
        using var cache = new SlotCache(DecoderNetwork.Of(model), slots: 2, length: 8);
        using (NewDisposeScope())
        {
            cache.Bind([0, 1], [3, 7], 1, 8); // the last position of each slot
            cache.Unbind();
        }
        Assert.Throws<InvalidOperationException>(() => cache.Bind([0, 2], [0, 0], 1, 1)); // no slot 2
        Assert.Throws<InvalidOperationException>(() => cache.Bind([0, 1], [0, 8], 1, 9)); // position 8 of 8
        Assert.Throws<InvalidOperationException>(() => cache.Bind([0, 1], [0, 5], 1, 4)); // writes past what it attends
        Assert.Throws<InvalidOperationException>(() => cache.Bind([0, 1], [-1, 0], 1, 1));
        Assert.Throws<InvalidOperationException>(() => cache.Bind([0, 1], [0], 1, 1));
    }

    /// <summary>
    /// A sequence's tokens are a function of (seed, index) and its options only: alone, in a batch of 7 or of 24, and
    /// beside sequences of other requests with other settings joining and leaving, it draws the same tokens.
    /// </summary>
    [Fact]
    public void SamplesDoNotDependOnBatchingOrNeighbours()
    {
        using var checkpoint = Smiles();
        var generator = new SmilesGenerator(checkpoint);
        var options = new SamplingOptions { Temperature = 1.0, TopK = 30, TopP = 0.95, MaxNewTokens = 60 };
        string Key(IReadOnlyList<GeneratedMolecule> ms) => string.Join(' ', ms.Select(m => m.Smiles));
        var alone = generator.Generate(16, options, seed: 42, batchSize: 1, validOnly: false);
        var batched = generator.Generate(16, options, seed: 42, batchSize: 7, validOnly: false);
        Assert.Equal(Key(alone), Key(batched));
        Assert.Equal(alone.Select(m => m.LogLikelihood), batched.Select(m => m.LogLikelihood), (a, b) => Math.Abs(a - b) < 1e-4);
        Assert.NotEqual(Key(alone), Key(generator.Generate(16, options, seed: 43, batchSize: 7, validOnly: false)));
        Assert.True(alone.Select(m => m.Smiles).Distinct().Count() > 8, "different indices draw different molecules");

        // The same sequences through the scheduler directly, interleaved with another request's (other seed and settings).
        using var scheduler = new DecodeScheduler(DecoderNetwork.Of(checkpoint.Model), slots: 5, length: 100, BatchingMode.Continuous, queueCapacity: 64);
        var mine = Enumerable.Range(0, 16).Select(_ => new Collected()).ToArray();
        var other = Enumerable.Range(0, 6).Select(_ => new Collected()).ToArray();
        int[] bos = [checkpoint.Config.BosTokenId];
        var hot = new SamplingOptions { Temperature = 1.5, MaxNewTokens = 20 };
        for (int i = 0; i < 16; i++)
        {
            Assert.True(scheduler.TrySubmit([Job(mine[i], bos, options, 42, i)]));
            if (i < other.Length) Assert.True(scheduler.TrySubmit([Job(other[i], bos, hot, 9, i)]));
            scheduler.Step();
        }
        RunToEnd(scheduler);
        var vocabulary = checkpoint.Vocabulary!;
        Assert.Equal(alone.Select(m => m.Smiles), mine.Select(c => vocabulary.DecodeRaw(c.Tokens.Select(t => (long)t))));
        Assert.Equal(alone.Select(m => m.LogLikelihood), mine.Select(c => c.LogLikelihood), (a, b) => Math.Abs(a - b) < 1e-4);
    }

    /// <summary>
    /// Under the SMILES grammar each row's verdict and draw run on the intra-op threads when a step has many rows: the
    /// molecules and likelihoods must be those drawn one sequence at a time.
    /// </summary>
    [Fact]
    public void GrammarDrawsOfManyRowsAtOnceEqualThoseOfOneAtATime()
    {
        using var checkpoint = Smiles();
        var generator = new SmilesGenerator(checkpoint);
        var options = new SamplingOptions { Temperature = 1.0, MaxNewTokens = 80, Grammar = new BioForge.Tokenizers.SmilesGrammar(checkpoint.Vocabulary!) };
        var alone = generator.Generate(24, options, seed: 5, batchSize: 1, validOnly: false);
        var together = generator.Generate(24, options, seed: 5, batchSize: 24, validOnly: false);
        Assert.Equal(alone.Select(m => m.Smiles), together.Select(m => m.Smiles));
        Assert.Equal(alone.Select(m => m.LogLikelihood), together.Select(m => m.LogLikelihood), (a, b) => Math.Abs(a - b) < 1e-4);
        Assert.True(alone.Select(m => m.Smiles).Distinct().Count() > 12, "different indices draw different molecules");
    }

    /// <summary>A generator that does not check molecules (no RDKit on the machine) samples the same SMILES.</summary>
    [Fact]
    public void SamplesDoNotDependOnCheckingThem()
    {
        using var checkpoint = Smiles();
        var options = new SamplingOptions { Temperature = 1.0, MaxNewTokens = 60 };
        var checkedOnes = new SmilesGenerator(checkpoint).Generate(12, options, seed: 9, batchSize: 6, validOnly: false);
        var sampler = new SmilesGenerator(checkpoint, checkMolecules: false);
        var plain = sampler.Generate(12, options, seed: 9, batchSize: 6, validOnly: false);
        Assert.Equal(checkedOnes.Select(m => m.Smiles), plain.Select(m => m.Smiles));
        Assert.Contains(checkedOnes, m => m.Valid);
        Assert.All(plain, m => Assert.Null(m.Canonical));
        Assert.Throws<ArgumentException>(() => sampler.Generate(2, options, seed: 9, batchSize: 2, validOnly: true));
    }

    [Fact]
    public void LikelihoodsAreTheTeacherForcedOnes()
    {
        using var checkpoint = Smiles();
        var molecules = new SmilesGenerator(checkpoint).Generate(6, new SamplingOptions { Temperature = 1.2, MaxNewTokens = 40 }, 3, 4, validOnly: false);
        var vocabulary = checkpoint.Vocabulary!;
        var sequences = molecules.Select(m => new SampledSequence([.. vocabulary.Encode(m.Smiles)[1..^1].Select(t => (long)t)], m.Finished, m.LogLikelihood)).ToList();
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var expected = Sampling.LogLikelihood(checkpoint.Model, sequences).data<float>().ToArray();
        Assert.Equal(expected.Select(e => (double)e), molecules.Select(m => m.LogLikelihood), (a, b) => Math.Abs(a - b) < 1e-3);
    }

    /// <summary>
    /// Temperature sharpens or flattens the grammar's distribution and never reorders it: top-k 1 is greedy at any
    /// temperature, as in Hugging Face. Token 0 is the end, not allowed yet, its mass shared by the completing token 1:
    /// at T 1 token 2 leads (e² against e⁰ + e¹), but tempered before the sharing, at T 20, token 1 led (1 + e^0.05 against e^0.1).
    /// </summary>
    [Fact]
    public void TemperatureNeverReordersTheGrammarsDistribution()
    {
        var constraint = new TokenConstraint(4, end: 0);
        constraint.Allowed[1] = constraint.Allowed[2] = constraint.Allowed[3] = true;
        constraint.Completing[1] = true;
        float[] logits = [1f, 0f, 2f, 0.5f];
        Assert.Equal(2, SequenceSampler.Draw(logits, new SamplingOptions { Temperature = 0 }, 1, 0, 0, constraint: constraint).Token);
        foreach (double temperature in new[] { 0.01, 1, 20, 100 })
            for (int i = 0; i < 20; i++)
                Assert.Equal(2, SequenceSampler.Draw(logits, new SamplingOptions { Temperature = temperature, TopK = 1 }, 1, i, 0, constraint: constraint).Token);
        // A constraint that allows nothing is refused at any temperature (tempered, −∞ − −∞ made NaN, and the last token was drawn).
        var none = new TokenConstraint(4, end: 0);
        Assert.Contains("the constraint allows no token",
            Assert.Throws<BioForgeException>(() => SequenceSampler.Draw(logits, new SamplingOptions { Temperature = 0.7 }, 1, 0, 0, constraint: none)).Message);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void NonFiniteLogitsAreRefusedNotSampled(float bad)
    {
        // NaN propagated through the softmax used to leave every weight NaN and the draw fell through to the last token.
        var error = Assert.Throws<BioForgeException>(() => SequenceSampler.Draw([0f, bad, 0f, 0f], new SamplingOptions(), 1, 3, 7));
        Assert.Contains("sequence 3, step 7", error.Message);
        Assert.Equal(2, SequenceSampler.Draw([0f, float.NegativeInfinity, 5f, 0f], new SamplingOptions { Temperature = 0 }, 1, 0, 0).Token);
    }

    /// <summary>
    /// The filters by partial ranking pick what a full sort picks, token for token: top-k (ties with the k-th stay),
    /// nucleus (the lower id first among equal values), top alternatives — on vocabularies with ties, −∞ and nuclei
    /// of one token to nearly all (a GPT-2 vocabulary's 50,257 is ranked in part, not sorted, at every draw).
    /// </summary>
    [Fact]
    public void PartialRankingDrawsWhatAFullSortDraws()
    {
        var random = new Random(5);
        for (int trial = 0; trial < 300; trial++)
        {
            int vocabulary = trial % 3 == 0 ? 50_257 : random.Next(2, 400);
            // Coarse values make ties; a few tokens are never drawn; a peaked row has a nucleus of a handful.
            double spread = trial % 2 == 0 ? 3 : 30;
            var scaled = Enumerable.Range(0, vocabulary).Select(_ => random.NextDouble() < 0.05 ? double.NegativeInfinity : Math.Round(random.NextDouble() * spread * 4) / 4).ToArray();
            if (scaled.All(double.IsNegativeInfinity)) scaled[0] = 0;
            double max = scaled.Max(), log = Math.Log(scaled.Sum(v => Math.Exp(v - max)));
            for (int i = 0; i < vocabulary; i++) scaled[i] -= max + log;
            // p just below 1 with top-k: the nucleus is every token top-k kept, its mass a few ulps short of p (looped forever once).
            double topP = (trial % 7) switch { 0 => 1, 1 => Math.BitDecrement(1.0), _ => random.NextDouble() * 0.999 + 0.001 };
            var options = new SamplingOptions { TopK = trial % 4 == 1 || trial % 7 == 1 ? random.Next(1, vocabulary + 2) : 0, TopP = topP };
            double uniform = random.NextDouble();
            Assert.Equal(FullSortSample(scaled, options, uniform), SequenceSampler.Sample(scaled, options, uniform));
            int alternatives = random.Next(1, 6);
            var (order, ranked) = SequenceSampler.RankedFirst(scaled, null, alternatives);
            Assert.Equal(Enumerable.Range(0, vocabulary).Where(i => !double.IsNegativeInfinity(scaled[i])).OrderByDescending(i => scaled[i]).ThenBy(i => i).Take(alternatives),
                order.Take(ranked));
        }
    }

    /// <summary>The sampling rule written with full sorts (the reference the partial ranking must equal).</summary>
    private static int FullSortSample(double[] scaled, SamplingOptions options, double uniform)
    {
        int vocabulary = scaled.Length;
        var keep = scaled.Select(v => !double.IsNegativeInfinity(v)).ToArray();
        int kept = keep.Count(k => k);
        if (options.TopK > 0 && options.TopK < kept)
        {
            double kth = scaled.Where((_, i) => keep[i]).OrderDescending().ElementAt(options.TopK - 1);
            for (int i = 0; i < vocabulary; i++) keep[i] &= scaled[i] >= kth;
        }
        double best = scaled.Where((_, i) => keep[i]).Max();
        var weight = new double[vocabulary];
        double total = 0;
        for (int i = 0; i < vocabulary; i++)
            if (keep[i]) total += weight[i] = Math.Exp(scaled[i] - best);
        if (options.TopP < 1)
        {
            double before = 0, nucleus = 0;
            foreach (int i in Enumerable.Range(0, vocabulary).Where(i => keep[i]).OrderByDescending(i => scaled[i]).ThenBy(i => i).ToArray())
            {
                if (before / total >= options.TopP) keep[i] = false;
                else nucleus += weight[i];
                before += weight[i];
            }
            total = nucleus;
        }
        double target = uniform * total, cumulative = 0;
        int last = -1;
        for (int i = 0; i < vocabulary; i++)
        {
            if (!keep[i]) continue;
            cumulative += weight[i];
            last = i;
            if (cumulative > target) return i;
        }
        return last;
    }

    [Fact]
    public void DrawsFollowTheFilteredDistribution()
    {
        float[] logits = [MathF.Log(0.5f), MathF.Log(0.3f), MathF.Log(0.15f), MathF.Log(0.05f)];
        var counts = new int[4];
        const int draws = 20_000;
        for (int i = 0; i < draws; i++) counts[SequenceSampler.Draw(logits, new SamplingOptions(), 1, i, 0).Token]++;
        Assert.Equal([0.5, 0.3, 0.15, 0.05], counts.Select(c => (double)c / draws), (a, b) => Math.Abs(a - b) < 0.015);

        // top-p 0.7 keeps tokens 0 and 1 (the mass before token 2 is 0.8), renormalised to 5/8 and 3/8.
        Array.Clear(counts);
        for (int i = 0; i < draws; i++) counts[SequenceSampler.Draw(logits, new SamplingOptions { TopP = 0.7 }, 1, i, 0).Token]++;
        Assert.Equal(0, counts[2] + counts[3]);
        Assert.Equal(0.625, (double)counts[0] / draws, 0.015);
        // Four equal tokens and p = 0.5: the smallest set reaching p is two of them (the mass before the third is 0.5).
        Array.Clear(counts);
        for (int i = 0; i < 2_000; i++) counts[SequenceSampler.Draw([0f, 0f, 0f, 0f], new SamplingOptions { TopP = 0.5 }, 1, i, 0).Token]++;
        Assert.Equal(0, counts[2] + counts[3]);
        Array.Clear(counts);
        for (int i = 0; i < draws; i++) counts[SequenceSampler.Draw(logits, new SamplingOptions { TopK = 1 }, 1, i, 0).Token]++;
        Assert.Equal(draws, counts[0]);
        // A constraint draws from the renormalised allowed tokens; with the end token (0) not allowed, its mass goes to the
        // completing token (3): p = (0.15, 0.05 + 0.5) / 0.7 over tokens 2 and 3.
        var constraint = new TokenConstraint(4, end: 0);
        bool[] allowed = [false, false, true, true], completing = [false, false, false, true];
        allowed.CopyTo(constraint.Allowed, 0);
        completing.CopyTo(constraint.Completing, 0);
        Array.Clear(counts);
        for (int i = 0; i < draws; i++) counts[SequenceSampler.Draw(logits, new SamplingOptions(), 1, i, 0, constraint: constraint).Token]++;
        Assert.Equal(0, counts[0] + counts[1]);
        Assert.Equal(0.55 / 0.7, (double)counts[3] / draws, 0.015);
        var constrained = SequenceSampler.Draw(logits, new SamplingOptions { Temperature = 0 }, 1, 0, 0, constraint: constraint);
        Assert.Equal(3, constrained.Token);
        Assert.Equal(Math.Log(0.55 / 0.7), constrained.LogProb, 5);
        var top = SequenceSampler.Draw(logits, new SamplingOptions(), 1, 0, 0, topLogprobs: 2).Top!;
        Assert.Equal([0, 1], top.Select(t => t.Token));
    }

    /// <summary>
    /// The repetition penalty (Hugging Face's: divide a positive logit, multiply a negative one) covers the prompt and the
    /// sample; presence and frequency (OpenAI's: subtracted) only what was generated. They change the draw, not the
    /// log-probability reported.
    /// </summary>
    [Fact]
    public void PenaltiesLowerTheLogitsOfTokensAlreadyThere()
    {
        var history = new TokenHistory([9, 1]); // begin token 9 (not counted), then a prompt token 1
        history.Add(2);
        history.Add(2);
        float[] logits = [2f, -1f, 0.5f, 3f];
        var options = new SamplingOptions { RepetitionPenalty = 2, PresencePenalty = 0.5, FrequencyPenalty = 0.25 };
        Assert.Equal([2f, -2f, 0.5f / 2 - (0.5f + 0.25f * 2), 3f], history.Penalise(logits, options));
        Assert.Equal([2f, -1f, 0.5f, 3f], logits);

        float[] close = [1.0f, 1.1f];
        var repeat = new TokenHistory([9, 1]);
        var plain = SequenceSampler.Draw(close, new SamplingOptions { Temperature = 0 }, 1, 0, 0, history: repeat);
        var penalised = SequenceSampler.Draw(close, new SamplingOptions { Temperature = 0, RepetitionPenalty = 1.2 }, 1, 0, 0, history: repeat);
        Assert.Equal((1, 0), (plain.Token, penalised.Token)); // 1.1 / 1.2 < 1.0
        Assert.Equal(Math.Log(Math.Exp(1.0) / (Math.Exp(1.0) + Math.Exp(1.1))), penalised.LogProb, 5); // the model's own probability

        var counts = new int[2];
        for (int i = 0; i < 20_000; i++) counts[SequenceSampler.Draw(close, new SamplingOptions { PresencePenalty = 2 }, 1, i, 0, history: repeat).Token]++;
        Assert.Equal(Math.Exp(1.1) / (Math.Exp(1.0) + Math.Exp(1.1)), counts[1] / 20_000.0, 0.015); // token 1 is only in the prompt: no presence penalty
    }

    /// <summary>
    /// A request admitted earlier that needs another wave (valid_only's) is not refused by a queue later requests filled,
    /// and is not put behind them: its sequences take the next free slot.
    /// </summary>
    [Fact]
    public void WorkContinuingAnAdmittedRequestIsNeverRefusedAndGoesFirst()
    {
        using var model = Tiny();
        var options = new SamplingOptions { MaxNewTokens = 1000 };
        using var scheduler = new DecodeScheduler(DecoderNetwork.Of(model), slots: 1, length: 64, BatchingMode.Continuous, queueCapacity: 1);
        bool gone = false;
        var running = new Collected();
        var later = new Collected();
        var refused = new Collected();
        var continuing = new Collected();
        Assert.True(scheduler.TrySubmit([Job(running, [1], options, 1, 0, () => gone)]));
        scheduler.Step();
        Assert.True(scheduler.TrySubmit([Job(later, [1], options, 1, 1)]));
        Assert.False(scheduler.TrySubmit([Job(refused, [1], options, 1, 2)]), "one waits already: the queue is full");
        Assert.True(scheduler.TrySubmit([Job(continuing, [1], options, 1, 3)], continuing: true));
        var second = new Collected();
        Assert.True(scheduler.TrySubmit([Job(second, [1], options, 1, 4)], continuing: true));
        Assert.Equal(3, scheduler.Waiting);
        gone = true;
        scheduler.Step();
        Assert.Equal(FinishReason.Cancelled, running.Reason);
        Assert.NotEmpty(continuing.Tokens); // the freed slot went to the first continuing sequence
        Assert.Empty(second.Tokens); // continuing waves keep their order among themselves
        Assert.Empty(later.Tokens);
        RunToEnd(scheduler);
        Assert.NotNull(later.Reason);
        Assert.NotNull(second.Reason);
        Assert.Empty(refused.Tokens);
    }

    [Fact]
    public void CancelledSequencesFreeTheirSlotsAndTheQueueIsBounded()
    {
        using var model = Tiny();
        var options = new SamplingOptions { MaxNewTokens = 1000 };
        using var scheduler = new DecodeScheduler(DecoderNetwork.Of(model), slots: 2, length: 64, BatchingMode.Continuous, queueCapacity: 2);
        bool gone = false;
        var first = new Collected();
        var second = new Collected();
        var third = new Collected();
        Assert.True(scheduler.TrySubmit([Job(first, [1], options, 1, 0, () => gone), Job(second, [1], options, 1, 1)]));
        Assert.False(scheduler.TrySubmit([Job(third, [1], options, 1, 2)]), "2 wait already: the queue is full");
        scheduler.Step();
        Assert.Equal(2, scheduler.Running);
        Assert.True(scheduler.TrySubmit([Job(third, [1], options, 1, 2)]));
        scheduler.Step();
        Assert.Equal(1, scheduler.Waiting);
        gone = true;
        var report = scheduler.Step();
        Assert.Equal(FinishReason.Cancelled, first.Reason);
        Assert.Equal((1, 0), (report.Cancelled, report.Dropped)); // a running sequence stopped (the server's cancelled count), none waiting dropped
        Assert.Equal(0, scheduler.Waiting); // the freed slot went to the third sequence at once
        RunToEnd(scheduler);
        // 64 positions: one for the begin token, so at most 63 drawn tokens; fewer only by an end token.
        Assert.True(second.Reason == FinishReason.Length ? second.Tokens.Count == 63 : second.Reason == FinishReason.Stop && second.Tokens.Count < 63,
            $"{second.Reason} after {second.Tokens.Count} tokens");

        // A prompt one short of the context leaves room for one token: the sequence ends there (one more was drawn, its
        // 65th token past the model's 64 positions, and generate disagreed with the server's max_tokens).
        using var full = new DecodeScheduler(DecoderNetwork.Of(model), slots: 8, length: 64, BatchingMode.Continuous, queueCapacity: 8);
        var lastRoom = Enumerable.Range(0, 8).Select(_ => new Collected()).ToList();
        int[] longPrompt = [1, .. Enumerable.Repeat(5, 62)];
        Assert.True(full.TrySubmit([.. lastRoom.Select((c, i) => Job(c, longPrompt, options, 3, i))]));
        RunToEnd(full);
        Assert.All(lastRoom, c => Assert.True(c.Reason == FinishReason.Length ? c.Tokens.Count == 1 : c.Reason == FinishReason.Stop && c.Tokens.Count == 0,
            $"{c.Reason} after {c.Tokens.Count} tokens"));
        Assert.Contains(lastRoom, c => c.Reason == FinishReason.Length);
    }

    /// <summary>
    /// A sequence whose own work fails (here its token callback) ends alone when its job takes failures; the others draw
    /// what they draw without it. A job that does not take them fails the step, as <c>generate</c> wants.
    /// </summary>
    [Fact]
    public void AFailingSequenceEndsAloneWhenItsJobTakesFailures()
    {
        using var model = Tiny();
        var options = new SamplingOptions { MaxNewTokens = 12 };
        var alone = new Collected();
        using (var solo = new DecodeScheduler(DecoderNetwork.Of(model), slots: 4, length: 64, BatchingMode.Continuous, queueCapacity: 8))
        {
            Assert.True(solo.TrySubmit([Job(alone, [1], options, 5, 0)]));
            RunToEnd(solo);
        }

        Exception? failure = null;
        FinishReason? failedReason = null;
        int drawn = 0;
        SequenceJob Failing(Action<Exception>? onFailed) => new()
        {
            Prompt = [1],
            Options = options,
            Seed = 5,
            Index = 1,
            OnToken = _ => ++drawn < 2 ? true : throw new InvalidOperationException("the client's buffer is gone"),
            OnFinished = (reason, _) => failedReason = reason,
            OnFailed = onFailed,
        };
        var neighbour = new Collected();
        using var scheduler = new DecodeScheduler(DecoderNetwork.Of(model), slots: 4, length: 64, BatchingMode.Continuous, queueCapacity: 8);
        Assert.True(scheduler.TrySubmit([Job(neighbour, [1], options, 5, 0), Failing(e => failure = e)]));
        RunToEnd(scheduler);
        Assert.Equal((FinishReason.Cancelled, "the client's buffer is gone"), (failedReason, failure?.Message));
        Assert.Equal(alone.Tokens, neighbour.Tokens);
        Assert.Equal(alone.Reason, neighbour.Reason);

        drawn = 0;
        Assert.True(scheduler.TrySubmit([Failing(null)]));
        Assert.Equal("the client's buffer is gone", Assert.Throws<InvalidOperationException>(() => RunToEnd(scheduler)).Message);
    }

    /// <summary>Waiting sequences whose client left free their queue places at the next step, while every slot stays busy.</summary>
    [Fact]
    public void CancelledWaitingSequencesGiveTheirQueuePlacesBack()
    {
        using var model = Tiny();
        var options = new SamplingOptions { MaxNewTokens = 1000 };
        using var scheduler = new DecodeScheduler(DecoderNetwork.Of(model), slots: 1, length: 64, BatchingMode.Continuous, queueCapacity: 2);
        var running = new Collected();
        Assert.True(scheduler.TrySubmit([Job(running, [1], options, 1, 0)]));
        scheduler.Step();
        bool gone = false;
        var left = new[] { new Collected(), new Collected() };
        Assert.True(scheduler.TrySubmit([Job(left[0], [1], options, 1, 1, () => gone), Job(left[1], [1], options, 1, 2, () => gone)]));
        Assert.False(scheduler.TrySubmit([Job(new Collected(), [1], options, 1, 3)]));
        gone = true;
        Assert.Equal(2, scheduler.Step().Dropped); // counted as never computed (the server's dropped-requests metric)
        Assert.Equal(1, scheduler.Running);
        Assert.All(left, l => Assert.Equal(FinishReason.Cancelled, l.Reason));
        Assert.True(scheduler.TrySubmit([Job(new Collected(), [1], options, 1, 3), Job(new Collected(), [1], options, 1, 4)]));
    }

    /// <summary>A grammar that works when a job is submitted and fails when it is admitted (memory, say).</summary>
    private sealed class FailingOnSecondStart(int vocabulary) : ITokenGrammar, ITokenGrammarState
    {
        private int starts;
        public string Name => "any";
        public int VocabularySize => vocabulary;
        public string TokenText(int token) => token.ToString(System.Globalization.CultureInfo.InvariantCulture);
        public ITokenGrammarState Start() => ++starts == 2 ? throw new InsufficientExecutionStackException("no memory for the grammar") : this;
        public void Next(Span<bool> allowed, Span<bool> completing) => allowed.Fill(true);
        public void Ending(ReadOnlySpan<bool> allowed, Span<bool> ending) => ending.Clear();
        public void Advance(long token) { }
    }

    /// <summary>
    /// A sequence whose admission fails (taken off the queue, not yet running) is answered: it was in neither place, and its
    /// request waited for its deadline. A job without a failure callback fails the step instead, as in a forward pass.
    /// </summary>
    [Fact]
    public void ASequenceWhoseAdmissionFailsIsAnswered()
    {
        using var model = Tiny();
        var grammar = new FailingOnSecondStart(model.Config.VocabSize);
        var options = new SamplingOptions { MaxNewTokens = 4, Grammar = grammar };
        using var scheduler = new DecodeScheduler(DecoderNetwork.Of(model), slots: 2, length: 64, BatchingMode.Continuous, queueCapacity: 4);
        Exception? failure = null;
        FinishReason? reason = null;
        var job = new SequenceJob
        {
            Prompt = [1, 5],
            Options = options,
            Seed = 1,
            Index = 0,
            OnToken = _ => true,
            OnFinished = (r, _) => reason = r,
            OnFailed = e => failure = e,
        };
        Assert.True(scheduler.TrySubmit([job])); // the first Start: the prompt is checked
        scheduler.Step(); // the second: admission fails
        Assert.Equal((FinishReason.Cancelled, "no memory for the grammar"), (reason, failure?.Message));
        Assert.Equal(0, scheduler.Running);
    }

    /// <summary>After a failed step only the running sequences end (their batch is in an unknown state); a sequence
    /// that was waiting, in no batch, runs to its end in the next steps. A stopping service ends the waiting ones too.</summary>
    [Fact]
    public void AFailedStepCancelsTheRunningSequencesOnly()
    {
        using var model = Tiny();
        var options = new SamplingOptions { MaxNewTokens = 8 };
        using var scheduler = new DecodeScheduler(DecoderNetwork.Of(model), slots: 1, length: 64, BatchingMode.Continuous, queueCapacity: 4);
        var (running, waiting, stopped) = (new Collected(), new Collected(), new Collected());
        Assert.True(scheduler.TrySubmit([Job(running, [1], options, 1, 0)]));
        scheduler.Step();
        Assert.True(scheduler.TrySubmit([Job(waiting, [1], options, 1, 1)]));
        scheduler.CancelRunning();
        Assert.Equal(FinishReason.Cancelled, running.Reason);
        Assert.Null(waiting.Reason);
        RunToEnd(scheduler);
        Assert.NotEqual(FinishReason.Cancelled, waiting.Reason);
        Assert.NotEmpty(waiting.Tokens);

        Assert.True(scheduler.TrySubmit([Job(new Collected(), [1], options, 1, 2)]));
        scheduler.Step();
        Assert.True(scheduler.TrySubmit([Job(stopped, [1], options, 1, 3)]));
        scheduler.CancelRunning(waitingToo: true);
        Assert.Equal(FinishReason.Cancelled, stopped.Reason);
        Assert.False(scheduler.Busy);
    }

    /// <summary>A temperature near 0 or a repetition penalty near 0 stays a distribution (no ∞ − ∞): the draw is the best allowed token.</summary>
    [Fact]
    public void ExtremeSettingsStillDrawAnAllowedToken()
    {
        float[] logits = [5f, 9f, 2f, 7f];
        var constraint = new TokenConstraint(4, end: 0);
        bool[] allowed = [true, false, true, true];
        allowed.CopyTo(constraint.Allowed, 0);
        for (int i = 0; i < 50; i++)
        {
            var draw = SequenceSampler.Draw(logits, new SamplingOptions { Temperature = 1e-310 }, 1, i, 0, constraint: constraint);
            Assert.Equal(3, draw.Token);
            Assert.True(double.IsFinite(draw.LogProb));
        }
        var history = new TokenHistory([9, 2]);
        var penalised = SequenceSampler.Draw(logits, new SamplingOptions { RepetitionPenalty = 1e-46 }, 1, 0, 0, history: history);
        Assert.Equal(2, penalised.Token); // 2 / 1e-46 dwarfs the rest
        Assert.True(double.IsFinite(penalised.LogProb));
    }

    [Fact]
    public void StaticBatchingAdmitsOnlyBetweenBatches()
    {
        using var model = Tiny();
        using var scheduler = new DecodeScheduler(DecoderNetwork.Of(model), slots: 4, length: 64, BatchingMode.Static, queueCapacity: 8);
        var shortOne = new Collected();
        var longOne = new Collected();
        var late = new Collected();
        Assert.True(scheduler.TrySubmit([Job(shortOne, [1], new SamplingOptions { MaxNewTokens = 2 }, 1, 0), Job(longOne, [1], new SamplingOptions { MaxNewTokens = 20 }, 1, 1)]));
        scheduler.Step();
        Assert.True(scheduler.TrySubmit([Job(late, [1], new SamplingOptions { MaxNewTokens = 2 }, 1, 2)]));
        while (longOne.Reason is null)
        {
            scheduler.Step();
            Assert.True(late.Tokens.Count == 0 || longOne.Reason is not null, "a static batch took a newcomer");
        }
        RunToEnd(scheduler);
        Assert.NotNull(late.Reason);
    }

    /// <summary>
    /// Padded batching (Hugging Face's generate): a sequence that ends is answered at once and then computed as padding
    /// until the batch's last one ends; nobody joins before that, and every sequence draws what it draws in a static batch.
    /// </summary>
    [Fact]
    public void PaddedBatchingKeepsEndedRowsAsPaddingAndDrawsWhatStaticDraws()
    {
        using var model = Tiny();
        SamplingOptions Limit(int tokens) => new() { Temperature = 1.0, MaxNewTokens = tokens };
        (Collected Short, Collected Long, Collected Late) Run(BatchingMode mode, Action<DecodeScheduler, DecodeStepReport, Collected, Collected, Collected>? check)
        {
            using var scheduler = new DecodeScheduler(DecoderNetwork.Of(model), slots: 2, length: 64, mode, queueCapacity: 8);
            var (shortOne, longOne, late) = (new Collected(), new Collected(), new Collected());
            Assert.True(scheduler.TrySubmit([Job(shortOne, [1], Limit(2), 3, 0), Job(longOne, [1, 5, 9], Limit(40), 3, 1)]));
            Assert.True(scheduler.TrySubmit([Job(late, [1], Limit(3), 3, 2)]));
            for (int guard = 0; scheduler.Busy; guard++)
            {
                Assert.True(guard < 1000, "the scheduler did not finish");
                var step = scheduler.Step();
                Assert.Equal(step.Tokens, step.Prefilled + step.Decoded - step.Padding);
                check?.Invoke(scheduler, step, shortOne, longOne, late);
            }
            return (shortOne, longOne, late);
        }

        int paddedSteps = 0;
        bool shortEnded = false;
        var padded = Run(BatchingMode.Padded, (scheduler, step, shortOne, longOne, late) =>
        {
            if (longOne.Reason is null)
            {
                Assert.Empty(late.Tokens); // the batch runs to its end first
                Assert.Equal(2, scheduler.Running); // the ended sequence keeps its row
                if (shortEnded)
                {
                    Assert.Equal((2, 1), (step.Decoded, step.Padding));
                    paddedSteps++;
                }
            }
            shortEnded = shortOne.Reason is not null;
        });
        var unpadded = Run(BatchingMode.Static, null);
        Assert.NotNull(padded.Short.Reason); // answered when it ended, not at the batch's end: checked through the steps above
        Assert.True(paddedSteps > 10, $"the ended sequence was padding for {paddedSteps} steps");
        foreach (var (a, b) in new[] { (padded.Short, unpadded.Short), (padded.Long, unpadded.Long), (padded.Late, unpadded.Late) })
        {
            Assert.Equal(b.Tokens, a.Tokens);
            Assert.Equal(b.Reason, a.Reason);
            Assert.Equal(b.LogLikelihood, a.LogLikelihood, 4);
        }
    }

    /// <summary>
    /// Padded batches at their edges: a padding row whose slot fills stops being computed, a live row cancelled beside
    /// padding rows ends the batch when it was the last (no step of padding alone), and stopping the scheduler tells
    /// an ended sequence nothing twice.
    /// </summary>
    [Fact]
    public void PaddedBatchesEndCleanlyAtTheirEdges()
    {
        using var model = Tiny();
        var finishes = new List<(string Name, FinishReason Reason)>();
        var drawn = new Dictionary<string, int>();
        SequenceJob Counted(string name, int[] prompt, int maxTokens, Func<bool>? cancelled = null) => new()
        {
            Prompt = prompt,
            Options = new SamplingOptions { Temperature = 0, MaxNewTokens = maxTokens },
            Seed = 4,
            Index = 0,
            Cancelled = cancelled,
            OnToken = _ =>
            {
                drawn[name] = drawn.GetValueOrDefault(name) + 1;
                return true;
            },
            OnFinished = (reason, _) => finishes.Add((name, reason)),
        };
        string[] Names() => [.. finishes.Select(f => f.Name)];

        // Slots of 8 positions. The first sequence's 6-token prompt is prefilled and it ends at its one token: as padding
        // it fills positions 6 and 7, then its slot is full and only the second (de novo, up to its slot's end) is computed.
        using (var scheduler = new DecodeScheduler(DecoderNetwork.Of(model), slots: 2, length: 8, BatchingMode.Padded, queueCapacity: 4))
        {
            Assert.True(scheduler.TrySubmit([Counted("prompted", [1, 5, 9, 12, 14, 3], 1), Counted("de novo", [1], 100)]));
            var steps = new List<DecodeStepReport>();
            while (scheduler.Busy) steps.Add(scheduler.Step());
            Assert.Equal(["prompted", "de novo"], Names());
            Assert.True(drawn.GetValueOrDefault("de novo") >= 4, $"the de novo sequence ended after {drawn.GetValueOrDefault("de novo")} tokens");
            Assert.Equal(2, steps.Count(step => step.Padding == 1));
            Assert.All(steps.Skip(3), step => Assert.Equal((1, 0), (step.Decoded, step.Padding)));
        }

        // The last live row is cancelled while a padding row remains: the batch ends at that step, and the waiting
        // sequence is admitted in it.
        finishes.Clear();
        bool gone = false;
        using (var scheduler = new DecodeScheduler(DecoderNetwork.Of(model), slots: 2, length: 64, BatchingMode.Padded, queueCapacity: 4))
        {
            Assert.True(scheduler.TrySubmit([Counted("short", [1], 1), Counted("long", [1], 60, () => gone)]));
            scheduler.Step();
            Assert.Equal(1, scheduler.Step().Padding); // the short sequence ended at its one token: padding from now on
            Assert.True(scheduler.TrySubmit([Counted("next", [1], 1)]));
            gone = true;
            var step = scheduler.Step();
            Assert.Equal(("long", FinishReason.Cancelled), finishes[1]);
            Assert.Equal((0, 1), (step.Padding, step.Decoded)); // the newcomer alone, no pass of padding
            Assert.Equal(["short", "long", "next"], Names());

            // Stopping with a padded batch running: the ended sequence is not told again.
            finishes.Clear();
            Assert.True(scheduler.TrySubmit([Counted("a", [1], 1), Counted("b", [1], 60)]));
            scheduler.Step();
            Assert.Equal(2, scheduler.Running);
            scheduler.CancelRunning(waitingToo: true);
            Assert.Equal(["a", "b"], Names());
            Assert.Equal(FinishReason.Cancelled, finishes[1].Reason);
        }
    }
}
