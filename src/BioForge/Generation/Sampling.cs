using BioForge.Models;
using BioForge.Models.Llama;
using BioForge.Runtime;
using BioForge.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.Generation;

public sealed record SamplingOptions
{
    public double Temperature { get; init; } = 1.0;
    /// <summary>Keep only the k most probable tokens (0 = all).</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of tokens whose probability reaches p (1 = all).</summary>
    public double TopP { get; init; } = 1.0;
    public int MaxNewTokens { get; init; } = 128;
    /// <summary>
    /// Tokens a sequence generates before its end token may be drawn (0 = any time; vLLM's <c>min_tokens</c>, Hugging
    /// Face's <c>min_new_tokens</c>): the end is left out of the draw, not of the log-probabilities reported, as the
    /// penalties are. Honoured by <see cref="DecodeScheduler"/> (generate, the server), not by the optimizer's sampler.
    /// </summary>
    public int MinNewTokens { get; init; }
    /// <summary>Constrained decoding: only tokens the grammar allows may come next (null = any token).</summary>
    public ITokenGrammar? Grammar { get; init; }
    /// <summary>
    /// CTRL's repetition penalty as Hugging Face applies it (1 = off): the logit of every token already in the sequence
    /// (prompt or generated) is divided by it when positive and multiplied by it when negative. ProtGPT2 samples with 1.2.
    /// </summary>
    public double RepetitionPenalty { get; init; } = 1.0;
    /// <summary>OpenAI's penalties (0 = off): subtracted from the logit of a token once if it was generated already (presence), and per time it was (frequency).</summary>
    public double PresencePenalty { get; init; }
    public double FrequencyPenalty { get; init; }

    /// <summary>Whether a draw depends on the sequence's earlier tokens (<see cref="RepetitionPenalty"/>, presence, frequency).</summary>
    public bool Penalises => RepetitionPenalty != 1 || PresencePenalty != 0 || FrequencyPenalty != 0;

    /// <summary>
    /// The first setting outside the range every sampler accepts, or null. One rule set for the command line, the
    /// server and the library; each says the problem with its own name for the setting. A NaN is out of every range.
    /// Top-k −1 means all tokens, as 0 does (vLLM's convention).
    /// </summary>
    public SamplingProblem? FirstProblem()
    {
        static string Got(double value) => $"(got {value.ToString(System.Globalization.CultureInfo.InvariantCulture)})";
        if (!(Temperature is >= 0 and <= 100)) // past 100 every allowed token is about as likely as any other
            return new(SamplingSetting.Temperature, $"must be 0 to 100 {Got(Temperature)}");
        if (!(TopP is > 0 and <= 1)) return new(SamplingSetting.TopP, $"must be in (0, 1] {Got(TopP)}");
        if (TopK < -1) return new(SamplingSetting.TopK, $"must be −1 or 0 (all tokens) or positive {Got(TopK)}");
        if (MaxNewTokens < 1) return new(SamplingSetting.MaxNewTokens, $"must be positive {Got(MaxNewTokens)}");
        if (MinNewTokens < 0) return new(SamplingSetting.MinNewTokens, $"must be 0 or more {Got(MinNewTokens)}");
        if (!(RepetitionPenalty > 0) || double.IsInfinity(RepetitionPenalty))
            return new(SamplingSetting.RepetitionPenalty, $"must be positive {Got(RepetitionPenalty)}");
        if (!(PresencePenalty is >= -2 and <= 2)) return new(SamplingSetting.PresencePenalty, $"must be −2 to 2 {Got(PresencePenalty)}");
        if (!(FrequencyPenalty is >= -2 and <= 2)) return new(SamplingSetting.FrequencyPenalty, $"must be −2 to 2 {Got(FrequencyPenalty)}");
        return null;
    }

    /// <summary>Throws the first problem (<see cref="FirstProblem"/>) named as Hugging Face names the setting.</summary>
    public void Validate()
    {
        if (FirstProblem() is { } problem) throw new BioForgeException($"{problem.Setting switch
        {
            SamplingSetting.Temperature => "temperature",
            SamplingSetting.TopP => "top_p",
            SamplingSetting.TopK => "top_k",
            SamplingSetting.MaxNewTokens => "max_new_tokens",
            SamplingSetting.MinNewTokens => "min_new_tokens",
            SamplingSetting.RepetitionPenalty => "repetition_penalty",
            SamplingSetting.PresencePenalty => "presence_penalty",
            _ => "frequency_penalty",
        }} {problem.Problem}");
    }
}

/// <summary>The settings of <see cref="SamplingOptions"/> a range applies to.</summary>
public enum SamplingSetting { Temperature, TopP, TopK, MaxNewTokens, MinNewTokens, RepetitionPenalty, PresencePenalty, FrequencyPenalty }

/// <summary>A sampling setting out of its range and what is wrong with it ("must be 0 to 100 (got 120)").</summary>
public sealed record SamplingProblem(SamplingSetting Setting, string Problem);

/// <summary>
/// A sampled sequence: tokens after the begin token, up to (not including) end-of-sequence; whether it ended; and its
/// log-likelihood under the model at temperature 1 (the sum over generated tokens, end token included), which
/// policy-gradient methods such as REINVENT need.
/// </summary>
public sealed record SampledSequence(long[] Tokens, bool Finished, double LogLikelihood);

/// <summary>
/// Batch sampling from a Llama decoder with one generator for the batch, keeping what policy-gradient training needs
/// (the optimizer's agent samples and is trained through <see cref="LogLikelihood"/>). Serving and <c>generate</c>
/// sample through <see cref="DecodeScheduler"/> instead: per-sequence randomness, penalties and continuous batching.
/// </summary>
public static class Sampling
{
    /// <summary>
    /// The generator <see cref="Sample"/> draws from. Always a host (CPU) generator: TorchSharp's generator constructor
    /// ignores its device argument, and CUDA's multinomial refuses a CPU generator, so the draws are made on the host
    /// from host probabilities — which also makes one seed give the same tokens on CPU and GPU.
    /// </summary>
    public static Generator CreateGenerator(ulong seed) => new(seed, CPU);

    /// <summary>
    /// Samples <paramref name="count"/> sequences in one batch, decoding with a key/value cache; finished sequences
    /// leave the batch. The model runs on its device; each step's token is drawn on the host from
    /// <paramref name="generator"/> (see <see cref="CreateGenerator"/>), so a seed reproduces whatever the device.
    /// </summary>
    /// <param name="prompts">Per sequence, tokens it must start with (without the begin token; null or empty: none).
    /// They are fed one per step in the same batch, as if drawn, so prompts of any lengths share one decode; a
    /// sequence's log-likelihood then includes its prompt's, and the generator is drawn from as without prompts.</param>
    public static IReadOnlyList<SampledSequence> Sample(LlamaForCausalLM model, int count, SamplingOptions options, Generator generator,
        IReadOnlyList<long[]?>? prompts = null)
    {
        if (count < 1) throw new BioForgeException($"number of samples must be positive (got {count})");
        // Policy-gradient training (REINVENT) needs a random draw at a positive temperature; greedy decoding and the
        // penalties are DecodeScheduler's (generate, the completions service).
        options.Validate();
        if (options.Temperature == 0) throw new BioForgeException("temperature must be positive: policy-gradient training needs a random draw (got 0)");
        if (options.Penalises) throw new ArgumentException("repetition, presence and frequency penalties are applied by DecodeScheduler, not here", nameof(options));
        if (prompts is not null && prompts.Count != count) throw new ArgumentException($"{prompts.Count} prompts for {count} sequences", nameof(prompts));
        var config = model.Config;
        var device = model.parameters().First().device;
        var tokens = Enumerable.Range(0, count).Select(_ => new List<long>()).ToArray();
        var logLikelihood = new double[count];
        var finished = new bool[count];
        var alive = Enumerable.Range(0, count).ToList();
        var grammar = options.Grammar is { } g ? new GrammarMask(g, config, count) : null;

        using var _ = no_grad();
        using var cache = new KeyValueCache(config.NumHiddenLayers);
        var next = ScalarArithmetic.Filled([count, 1], config.BosTokenId, ScalarType.Int64, device).DetachFromDisposeScope();
        try
        {
            for (int step = 0; step < options.MaxNewTokens && alive.Count > 0; step++)
            {
                using var scope = NewDisposeScope();
                var mask = ones(alive.Count, cache.Length + 1, ScalarType.Int64, device);
                var logits = model.Forward(next, mask, cache: cache).Logits.select(1, -1).to(ScalarType.Float32);
                var masks = grammar?.Next(alive, device);
                Tensor Distribution(Tensor l) => masks is null ? l.log_softmax(-1) : GrammarMask.LogProbabilities(l, masks);
                var logProbs = Distribution(logits);
                // Tempered after the grammar shared the end's mass, as SequenceSampler does (temperature never reorders
                // the constrained distribution), and shifted by the row's best first so a tiny temperature cannot overflow.
                var tempered = options.Temperature == 1 ? logProbs : (logProbs - logProbs.max(-1, keepdim: true).values).Div(options.Temperature).log_softmax(-1);
                // [rows, vocabulary] crosses to the host once per token: small next to the forward pass.
                var probabilities = Filter(tempered, options).softmax(-1).cpu();
                var drawn = multinomial(probabilities, 1, false, generator);
                var chosen = drawn.to(device);
                var chosenTokens = drawn.squeeze(1).data<long>().ToArray();
                if (prompts is not null && ForcePrompts(prompts, alive, step, chosenTokens)) chosen = tensor(chosenTokens).unsqueeze(1).to(device);
                var chosenLogProbs = logProbs.gather(1, chosen).squeeze(1).cpu().data<float>().ToArray();

                var stillAlive = new List<int>();
                var keep = new List<long>();
                for (int r = 0; r < alive.Count; r++)
                {
                    int row = alive[r];
                    logLikelihood[row] += chosenLogProbs[r];
                    grammar?.Advance(row, chosenTokens[r]);
                    if (chosenTokens[r] == config.EosTokenId)
                    {
                        finished[row] = true;
                        continue;
                    }
                    tokens[row].Add(chosenTokens[r]);
                    stillAlive.Add(row);
                    keep.Add(r);
                }
                if (stillAlive.Count == 0) break;
                using var rows = tensor(keep.ToArray()).to(device);
                if (stillAlive.Count < alive.Count) cache.Select(rows);
                var following = chosen.index_select(0, rows).DetachFromDisposeScope();
                next.Dispose();
                next = following;
                alive = stillAlive;
            }
        }
        finally
        {
            next.Dispose();
        }
        return Enumerable.Range(0, count).Select(i => new SampledSequence([.. tokens[i]], finished[i], logLikelihood[i])).ToList();
    }

    /// <summary>Replaces the drawn token of each row still inside its prompt with the prompt's; true when any was.</summary>
    private static bool ForcePrompts(IReadOnlyList<long[]?> prompts, List<int> alive, int step, long[] chosenTokens)
    {
        bool forced = false;
        for (int r = 0; r < alive.Count; r++)
        {
            if (prompts[alive[r]] is not { } prompt || step >= prompt.Length) continue;
            chosenTokens[r] = prompt[step];
            forced = true;
        }
        return forced;
    }

    /// <summary>
    /// The log-likelihood of each token sequence under <paramref name="model"/> at temperature 1, as <see cref="Sample"/>
    /// accumulates it: log p of every token after the begin token, plus the end token for finished sequences. Keeps
    /// the autograd graph (REINVENT trains the agent through it): returns a [N] float32 tensor.
    /// </summary>
    /// <param name="grammar">The grammar the sequences were sampled under (as in <see cref="SamplingOptions.Grammar"/>):
    /// the likelihood is then that of the constrained distribution. A token the grammar would not have allowed keeps the
    /// model's own probability rather than −∞.</param>
    public static Tensor LogLikelihood(LlamaForCausalLM model, IReadOnlyList<SampledSequence> sequences, ITokenGrammar? grammar = null)
    {
        if (sequences.Count <= LikelihoodChunk) return PaddedLogLikelihood(model, sequences, grammar);
        // Sequences of similar length together: one batch padded to its longest member (often twice the mean SMILES)
        // pays for the padding in every layer, and attention pays for it squared.
        int[] order = [.. Enumerable.Range(0, sequences.Count).OrderBy(i => sequences[i].Tokens.Length)];
        var parts = new List<Tensor>();
        for (int start = 0; start < order.Length; start += LikelihoodChunk)
            parts.Add(PaddedLogLikelihood(model, [.. order.Skip(start).Take(LikelihoodChunk).Select(i => sequences[i])], grammar));
        var inverse = new long[order.Length];
        for (int k = 0; k < order.Length; k++) inverse[order[k]] = k;
        var sorted = cat(parts, 0);
        return sorted.index_select(0, tensor(inverse).to(sorted.device));
    }

    /// <summary>Sequences per pass of <see cref="LogLikelihood"/> (sorted by length first).</summary>
    private const int LikelihoodChunk = 32;

    private static Tensor PaddedLogLikelihood(LlamaForCausalLM model, IReadOnlyList<SampledSequence> sequences, ITokenGrammar? grammar)
    {
        var config = model.Config;
        var device = model.parameters().First().device;
        int width = sequences.Max(s => s.Tokens.Length + (s.Finished ? 1 : 0)) + 1;
        var inputs = new long[sequences.Count * width];
        var targets = new long[inputs.Length];
        var mask = new long[inputs.Length];
        var scored = new float[inputs.Length];
        Array.Fill(inputs, config.PadTokenId);
        for (int b = 0; b < sequences.Count; b++)
        {
            var s = sequences[b];
            long[] full = [config.BosTokenId, .. s.Tokens, .. s.Finished ? new long[] { config.EosTokenId } : []];
            for (int t = 0; t < full.Length; t++)
            {
                inputs[b * width + t] = full[t];
                mask[b * width + t] = 1;
                if (t + 1 < full.Length)
                {
                    targets[b * width + t] = full[t + 1];
                    scored[b * width + t] = 1;
                }
            }
        }
        long[] shape = [sequences.Count, width];
        var logits = model.Forward(tensor(inputs, shape).to(device), tensor(mask, shape).to(device)).Logits.to(ScalarType.Float32);
        var all = grammar is null ? logits.log_softmax(-1) : GrammarMask.LogProbabilities(logits, GrammarMask.ForSequences(grammar, sequences, config, width, device));
        var logProbs = all.gather(2, tensor(targets, shape).to(device).unsqueeze(2)).squeeze(2);
        return (logProbs * tensor(scored, shape).to(device)).sum(1);
    }

    /// <summary>Sets the logits outside the top-k / top-p (nucleus) sets to −∞.</summary>
    private static Tensor Filter(Tensor logits, SamplingOptions options)
    {
        if (options.TopK > 0 && options.TopK < logits.shape[1])
        {
            var kth = logits.topk(options.TopK, dim: 1).values.select(1, -1).unsqueeze(1);
            logits = logits.MaskedFill(logits.lt(kth), double.NegativeInfinity);
        }
        if (options.TopP < 1)
        {
            var (sorted, order) = logits.sort(dim: 1, descending: true);
            var probs = sorted.softmax(-1);
            var before = probs.cumsum(1) - probs; // probability mass of the better tokens
            using var topP = options.TopP.ToScalar();
            var dropSorted = before.ge(topP); // the smallest set whose mass reaches p
            var drop = zeros_like(dropSorted).scatter(1, order, dropSorted);
            logits = logits.MaskedFill(drop, double.NegativeInfinity);
        }
        return logits;
    }

    /// <summary>
    /// Each sequence's grammar state and the masks of its next token: log p'(t) = log p(t) over the allowed tokens (the
    /// end token kept in the normalisation), plus an equal share of p(end) on the completing tokens while the end is
    /// not allowed.
    /// </summary>
    private sealed class GrammarMask
    {
        private readonly ITokenGrammarState[] states;
        private readonly int vocabulary, end;

        public GrammarMask(ITokenGrammar grammar, LlamaConfig config, int count)
        {
            Check(grammar, config);
            vocabulary = config.VocabSize;
            end = (int)config.EosTokenId;
            states = [.. Enumerable.Range(0, count).Select(_ => grammar.Start())];
        }

        private static void Check(ITokenGrammar grammar, LlamaConfig config)
        {
            if (grammar.VocabularySize != config.VocabSize)
                throw new BioForgeException($"the grammar covers {grammar.VocabularySize} tokens but the model has {config.VocabSize}") { ServerFault = true };
        }

        /// <summary>Host arrays of <see cref="Masks"/> for a set of positions, filled one position at a time.</summary>
        private sealed class Builder(int positions, int vocabulary, int end)
        {
            public readonly float[] Normalising = new float[positions * vocabulary], Final = new float[positions * vocabulary];
            public readonly bool[] Completing = new bool[positions * vocabulary];
            private readonly bool[] allowed = new bool[vocabulary], completing = new bool[vocabulary];

            /// <param name="forced">A token that must keep its probability (a given sequence the grammar is stricter than).</param>
            public void Fill(int position, ITokenGrammarState state, long forced = -1)
            {
                state.Next(allowed, completing);
                if (forced >= 0 && !allowed[forced]) allowed[forced] = true;
                if (!allowed.Contains(true)) throw new InvalidOperationException("the grammar allows no next token: it has a dead end");
                int offset = position * vocabulary;
                bool moveEnd = !allowed[end] && completing.Contains(true);
                for (int t = 0; t < vocabulary; t++)
                {
                    bool keep = allowed[t] || (t == end && moveEnd);
                    Normalising[offset + t] = keep ? 0 : float.NegativeInfinity;
                    Final[offset + t] = allowed[t] ? 0 : float.NegativeInfinity;
                    Completing[offset + t] = moveEnd && allowed[t] && completing[t];
                }
            }

            public Masks ToTensors(long[] shape, Device device) =>
                new(tensor(Normalising, shape).to(device), tensor(Final, shape).to(device), tensor(Completing, shape).to(device), end);
        }

        /// <param name="Completing">Bool: the tokens that share the end token's probability at a position.</param>
        public sealed record Masks(Tensor Normalising, Tensor Final, Tensor Completing, int End);

        public Masks Next(IReadOnlyList<int> rows, Device device)
        {
            var builder = new Builder(rows.Count, vocabulary, end);
            for (int r = 0; r < rows.Count; r++) builder.Fill(r, states[rows[r]]);
            return builder.ToTensors([rows.Count, vocabulary], device);
        }

        public void Advance(int row, long token) => states[row].Advance(token);

        /// <summary>[N, width, vocabulary]: position t masks the token after it, as sampling did.</summary>
        public static Masks ForSequences(ITokenGrammar grammar, IReadOnlyList<SampledSequence> sequences, LlamaConfig config, int width, Device device)
        {
            Check(grammar, config);
            int vocabulary = config.VocabSize;
            var builder = new Builder(sequences.Count * width, vocabulary, (int)config.EosTokenId);
            for (int b = 0; b < sequences.Count; b++)
            {
                var s = sequences[b];
                var state = grammar.Start();
                long[] targets = [.. s.Tokens, .. s.Finished ? new long[] { config.EosTokenId } : []];
                for (int t = 0; t < targets.Length; t++)
                {
                    builder.Fill(b * width + t, state, targets[t]);
                    state.Advance(targets[t]);
                }
            }
            return builder.ToTensors([sequences.Count, width, vocabulary], device);
        }

        /// <summary>Log-probabilities of the constrained distribution (any leading shape, vocabulary last).</summary>
        public static Tensor LogProbabilities(Tensor logits, Masks masks)
        {
            var logProbs = logits.Plus(masks.Normalising).log_softmax(-1);
            var shares = masks.Completing.to(ScalarType.Float32).sum(-1, keepdim: true).ClampMin(1);
            var share = logProbs.narrow(-1, masks.End, 1) - shares.log();
            // logaddexp(−∞, −∞) has a NaN gradient, and where() passes the unchosen branch's gradient on multiplied by 0,
            // still NaN: the agent's weights became NaN after one update. Only completing tokens (finite on both sides) go through it.
            using var zero = zeros(1, dtype: logProbs.dtype, device: logProbs.device);
            var completed = where(masks.Completing, logProbs, zero).logaddexp(where(masks.Completing, share, zero));
            return where(masks.Completing, completed, logProbs).Plus(masks.Final);
        }
    }
}
