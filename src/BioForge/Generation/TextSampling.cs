
namespace BioForge.Generation;

/// <summary>
/// The sampling loop of the decoders whose samples are read as text (GPT-2 checkpoints, protein decoders): sequences
/// continuing one prompt, decoded through the <see cref="DecodeScheduler"/> as <c>/v1/completions</c> decodes them.
/// </summary>
internal static class TextSampling
{
    /// <summary>
    /// <paramref name="count"/> samples, <paramref name="batchSize"/> decoded at once. Sample i is sequence (seed, i) of
    /// <see cref="SequenceSampler"/>, so the result depends on the seed and options only; <paramref name="text"/> turns
    /// a sample's tokens (after the prompt) into the text returned.
    /// </summary>
    public static IReadOnlyList<GeneratedText> Generate(DecoderNetwork decoder, int[] promptIds, long maxPositions, int count, SamplingOptions options, ulong seed,
        int batchSize, IProgress<int>? progress, Func<IReadOnlyList<int>, string> text)
    {
        using var scheduler = Scheduler(decoder, promptIds, maxPositions, count, options, batchSize);
        var results = new GeneratedText?[count];
        int next = 0, done = 0;
        while (done < count)
        {
            while (next < count && scheduler.Waiting < scheduler.QueueCapacity)
            {
                int index = next++;
                var job = SequenceJob.Collecting(promptIds, options, seed, index, (tokens, reason, logLikelihood) =>
                {
                    results[index] = new GeneratedText(text(tokens), reason == FinishReason.Stop, logLikelihood);
                    done++;
                    progress?.Report(1);
                });
                if (!scheduler.TrySubmit([job])) throw new InvalidOperationException("the generator's own queue refused a sequence");
            }
            scheduler.Step();
        }
        return results!;
    }

    /// <summary>The scheduler of one generation call (<paramref name="batchSize"/> slots, each as long as the prompt and
    /// its new tokens allow), after checking the call's settings.</summary>
    public static DecodeScheduler Scheduler(DecoderNetwork decoder, int[] promptIds, long maxPositions, int count, SamplingOptions options, int batchSize)
    {
        if (count < 1) throw new BioForgeException($"--n must be positive (got {count})");
        if (batchSize < 1) throw new BioForgeException($"--batch must be positive (got {batchSize})");
        options.Validate();
        int length = (int)Math.Min(maxPositions, (long)promptIds.Length + options.MaxNewTokens);
        if (promptIds.Length >= length) throw new BioForgeException($"the prompt takes {promptIds.Length} tokens; the model takes {maxPositions} in all");
        // No more slots than sequences: each holds a key/value cache of the whole length on the device.
        int slots = Math.Min(batchSize, count);
        return new DecodeScheduler(decoder, slots, length, BatchingMode.Continuous, slots);
    }
}
