using BioForge.Models.Gpt2;
using BioForge.Models.Llama;

namespace BioForge.Generation;

/// <summary>A sample from a text model: the prompt and its continuation, whether it ended with the end token, its log-likelihood.</summary>
public sealed record GeneratedText(string Text, bool Finished, double LogLikelihood);

/// <summary>
/// Samples from a GPT-2 checkpoint through the <see cref="DecodeScheduler"/> (the same sampling as every decoder here),
/// decoded by the checkpoint's own tokenizer.
/// </summary>
public sealed class TextGenerator(Gpt2Checkpoint model)
{
    /// <summary>
    /// <paramref name="count"/> samples continuing <paramref name="prompt"/>, <paramref name="batchSize"/> decoded at once.
    /// Sample i is sequence (seed, i) of <see cref="SequenceSampler"/>, so the result depends on the seed and options only,
    /// and equals what <c>/v1/completions</c> answers for the same seed.
    /// </summary>
    public IReadOnlyList<GeneratedText> Generate(int count, SamplingOptions options, ulong seed, int batchSize, IProgress<int>? progress = null, string prompt = "")
    {
        if (count < 1) throw new BioForgeException($"--n must be positive (got {count})");
        if (batchSize < 1) throw new BioForgeException($"--batch must be positive (got {batchSize})");
        if (options.Temperature <= 0) throw new BioForgeException($"temperature must be positive (got {options.Temperature})");
        if (options.TopP is <= 0 or > 1) throw new BioForgeException($"top-p must be in (0, 1] (got {options.TopP})");
        var promptIds = model.EncodePrompt(prompt);
        int length = (int)Math.Min(model.Config.MaxPositions, (long)promptIds.Length + options.MaxNewTokens);
        if (promptIds.Length >= length) throw new BioForgeException($"the prompt takes {promptIds.Length} tokens; the model takes {model.Config.MaxPositions} in all");
        using var scheduler = new DecodeScheduler(new Gpt2Decoder(model.Model), batchSize, length, BatchingMode.Continuous, batchSize);
        var results = new GeneratedText?[count];
        int next = 0, done = 0;
        while (done < count)
        {
            while (next < count && scheduler.Waiting < batchSize)
            {
                int index = next++;
                var job = SequenceJob.Collecting(promptIds, options, seed, index, (tokens, reason, logLikelihood) =>
                {
                    results[index] = new GeneratedText(prompt + model.Decode(tokens), reason == FinishReason.Stop, logLikelihood);
                    done++;
                    progress?.Report(1);
                });
                if (!scheduler.TrySubmit([job])) throw new InvalidOperationException("the generator's own queue refused a sequence");
            }
            scheduler.Step();
        }
        return results!;
    }
}
