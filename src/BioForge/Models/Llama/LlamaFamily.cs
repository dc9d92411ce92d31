using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace BioForge.Models.Llama;

/// <summary>A Llama-style decoder over SMILES tokens, trained with next-token prediction (Hugging Face <c>llama</c>).</summary>
public sealed class LlamaFamily : ModelFamily
{
    public static LlamaFamily Instance { get; } = new();

    private LlamaFamily()
    {
    }

    public override string ModelType => "llama";
    public override string Title => "Llama-style chemical language model (causal LM over SMILES)";
    public override string HuggingFaceClass => "LlamaForCausalLM";
    public override SequenceAlphabet Alphabet => SequenceAlphabet.Smiles;
    public override TrainingObjective Objective => TrainingObjective.CausalLanguageModel;
    public override bool SplitsVocabulary => true;
    public override IReadOnlySet<string> ConfigKeys => LlamaConfig.Keys;

    public override ModelShape Shape(JsonObject config, string path) => ModelShape.Of(LlamaConfig.FromJson(config, path));

    public override SequenceEncoder OpenEncoder(string directory, Device device, ScalarType dtype) =>
        new LlamaFeatureExtractor(LlamaCheckpoint.Load(directory, device, dtype), directory);
}
