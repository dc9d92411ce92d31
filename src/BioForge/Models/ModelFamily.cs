using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace BioForge.Models;

/// <summary>The pre-training objective a family learns with.</summary>
public enum TrainingObjective
{
    /// <summary>15 % of tokens masked 80/10/10 (BERT, ESM-2); long documents cropped at a random start.</summary>
    MaskedLanguageModel,
    /// <summary>Next-token prediction; documents may be packed into full rows.</summary>
    CausalLanguageModel,
}

/// <summary>What the tokens of a family's models stand for, and so which corpus tokenizer prepares its data.</summary>
public enum SequenceAlphabet
{
    /// <summary>Amino acids, ESM-2's alphabet (<c>data prepare --tokenizer esm</c>).</summary>
    Protein,
    /// <summary>SMILES tokens with a corpus-built vocabulary (<c>data prepare --tokenizer smiles</c>).</summary>
    Smiles,
    /// <summary>Text read by the checkpoint's own tokenizer (GPT-2 checkpoints: ProtGPT2's protein text, a SMILES GPT-2's SMILES).</summary>
    Text,
}

/// <summary>
/// One model architecture as a checkpoint's <c>config.json</c> names it (<c>model_type</c>), like the entries of
/// Hugging Face's <c>AutoModel</c> mapping: what it is, how it trains and splits, and how to open it.
/// Each family lives in its own folder under <c>Models/</c> with its config, network, checkpoint and encoder;
/// <see cref="ModelRegistry"/> lists them.
/// </summary>
public abstract class ModelFamily
{
    /// <summary><c>model_type</c> in config.json, and <c>model.type</c> in a training run file.</summary>
    public abstract string ModelType { get; }

    /// <summary>A short description for messages and <c>/v1/models</c>.</summary>
    public abstract string Title { get; }

    public abstract SequenceAlphabet Alphabet { get; }

    /// <summary>
    /// The transformers class whose module names BioForge's network of this family shares (what its saves name in
    /// <c>architectures</c>), and the module that defines it: what PEFT's <c>auto_mapping</c> names for an adapter.
    /// </summary>
    public abstract string HuggingFaceClass { get; }

    public string HuggingFaceModule => $"transformers.models.{ModelType}.modeling_{ModelType}";

    public abstract TrainingObjective Objective { get; }

    /// <summary>Tensor parallelism may also split the token embedding and output projection by vocabulary rows.</summary>
    public abstract bool SplitsVocabulary { get; }

    /// <summary>The config.json keys the family reads (a new network's <c>model.config</c> may use only these).</summary>
    public abstract IReadOnlySet<string> ConfigKeys { get; }

    /// <summary>BioForge's trainer can pre-train or continue training it (<c>model.type</c> in a run file).</summary>
    public virtual bool Trainable => true;

    /// <summary>Sizes that decide parameters, FLOPs and tensor-parallel splits, from a config.json object (no network built).</summary>
    public abstract ModelShape Shape(JsonObject config, string path);

    /// <summary>Opens a checkpoint directory as a feature extractor (tokenizer + final hidden states).</summary>
    public abstract SequenceEncoder OpenEncoder(string directory, Device device, ScalarType dtype);

    public override string ToString() => ModelType;
}
