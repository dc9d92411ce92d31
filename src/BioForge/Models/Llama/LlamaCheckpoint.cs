using BioForge.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.Models.Llama;

/// <summary>A Llama-style decoder with the SMILES vocabulary it was trained on (<c>vocab.json</c>), ready on a device.</summary>
public sealed class LlamaCheckpoint : IDisposable
{
    public LlamaForCausalLM Model { get; }
    /// <summary>Null for checkpoints that ship another tokenizer (they can be scored but not decoded to SMILES).</summary>
    public SmilesVocabulary? Vocabulary { get; }
    public LlamaConfig Config => Model.Config;
    public Device Device { get; }

    private LlamaCheckpoint(LlamaForCausalLM model, SmilesVocabulary? vocabulary, Device device)
    {
        Model = model;
        Vocabulary = vocabulary;
        Device = device;
    }

    /// <summary>Loads <c>config.json</c>, safetensors weights and, when present, <c>vocab.json</c>.</summary>
    public static LlamaCheckpoint Load(string directory, Device device, ScalarType dtype)
    {
        string vocabPath = Path.Combine(directory, SmilesVocabulary.FileName);
        var vocabulary = File.Exists(vocabPath) ? SmilesVocabulary.Load(vocabPath) : null;
        var model = LlamaForCausalLM.Load(directory, device, dtype);
        if (vocabulary is not null && vocabulary.Count != model.Config.VocabSize)
        {
            model.Dispose();
            throw new BioForgeException($"{directory}: {SmilesVocabulary.FileName} has {vocabulary.Count} tokens but config.json says vocab_size {model.Config.VocabSize}");
        }
        return new LlamaCheckpoint(model, vocabulary, device);
    }

    /// <summary>A randomly initialised decoder (training from scratch).</summary>
    public static LlamaCheckpoint Random(LlamaConfig config, SmilesVocabulary? vocabulary, Device device, ScalarType dtype, long seed)
    {
        var model = new LlamaForCausalLM(config);
        CheckpointWeights.InitializeRandomly(model, name => name.EndsWith("norm.weight", StringComparison.Ordinal), (ulong)seed);
        model.to(device, dtype);
        model.eval();
        return new LlamaCheckpoint(model, vocabulary, device);
    }

    /// <summary>Saves in the layout <c>save_pretrained</c> writes, plus <c>vocab.json</c>.</summary>
    public void Save(string directory)
    {
        CheckpointWeights.Save(Model, Config.ToJson(), directory);
        Vocabulary?.Save(Path.Combine(directory, SmilesVocabulary.FileName));
    }

    public void Dispose() => Model.Dispose();
}
