using static TorchSharp.torch;

namespace BioForge.Models.Gpt2;

/// <summary>
/// A GPT-2 checkpoint as a feature extractor: the text framed as begin token, its tokens, end token (as the model saw
/// documents in training), final hidden states after <c>ln_f</c> (causal).
/// </summary>
internal sealed class Gpt2FeatureExtractor : SequenceEncoder
{
    private readonly Gpt2Checkpoint checkpoint;

    public Gpt2FeatureExtractor(Gpt2Checkpoint checkpoint)
    {
        this.checkpoint = checkpoint;
        if (!checkpoint.HasTokenizer)
        {
            checkpoint.Dispose();
            throw new BioForgeException($"{checkpoint.Directory}: no {Tokenizers.HuggingFaceTokenizer.FileName} (or vocab.json + merges.txt); embedding text needs the checkpoint's tokenizer");
        }
    }

    public override nn.Module Network => checkpoint.Model;
    public override ModelFamily Family => Gpt2Family.Instance;
    public override int HiddenSize => checkpoint.Config.HiddenSize;
    public override long PadId => checkpoint.Config.EosTokenId;
    public override int MaxTokens => checkpoint.Config.MaxPositions;
    public override string[] DefaultLoraTargets => ["c_attn"];
    public override string? FrozenOnly => "a GPT-2 checkpoint is read as it is: BioForge does not write GPT-2 weights, and its Conv1D projections take no LoRA adapters";

    protected override EncodedSequence Tokenize(string sequence, bool stopCodon) // byte-level text: a '*' is text
    {
        var ids = checkpoint.Tokenizer.EncodeExactly(sequence, $"'{Spelling.Excerpt(sequence)}'");
        if (ids.Length + 2 > checkpoint.Config.MaxPositions)
            throw new BioForgeException($"the text has {ids.Length} tokens; the model takes at most {checkpoint.Config.MaxPositions - 2} (n_positions {checkpoint.Config.MaxPositions} minus the begin and end tokens)") { TooLong = true };
        return new EncodedSequence([checkpoint.Config.BosTokenId, .. ids.Select(i => (long)i), checkpoint.Config.EosTokenId], 0);
    }

    public override Tensor Hidden(Tensor ids, Tensor mask) => checkpoint.Model.LastHiddenState(ids, mask);

    public override void Save(string directory) =>
        throw new BioForgeException($"saving a GPT-2 model is not supported; {checkpoint.Directory} is read as it is");

    public override void Dispose() => checkpoint.Dispose();
}
