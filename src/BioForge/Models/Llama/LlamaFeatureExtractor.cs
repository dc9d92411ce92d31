using BioForge.Tokenizers;
using static TorchSharp.torch;

namespace BioForge.Models.Llama;

/// <summary>A Llama-style decoder as a feature extractor: SMILES or amino-acid tokens, final hidden states (causal).</summary>
internal sealed class LlamaFeatureExtractor : SequenceEncoder
{
    private readonly LlamaCheckpoint checkpoint;
    private readonly SmilesVocabulary? vocabulary;

    public LlamaFeatureExtractor(LlamaCheckpoint checkpoint, string directory)
    {
        this.checkpoint = checkpoint;
        if (checkpoint.Vocabulary is null && checkpoint.Residues is null)
        {
            checkpoint.Dispose();
            throw new BioForgeException($"{directory}: no {SmilesVocabulary.FileName} (SMILES), {LlamaCheckpoint.ResidueFileName} (amino acids) or BioForge's {SmilesVocabulary.HuggingFaceTokenizerFile}; reading sequences with a Llama model needs its vocabulary");
        }
        vocabulary = checkpoint.Vocabulary;
    }

    public override nn.Module Network => checkpoint.Model;
    public override ModelFamily Family => LlamaFamily.Instance;
    public override SequenceAlphabet Alphabet => checkpoint.IsProtein ? SequenceAlphabet.Protein : SequenceAlphabet.Smiles;
    public override int HiddenSize => checkpoint.Config.HiddenSize;
    public override long PadId => checkpoint.Config.PadTokenId;
    public override int MaxTokens => checkpoint.Config.MaxPositionEmbeddings;
    public override string[] DefaultLoraTargets => ["q_proj", "v_proj"];

    protected override EncodedSequence Tokenize(string sequence, bool stopCodon)
    {
        if (checkpoint.Residues is { } residues)
        {
            var ids = residues.Encode(sequence, stopCodon: stopCodon);
            return new EncodedSequence([.. ids.Select(t => (long)t)], ids.Count(t => t == residues.UnkId));
        }
        if (sequence.Any(char.IsWhiteSpace)) throw new BioForgeException($"SMILES '{sequence}' contains white space");
        var tokens = vocabulary!.Encode(sequence);
        int unknown = tokens.Count(t => t == SmilesVocabulary.UnkId);
        return new EncodedSequence([.. tokens.Select(t => (long)t)], unknown) { FirstUnknown = unknown > 0 ? vocabulary.FirstUnknown(sequence) : null };
    }

    public override Tensor Hidden(Tensor ids, Tensor mask) => checkpoint.Model.LastHiddenState(ids, mask);

    public override void Save(string directory) => checkpoint.Save(directory);

    public override void Dispose() => checkpoint.Dispose();
}
