using BioForge.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.Models.Llama;

public sealed record SamplingOptions
{
    public double Temperature { get; init; } = 1.0;
    /// <summary>Keep only the k most probable tokens (0 = all).</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of tokens whose probability reaches p (1 = all).</summary>
    public double TopP { get; init; } = 1.0;
    public int MaxNewTokens { get; init; } = 128;
}

/// <summary>
/// A sampled sequence: tokens after the begin token, up to (not including) end-of-sequence; whether it ended; and its
/// log-likelihood under the model at temperature 1 (the sum over generated tokens, end token included), which
/// policy-gradient methods such as REINVENT need.
/// </summary>
public sealed record SampledSequence(long[] Tokens, bool Finished, double LogLikelihood);

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
    public static IReadOnlyList<SampledSequence> Sample(LlamaForCausalLM model, int count, SamplingOptions options, Generator generator)
    {
        if (count < 1) throw new BioForgeException($"number of samples must be positive (got {count})");
        if (options.Temperature <= 0) throw new BioForgeException($"temperature must be positive (got {options.Temperature})");
        if (options.TopP is <= 0 or > 1) throw new BioForgeException($"top-p must be in (0, 1] (got {options.TopP})");
        var config = model.Config;
        var device = model.parameters().First().device;
        var tokens = Enumerable.Range(0, count).Select(_ => new List<long>()).ToArray();
        var logLikelihood = new double[count];
        var finished = new bool[count];
        var alive = Enumerable.Range(0, count).ToList();

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
                var logProbs = logits.log_softmax(-1);
                // [rows, vocabulary] crosses to the host once per token: small next to the forward pass.
                var probabilities = Filter(logits.Div(options.Temperature), options).softmax(-1).cpu();
                var drawn = multinomial(probabilities, 1, false, generator);
                var chosen = drawn.to(device);
                var chosenLogProbs = logProbs.gather(1, chosen).squeeze(1).cpu().data<float>().ToArray();
                var chosenTokens = drawn.squeeze(1).data<long>().ToArray();

                var stillAlive = new List<int>();
                var keep = new List<long>();
                for (int r = 0; r < alive.Count; r++)
                {
                    int row = alive[r];
                    logLikelihood[row] += chosenLogProbs[r];
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

    /// <summary>
    /// The log-likelihood of each token sequence under <paramref name="model"/> at temperature 1, as <see cref="Sample"/>
    /// accumulates it: log p of every token after the begin token, plus the end token for finished sequences. Keeps
    /// the autograd graph (REINVENT trains the agent through it): returns a [N] float32 tensor.
    /// </summary>
    public static Tensor LogLikelihood(LlamaForCausalLM model, IReadOnlyList<SampledSequence> sequences)
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
        var logProbs = logits.log_softmax(-1).gather(2, tensor(targets, shape).to(device).unsqueeze(2)).squeeze(2);
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
            var dropSorted = before.gt(topP);
            var drop = zeros_like(dropSorted).scatter(1, order, dropSorted);
            logits = logits.MaskedFill(drop, double.NegativeInfinity);
        }
        return logits;
    }
}
