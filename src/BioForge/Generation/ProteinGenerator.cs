using BioForge.Models.Llama;
using BioForge.Tokenizers;

namespace BioForge.Generation;

/// <summary>
/// Protein sequences from a Llama-style protein language model (amino-acid vocabulary, <c>&lt;cls&gt;</c> … <c>&lt;eos&gt;</c>):
/// sampling through the <see cref="DecodeScheduler"/> as for every decoder here, decoded to residue letters without
/// special tokens.
/// </summary>
public sealed class ProteinGenerator
{
    private readonly LlamaCheckpoint model;

    public ProteinGenerator(LlamaCheckpoint model)
    {
        if (!model.IsProtein) throw new BioForgeException($"the model has no {LlamaCheckpoint.ResidueFileName}: it is not a protein language model");
        this.model = model;
        Grammar = new ProteinGrammar(model.Residues!);
    }

    /// <summary>Residue letters and <c>&lt;eos&gt;</c> only, for <see cref="SamplingOptions.Grammar"/> (the default of generate and serve).</summary>
    public ProteinGrammar Grammar { get; }

    /// <summary>
    /// <paramref name="count"/> sequences continuing <paramref name="prompt"/> (residue letters, may be empty),
    /// <paramref name="batchSize"/> decoded at once. Sample i is sequence (seed, i) of <see cref="SequenceSampler"/>, so
    /// the result depends on the seed and options only, and equals what <c>/v1/completions</c> answers for the same seed.
    /// Each text is the prompt followed by the sampled residues.
    /// </summary>
    public IReadOnlyList<GeneratedText> Generate(int count, SamplingOptions options, ulong seed, int batchSize, IProgress<int>? progress = null, string prompt = "")
    {
        if (count < 1) throw new BioForgeException($"--n must be positive (got {count})");
        if (batchSize < 1) throw new BioForgeException($"--batch must be positive (got {batchSize})");
        if (options.Temperature <= 0) throw new BioForgeException($"temperature must be positive (got {options.Temperature})");
        if (options.TopP is <= 0 or > 1) throw new BioForgeException($"top-p must be in (0, 1] (got {options.TopP})");
        if (options.Grammar is { } grammar && grammar is not ProteinGrammar) throw new BioForgeException($"the {grammar.Name} grammar does not apply to a protein model");
        var promptIds = model.EncodeProteinPrompt(prompt);
        int length = (int)Math.Min(model.Config.MaxPositionEmbeddings, (long)promptIds.Length + options.MaxNewTokens);
        if (promptIds.Length >= length) throw new BioForgeException($"the prompt takes {promptIds.Length} tokens; the model takes {model.Config.MaxPositionEmbeddings} in all");
        using var scheduler = new DecodeScheduler(new LlamaDecoder(model.Model), batchSize, length, BatchingMode.Continuous, batchSize);
        string start = prompt.ToUpperInvariant();
        var results = new GeneratedText?[count];
        int next = 0, done = 0;
        while (done < count)
        {
            while (next < count && scheduler.Waiting < batchSize)
            {
                int index = next++;
                var job = SequenceJob.Collecting(promptIds, options, seed, index, (tokens, reason, logLikelihood) =>
                {
                    results[index] = new GeneratedText(start + model.DecodeProtein(tokens), reason == FinishReason.Stop, logLikelihood);
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
