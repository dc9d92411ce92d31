using static TorchSharp.torch;

namespace BioForge.Models.Esm;

/// <summary>ESM-2 as a feature extractor: amino-acid tokens, final hidden states.</summary>
internal sealed class EsmFeatureExtractor(EsmCheckpoint checkpoint) : SequenceEncoder
{
    public override nn.Module Network => checkpoint.Model;
    public override ModelFamily Family => EsmFamily.Instance;
    public override int HiddenSize => checkpoint.Config.HiddenSize;
    public override long PadId => checkpoint.Tokenizer.PadId;
    public override int MaxTokens => checkpoint.Config.MaxPositionEmbeddings;
    public override string[] DefaultLoraTargets => ["query", "value"];

    protected override EncodedSequence Tokenize(string sequence, bool stopCodon) => new([.. checkpoint.Tokenizer.Encode(sequence, stopCodon: stopCodon).Select(i => (long)i)], 0);

    public override Tensor Hidden(Tensor ids, Tensor mask) => checkpoint.Model.Forward(ids, mask, new EsmForwardOptions()).LastHiddenState;

    public override void Save(string directory) => checkpoint.Save(directory);

    public override void Dispose() => checkpoint.Dispose();
}
