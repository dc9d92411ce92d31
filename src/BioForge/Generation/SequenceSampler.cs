using BioForge.Models.Llama;
using BioForge.Training;

namespace BioForge.Generation;

/// <summary>One drawn token, its log-probability at temperature 1, and (when asked for) the most probable alternatives.</summary>
public readonly record struct TokenDraw(int Token, double LogProb, (int Token, double LogProb)[]? Top);

/// <summary>
/// Draws each sequence's tokens from randomness of its own: the uniform number of sequence <c>index</c> at step
/// <c>step</c> is <see cref="StatelessRandom"/>(seed, index, step), turned into a token by the inverse of the cumulative
/// distribution over the filtered probabilities (temperature, top-k, top-p) in vocabulary order. A sequence's tokens
/// therefore depend on its logits alone, not on which other sequences share its batch, the batch size, or the device.
/// Runs on the host over one row of float32 logits.
/// </summary>
public static class SequenceSampler
{
    /// <summary>The draw of step <paramref name="step"/> of sequence <paramref name="index"/>; temperature 0 takes the most probable token.</summary>
    /// <param name="allowed">When given, only tokens marked true may be drawn (a grammar constraint); the log-probability stays the model's.</param>
    public static TokenDraw Draw(ReadOnlySpan<float> logits, SamplingOptions options, ulong seed, long index, long step, int topLogprobs = 0,
        ReadOnlySpan<bool> allowed = default)
    {
        int vocabulary = logits.Length;
        double max = double.NegativeInfinity;
        foreach (float l in logits) max = Math.Max(max, l);
        double sum = 0;
        foreach (float l in logits) sum += Math.Exp(l - max);
        double logNormalizer = max + Math.Log(sum);

        int token = options.Temperature == 0 ? Greedy(logits, allowed) : Sample(logits, options, StatelessRandom.Unit(seed, index, step), allowed);
        if (token < 0) throw new BioForgeException($"sequence {index}, step {step}: the constraint allows no token");
        (int, double)[]? top = null;
        if (topLogprobs > 0)
        {
            var values = logits.ToArray();
            top = Enumerable.Range(0, vocabulary).OrderByDescending(i => values[i]).ThenBy(i => i).Take(topLogprobs)
                .Select(i => (i, values[i] - logNormalizer)).ToArray();
        }
        return new TokenDraw(token, logits[token] - logNormalizer, top);
    }

    private static int Greedy(ReadOnlySpan<float> logits, ReadOnlySpan<bool> allowed)
    {
        int best = -1;
        for (int i = 0; i < logits.Length; i++)
            if ((allowed.IsEmpty || allowed[i]) && (best < 0 || logits[i] > logits[best])) best = i;
        return best;
    }

    private static int Sample(ReadOnlySpan<float> logits, SamplingOptions options, double uniform, ReadOnlySpan<bool> allowed)
    {
        int vocabulary = logits.Length;
        var scaled = new double[vocabulary];
        var keep = new bool[vocabulary];
        int kept = 0;
        for (int i = 0; i < vocabulary; i++)
        {
            scaled[i] = logits[i] / options.Temperature;
            keep[i] = (allowed.IsEmpty || allowed[i]) && !double.IsNegativeInfinity(scaled[i]);
            if (keep[i]) kept++;
        }
        if (kept == 0) return -1;
        if (options.TopK > 0 && options.TopK < kept)
        {
            // Ties with the k-th value stay in, as Sampling's tensor filter keeps them.
            double kth = scaled.Where((_, i) => keep[i]).OrderDescending().ElementAt(options.TopK - 1);
            for (int i = 0; i < vocabulary; i++) keep[i] &= scaled[i] >= kth;
        }
        double best = double.NegativeInfinity;
        for (int i = 0; i < vocabulary; i++)
            if (keep[i]) best = Math.Max(best, scaled[i]);
        var weight = new double[vocabulary];
        double total = 0;
        for (int i = 0; i < vocabulary; i++)
            if (keep[i]) total += weight[i] = Math.Exp(scaled[i] - best);
        if (options.TopP < 1)
        {
            // Nucleus: a token stays when the mass of the tokens before it (more probable, or equal and earlier) is at most p.
            var order = Enumerable.Range(0, vocabulary).Where(i => keep[i]).OrderByDescending(i => scaled[i]).ThenBy(i => i).ToArray();
            double before = 0, nucleus = 0;
            foreach (int i in order)
            {
                if (before / total > options.TopP) keep[i] = false;
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
        return last; // rounding left the target at the very top
    }
}
