using BioForge.Models;
using static TorchSharp.torch;

namespace BioForge.Generation;

/// <summary>
/// What the scheduler needs of a decoder network: its shape for the key/value slots, and one forward pass over rows at
/// positions of their own. A model family that serves generation adds one way to build it (<see cref="DecoderNetwork"/>).
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

    /// <summary>Logits [B, T, vocab] (see <see cref="Models.Llama.LlamaForCausalLM.Forward(Tensor, Tensor, Tensor, IKeyValueStore)"/>).</summary>
    Tensor Forward(Tensor inputIds, Tensor positions, Tensor allowed, IKeyValueStore cache);
}
