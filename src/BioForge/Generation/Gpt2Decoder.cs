using BioForge.Models;
using BioForge.Models.Gpt2;
using static TorchSharp.torch;

namespace BioForge.Generation;

/// <summary>A <see cref="Gpt2LMHeadModel"/> as a decoder for the scheduler: every head keeps its own keys and values.</summary>
public sealed class Gpt2Decoder(Gpt2LMHeadModel model) : IDecoderModel
{
    private readonly Tensor anyParameter = model.parameters().First();

    public int Layers => model.Config.NumLayers;
    public int KeyValueHeads => model.Config.NumHeads;
    public int HeadDim => model.Config.HeadDim;
    public int MaxPositions => model.Config.MaxPositions;
    public int BosTokenId => model.Config.BosTokenId;
    public int EosTokenId => model.Config.EosTokenId;
    public int VocabularySize => model.Config.VocabSize;
    public Device Device => anyParameter.device;
    public ScalarType DType => anyParameter.dtype;

    public Tensor Forward(Tensor inputIds, Tensor positions, Tensor allowed, IKeyValueStore cache) => model.Forward(inputIds, positions, allowed, cache);
}
