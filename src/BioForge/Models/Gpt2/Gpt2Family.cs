using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace BioForge.Models.Gpt2;

/// <summary>
/// Hugging Face <c>gpt2</c> checkpoints (<c>GPT2LMHeadModel</c>: ProtGPT2, SMILES GPT-2s) with their own byte-level BPE
/// tokenizer: loaded for embeddings and generation, not trained here.
/// </summary>
public sealed class Gpt2Family : ModelFamily
{
    public static Gpt2Family Instance { get; } = new();

    private Gpt2Family()
    {
    }

    public override string ModelType => "gpt2";
    public override string Title => "GPT-2 language model (causal LM with its own byte-level BPE tokenizer)";
    public override string HuggingFaceClass => "GPT2LMHeadModel";
    public override SequenceAlphabet Alphabet => SequenceAlphabet.Text;
    public override TrainingObjective Objective => TrainingObjective.CausalLanguageModel;
    public override bool SplitsVocabulary => false;
    public override bool Trainable => false;
    public override IReadOnlySet<string> ConfigKeys => Gpt2Config.Keys;

    public override ModelShape Shape(JsonObject config, string path) => ModelShape.Of(Gpt2Config.FromJson(config, path));

    public override SequenceEncoder OpenEncoder(string directory, Device device, ScalarType dtype) =>
        new Gpt2FeatureExtractor(Gpt2Checkpoint.Load(directory, device, dtype));
}
