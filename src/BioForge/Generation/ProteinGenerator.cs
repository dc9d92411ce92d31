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
        if (!model.IsProtein) throw new BioForgeException($"the model has no amino-acid vocabulary ({LlamaCheckpoint.ResidueFileName}, or BioForge's tokenizer.json): it is not a protein language model");
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
        if (options.Grammar is { } grammar && grammar is not ProteinGrammar) throw new BioForgeException($"the {grammar.Name} grammar does not apply to a protein model");
        string start = prompt.ToUpperInvariant();
        return TextSampling.Generate(DecoderNetwork.Of(model.Model), model.EncodeProteinPrompt(prompt), model.Config.MaxPositionEmbeddings, count, options, seed, batchSize,
            progress, tokens => start + model.DecodeProtein(tokens));
    }
}
