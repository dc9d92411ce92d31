using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace BioForge.Models.Esm;

/// <summary>ESM-2: a bidirectional protein encoder trained with masked language modelling (Hugging Face <c>esm</c>).</summary>
public sealed class EsmFamily : ModelFamily
{
    public static EsmFamily Instance { get; } = new();

    private EsmFamily()
    {
    }

    public override string ModelType => "esm";
    public override string Title => "ESM-2 protein language model (masked LM)";
    public override string HuggingFaceClass => "EsmForMaskedLM";
    public override SequenceAlphabet Alphabet => SequenceAlphabet.Protein;
    public override TrainingObjective Objective => TrainingObjective.MaskedLanguageModel;

    // ESM-2's 33-token vocabulary does not split evenly and is tiny.
    public override bool SplitsVocabulary => false;
    public override IReadOnlySet<string> ConfigKeys => EsmConfig.Keys;

    public override ModelShape Shape(JsonObject config, string path) => ModelShape.Of(EsmConfig.FromCheckpointJson(config, path));

    public override SequenceEncoder OpenEncoder(string directory, Device device, ScalarType dtype) => new EsmFeatureExtractor(EsmCheckpoint.Load(directory, device, dtype));
}
