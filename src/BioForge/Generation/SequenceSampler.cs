using System.Buffers;
using BioForge.Runtime;
using BioForge.Tokenizers;

namespace BioForge.Generation;

/// <summary>One drawn token, its log-probability at temperature 1, and (when asked for) the most probable alternatives.</summary>
public readonly record struct TokenDraw(int Token, double LogProb, (int Token, double LogProb)[]? Top);

/// <summary>
/// A grammar's verdict on one sequence's next token (see <see cref="ITokenGrammarState.Next"/>): the tokens allowed, the
/// completing ones that share the end token's probability while the end is not allowed, and the ending ones after which
/// only ')' and the end may follow (<see cref="ITokenGrammarState.Ending"/>). Host arrays, refilled at every step.
/// </summary>
public sealed class TokenConstraint(int vocabulary, int end)
{
    private readonly bool[] ending = new bool[vocabulary];
    private ITokenGrammarState? state;
    private bool endingFilled;

    public bool[] Allowed { get; } = new bool[vocabulary];
    public bool[] Completing { get; } = new bool[vocabulary];
    public int End { get; } = end;

    /// <summary>Filled when first asked for at a step: only a minimum length needs them, and they cost a lookahead.</summary>
    public bool[] Ending
    {
        get
        {
            // A constraint filled by hand (no grammar state) marks none.
            if (!endingFilled) state?.Ending(Allowed, ending);
            endingFilled = true;
            return ending;
        }
    }

    public void Fill(ITokenGrammarState state)
    {
        state.Next(Allowed, Completing);
        if (!Allowed.Contains(true)) throw new InvalidOperationException("the grammar allows no next token: it has a dead end");
        this.state = state;
        endingFilled = false;
    }
}

/// <summary>
/// A sequence's tokens so far, for the repetition penalties (<see cref="SamplingOptions.Penalises"/>): which tokens it
/// holds (its prompt after the begin token, and what it generated) and how often it generated each.
/// </summary>
public sealed class TokenHistory
{
    private readonly HashSet<int> present = [];
    private readonly Dictionary<int, int> generated = [];

    /// <param name="prompt">The prompt, begin token first (the begin token is not counted).</param>
    public TokenHistory(ReadOnlySpan<int> prompt)
    {
        for (int i = 1; i < prompt.Length; i++) present.Add(prompt[i]);
    }

    public void Add(int token)
    {
        present.Add(token);
        generated[token] = generated.GetValueOrDefault(token) + 1;
    }

    /// <summary>The logits with the penalties applied: repetition (Hugging Face's order: before temperature), then presence and frequency.</summary>
    public float[] Penalise(ReadOnlySpan<float> logits, SamplingOptions options)
    {
        var penalised = logits.ToArray();
        if (options.RepetitionPenalty != 1)
        {
            double factor = options.RepetitionPenalty;
            // In double, then held to float's range: a penalty near 0 makes a repeat all but certain, not infinite.
            foreach (int t in present)
                if (t < penalised.Length)
                    penalised[t] = (float)Math.Clamp(penalised[t] < 0 ? penalised[t] * factor : penalised[t] / factor, float.MinValue, float.MaxValue);
        }
        foreach (var (t, count) in generated)
            if (t < penalised.Length) penalised[t] -= (float)(options.PresencePenalty + options.FrequencyPenalty * count);
        return penalised;
    }
}

/// <summary>
/// Draws each sequence's tokens from randomness of its own: the uniform number of sequence <c>index</c> at step
/// <c>step</c> is <see cref="StatelessRandom"/>(seed, index, step), turned into a token by the inverse of the cumulative
/// distribution over the filtered probabilities (temperature, top-k, top-p) in vocabulary order. A sequence's tokens
/// therefore depend on its logits alone, not on which other sequences share its batch, the batch size, or the device.
/// Under a <see cref="TokenConstraint"/> the distribution is the one <see cref="Sampling"/> samples and scores
/// (renormalised over the allowed tokens, the end token's share moved to the completing ones). Runs on the host over
/// one row of float32 logits.
/// </summary>
internal static class SequenceSampler
{
    /// <summary>The draw of step <paramref name="step"/> of sequence <paramref name="index"/>; temperature 0 takes the most probable token.</summary>
    /// <param name="constraint">When given, only the tokens it allows may be drawn, and log-probabilities are those of the constrained distribution.</param>
    /// <param name="history">The sequence's tokens so far, when <paramref name="options"/> penalise repeats. The penalties change
    /// what is drawn, like temperature, not the log-probabilities reported (the model's, at temperature 1).</param>
    /// <param name="end">The end token, which is not drawn before <see cref="SamplingOptions.MinNewTokens"/> tokens (unless nothing
    /// else may come: a grammar that allows only the end ends the sequence); −1: none known.</param>
    public static TokenDraw Draw(ReadOnlySpan<float> logits, SamplingOptions options, ulong seed, long index, long step, int topLogprobs = 0,
        TokenConstraint? constraint = null, TokenHistory? history = null, int end = -1)
    {
        foreach (float logit in logits)
            if (float.IsNaN(logit) || float.IsPositiveInfinity(logit))
                throw new BioForgeException($"sequence {index}, step {step}: the model's logits hold {logit} (corrupt weights or an overflow in reduced precision); nothing can be drawn from them") { ServerFault = true };
        var logProbs = LogProbabilities(logits, constraint);
        float[]? penalised = options.Penalises && history is not null ? history.Penalise(logits, options) : null;
        var drawn = penalised is null ? logProbs : LogProbabilities(penalised, constraint);
        // Held whether or not the grammar allows the end now: where it does not, its mass would go to the tokens that
        // close the molecule (a ring bond, a branch's end), pushing it to a close it may not take.
        if (end >= 0 && end < logits.Length && step < options.MinNewTokens)
        {
            var held = penalised ?? logits.ToArray();
            held[end] = float.NegativeInfinity;
            if (Drawable(held, constraint) is { } withoutEnd)
            {
                drawn = withoutEnd;
                // A token after which only ')' and the end may follow (a last atom with no valence left) ends the sequence
                // soon: held as well while one more token would still be too short, unless nothing else may come.
                if (constraint is not null && step + 1 < options.MinNewTokens)
                {
                    var ending = constraint.Ending;
                    for (int t = 0; t < held.Length; t++)
                        if (ending[t]) held[t] = float.NegativeInfinity;
                    drawn = Drawable(held, constraint) ?? drawn;
                }
            }
        }
        int token = options.Temperature == 0
            ? Greedy(drawn)
            : Sample(Tempered(drawn, options.Temperature), options, StatelessRandom.Unit(seed, index, step));
        if (token < 0) throw new BioForgeException($"sequence {index}, step {step}: the constraint allows no token") { ServerFault = true };
        (int, double)[]? top = null;
        if (topLogprobs > 0)
        {
            var (order, count) = RankedFirst(logProbs, null, topLogprobs);
            top = [.. order.Take(count).Select(i => (i, logProbs[i]))];
        }
        return new TokenDraw(token, logProbs[token], top);
    }

    /// <summary>The log-probabilities of <paramref name="logits"/>, or null when no token is left to draw.</summary>
    private static double[]? Drawable(ReadOnlySpan<float> logits, TokenConstraint? constraint)
    {
        var logProbs = LogProbabilities(logits, constraint);
        return logProbs.Any(v => !double.IsNegativeInfinity(v)) ? logProbs : null;
    }

    /// <summary>log p(t) of the logits, −∞ for the tokens the constraint does not allow.</summary>
    private static double[] LogProbabilities(ReadOnlySpan<float> logits, TokenConstraint? constraint)
    {
        int vocabulary = logits.Length;
        var allowed = constraint?.Allowed;
        var completing = constraint?.Completing;
        int end = constraint?.End ?? -1;
        // While the end is not allowed but closing tokens exist, the end stays in the normalisation and its mass is shared among them.
        bool moveEnd = constraint is not null && !allowed![end] && Enumerable.Range(0, vocabulary).Any(t => allowed[t] && completing![t]);
        var values = new double[vocabulary];
        double max = double.NegativeInfinity;
        for (int t = 0; t < vocabulary; t++)
            if (allowed is null || allowed[t] || (t == end && moveEnd)) max = Math.Max(max, logits[t]);
        if (double.IsNegativeInfinity(max))
        {
            Array.Fill(values, double.NegativeInfinity);
            return values;
        }
        for (int t = 0; t < vocabulary; t++)
            values[t] = allowed is null || allowed[t] || (t == end && moveEnd) ? logits[t] - max : double.NegativeInfinity;
        Normalize(values);
        if (moveEnd)
        {
            int shares = Enumerable.Range(0, vocabulary).Count(t => allowed![t] && completing![t]);
            double share = Math.Exp(values[end]) / shares;
            for (int t = 0; t < vocabulary; t++)
                if (allowed![t] && completing![t]) values[t] = Math.Log(Math.Exp(values[t]) + share);
            values[end] = double.NegativeInfinity;
        }
        return values;
    }

    /// <summary>
    /// The distribution p^(1/T), renormalised: tempered after the constraint shared the end's mass, so temperature only
    /// sharpens or flattens the constrained distribution and never reorders it (top-k 1 stays greedy at any T; tempered
    /// first, a high T gave the completing tokens the end's large share and ring closures ranked first).
    /// </summary>
    private static double[] Tempered(double[] logProbs, double temperature)
    {
        double max = logProbs.Max();
        // Nothing allowed (all −∞) stays so, and the draw refuses it; −∞ − −∞ would be NaN.
        if (temperature == 1 || double.IsNegativeInfinity(max)) return logProbs;
        // Shifted before scaling: a tiny temperature sends the others to −∞, never the best to +∞ (∞ − ∞ would be NaN).
        var values = logProbs.Select(v => (v - max) / temperature).ToArray();
        Normalize(values);
        return values;
    }

    /// <summary>Subtracts log Σ exp over <paramref name="values"/> (the largest of which is 0, or close).</summary>
    private static void Normalize(double[] values)
    {
        double sum = 0;
        foreach (double v in values) sum += Math.Exp(v);
        double normalizer = Math.Log(sum);
        for (int t = 0; t < values.Length; t++) values[t] -= normalizer;
    }

    private static int Greedy(double[] logProbs)
    {
        int best = -1;
        for (int i = 0; i < logProbs.Length; i++)
            if (!double.IsNegativeInfinity(logProbs[i]) && (best < 0 || logProbs[i] > logProbs[best])) best = i;
        return best;
    }

    /// <param name="scaled">Log-probabilities at the sampling temperature (−∞: never drawn).</param>
    internal static int Sample(double[] scaled, SamplingOptions options, double uniform)
    {
        int vocabulary = scaled.Length;
        var keep = new bool[vocabulary];
        int kept = 0;
        for (int i = 0; i < vocabulary; i++)
        {
            keep[i] = !double.IsNegativeInfinity(scaled[i]);
            if (keep[i]) kept++;
        }
        if (kept == 0) return -1;
        // Pooled: a GPT-2 row is 50,257 tokens, and arrays that size would each be a large-object allocation per draw.
        var weight = ArrayPool<double>.Shared.Rent(vocabulary);
        var ranking = options.TopK > 0 || options.TopP < 1 ? ArrayPool<int>.Shared.Rent(vocabulary) : null;
        try
        {
            return Filtered(scaled, keep, kept, weight, ranking, options, uniform);
        }
        finally
        {
            ArrayPool<double>.Shared.Return(weight);
            if (ranking is not null) ArrayPool<int>.Shared.Return(ranking);
        }
    }

    /// <param name="weight">Scratch of at least the vocabulary's length (read only where written).</param>
    /// <param name="ranking">Scratch for <see cref="RankedFirst"/> when top-k or top-p filter.</param>
    private static int Filtered(double[] scaled, bool[] keep, int kept, double[] weight, int[]? ranking, SamplingOptions options, double uniform)
    {
        int vocabulary = scaled.Length;
        if (options.TopK > 0 && options.TopK < kept)
        {
            // Ties with the k-th value stay in, as Sampling's tensor filter keeps them.
            var (order, _) = RankedFirst(scaled, keep, options.TopK, ranking);
            double kth = scaled[order[options.TopK - 1]];
            for (int i = 0; i < vocabulary; i++) keep[i] &= scaled[i] >= kth;
        }
        double best = double.NegativeInfinity;
        for (int i = 0; i < vocabulary; i++)
            if (keep[i]) best = Math.Max(best, scaled[i]);
        double total = 0;
        for (int i = 0; i < vocabulary; i++)
            if (keep[i]) total += weight[i] = Math.Exp(scaled[i] - best);
        if (options.TopP < 1)
        {
            // Nucleus: a token stays when the mass of the tokens before it (more probable, or equal and earlier) is below p,
            // so the set is the smallest whose mass reaches p (Hugging Face's rule, ties included). The set is a prefix of
            // that order: only as much of it is ranked as the walk reaches (a GPT-2 vocabulary is 50,257 tokens; the
            // nucleus is usually a few dozen), in rounds of four times more.
            double before = 0, nucleus = 0;
            int walked = 0;
            for (int wanted = 64; ; wanted = (int)Math.Min(4L * wanted, int.MaxValue))
            {
                var (order, ranked) = RankedFirst(scaled, keep, wanted, ranking);
                for (; walked < ranked && before / total < options.TopP; walked++)
                {
                    nucleus += weight[order[walked]];
                    before += weight[order[walked]];
                }
                // Done when the walk stopped, or every token still eligible is ranked (fewer than wanted): summed in
                // another order than total, the mass can end a few ulps short of a p just below 1.
                if (walked < ranked || ranked < wanted || before / total >= options.TopP)
                {
                    var inside = new bool[vocabulary];
                    for (int r = 0; r < walked; r++) inside[order[r]] = true;
                    keep = inside;
                    break;
                }
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
        return last; // rounding left the target at the very top
    }

    /// <summary>
    /// The first <paramref name="count"/> tokens (or all, when fewer are eligible) in the order of <paramref name="values"/>
    /// from the highest, the lower id first among equal values: the eligible ids (<paramref name="eligible"/>, or every
    /// finite value) are partitioned around that rank (quickselect) and only the front is sorted, so ranking a few of
    /// 50,257 tokens costs a pass over them, not a sort.
    /// </summary>
    /// <param name="into">Where the order is written (at least as long as <paramref name="values"/>); a new array when null.</param>
    internal static (int[] Order, int Ranked) RankedFirst(double[] values, bool[]? eligible, int count, int[]? into = null)
    {
        var ids = into ?? new int[values.Length];
        int n = 0;
        for (int i = 0; i < values.Length; i++)
            if (eligible?[i] ?? !double.IsNegativeInfinity(values[i])) ids[n++] = i;
        int m = Math.Min(count, n);
        bool Before(int a, int b) => values[a] > values[b] || (values[a] == values[b] && a < b);
        int low = 0, high = n - 1;
        while (m < n && low < high)
        {
            // Hoare partition of ids[low..high] around its middle element; afterwards the first m are ranked before the rest.
            int pivot = ids[low + ((high - low) >> 1)], i = low, j = high;
            while (i <= j)
            {
                while (Before(ids[i], pivot)) i++;
                while (Before(pivot, ids[j])) j--;
                if (i <= j) (ids[i], ids[j], i, j) = (ids[j], ids[i], i + 1, j - 1);
            }
            if (m - 1 <= j) high = j;
            else if (m - 1 >= i) low = i;
            else break;
        }
        Array.Sort(ids, 0, m, Comparer<int>.Create((a, b) => a == b ? 0 : Before(a, b) ? -1 : 1));
        return (ids, m);
    }
}
