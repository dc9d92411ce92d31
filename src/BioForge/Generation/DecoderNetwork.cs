using BioForge.Models;
using BioForge.Models.Gpt2;
using BioForge.Models.Llama;
using static TorchSharp.torch;

namespace BioForge.Generation;

/// <summary>
/// What the scheduler needs of a family's decoder network: the shape its key/value slots take, and one forward pass
/// over rows at positions of their own. A family that serves generation adds one <c>Of</c> here.
/// </summary>
public sealed class DecoderNetwork
{
    private readonly Tensor anyParameter;
    private readonly Func<Tensor, Tensor, Tensor, IKeyValueStore, Tensor> forward;

    private DecoderNetwork(nn.Module network, int layers, int keyValueHeads, int headDim, int maxPositions, int bos, int eos, int vocabulary,
        Func<Tensor, Tensor, Tensor, IKeyValueStore, Tensor> forward)
    {
        anyParameter = network.parameters().First();
        (Layers, KeyValueHeads, HeadDim, MaxPositions, BosTokenId, EosTokenId, VocabularySize) = (layers, keyValueHeads, headDim, maxPositions, bos, eos, vocabulary);
        this.forward = forward;
    }

    public static DecoderNetwork Of(LlamaForCausalLM model)
    {
        var c = model.Config;
        return new(model, c.NumHiddenLayers, c.NumKeyValueHeads, c.HeadDim, c.MaxPositionEmbeddings, c.BosTokenId, c.EosTokenId, c.VocabSize, model.Forward);
    }

    /// <summary>GPT-2: every head keeps its own keys and values.</summary>
    public static DecoderNetwork Of(Gpt2LMHeadModel model)
    {
        var c = model.Config;
        return new(model, c.NumLayers, c.NumHeads, c.HeadDim, c.MaxPositions, c.BosTokenId, c.EosTokenId, c.VocabSize, model.Forward);
    }

    public int Layers { get; }
    public int KeyValueHeads { get; }
    public int HeadDim { get; }
    /// <summary>Longest sequence the model takes (prompt and generated tokens).</summary>
    public int MaxPositions { get; }
    public int BosTokenId { get; }
    public int EosTokenId { get; }
    public int VocabularySize { get; }
    public Device Device => anyParameter.device;
    public ScalarType DType => anyParameter.dtype;

    /// <summary>Logits [B, T, vocab] (see <see cref="LlamaForCausalLM.Forward(Tensor, Tensor, Tensor, IKeyValueStore)"/>).</summary>
    public Tensor Forward(Tensor inputIds, Tensor positions, Tensor allowed, IKeyValueStore cache) => forward(inputIds, positions, allowed, cache);
}
