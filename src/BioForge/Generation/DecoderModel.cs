using BioForge.Models;
using BioForge.Models.Llama;
using static TorchSharp.torch;

namespace BioForge.Generation;

/// <summary>
/// What the scheduler needs of a decoder network: its shape for the key/value slots, and one forward pass over rows at
/// positions of their own. A model family that serves generation adds one adapter (see <see cref="LlamaDecoder"/>).
/// </summary>
public interface IDecoderModel
{
    int Layers { get; }
    int KeyValueHeads { get; }
    int HeadDim { get; }
    /// <summary>Longest sequence the model takes (prompt and generated tokens).</summary>
    int MaxPositions { get; }
    int BosTokenId { get; }
    int EosTokenId { get; }
    int VocabularySize { get; }
    Device Device { get; }
    ScalarType DType { get; }

    /// <summary>Logits [B, T, vocab] (see <see cref="LlamaForCausalLM.Forward(Tensor, Tensor, Tensor, IKeyValueStore)"/>).</summary>
    Tensor Forward(Tensor inputIds, Tensor positions, Tensor allowed, IKeyValueStore cache);
}

/// <summary>A <see cref="LlamaForCausalLM"/> as a decoder for the scheduler.</summary>
public sealed class LlamaDecoder(LlamaForCausalLM model) : IDecoderModel
{
    private readonly Tensor anyParameter = model.parameters().First();

    public int Layers => model.Config.NumHiddenLayers;
    public int KeyValueHeads => model.Config.NumKeyValueHeads;
    public int HeadDim => model.Config.HeadDim;
    public int MaxPositions => model.Config.MaxPositionEmbeddings;
    public int BosTokenId => model.Config.BosTokenId;
    public int EosTokenId => model.Config.EosTokenId;
    public int VocabularySize => model.Config.VocabSize;
    public Device Device => anyParameter.device;
    public ScalarType DType => anyParameter.dtype;

    public Tensor Forward(Tensor inputIds, Tensor positions, Tensor allowed, IKeyValueStore cache) => model.Forward(inputIds, positions, allowed, cache);
}
