using BioForge.Models;
using BioForge.Models.Llama;
using static TorchSharp.torch;

namespace BioForge.Generation;

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
