using BioForge.Models.Gpt2;

namespace BioForge.Generation;

/// <summary>A sample from a text model: the prompt and its continuation, whether it ended with the end token, its log-likelihood.</summary>
public sealed record GeneratedText(string Text, bool Finished, double LogLikelihood);

/// <summary>
/// Samples from a GPT-2 checkpoint through the <see cref="DecodeScheduler"/> (the same sampling as every decoder here),
/// decoded by the checkpoint's own tokenizer.
/// </summary>
public sealed class TextGenerator(Gpt2Checkpoint model)
{
    /// <summary>The positions <paramref name="prompt"/> takes, its begin token included.</summary>
    public int PromptTokens(string prompt) => model.EncodePrompt(prompt).Length;

    /// <summary>
    /// <paramref name="count"/> samples continuing <paramref name="prompt"/>, <paramref name="batchSize"/> decoded at once.
    /// Sample i is sequence (seed, i) of <see cref="SequenceSampler"/>, so the result depends on the seed and options only,
    /// and equals what <c>/v1/completions</c> answers for the same seed.
    /// </summary>
    public IReadOnlyList<GeneratedText> Generate(int count, SamplingOptions options, ulong seed, int batchSize, IProgress<int>? progress = null, string prompt = "") =>
        TextSampling.Generate(DecoderNetwork.Of(model.Model), model.EncodePrompt(prompt), model.Config.MaxPositions, count, options, seed, batchSize, progress,
            tokens => prompt + model.Decode(tokens));
}
