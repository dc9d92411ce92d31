using BioForge.Distributed;
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

    /// <summary>Which parameters are tensor-parallel shards (none without a layout).</summary>
    public ShardedParameters Sharding { get; }

    private LlamaCheckpoint(LlamaForCausalLM model, SmilesVocabulary? vocabulary, Device device, ParallelLayout? layout)
    {
        Model = model;
        Sharding = ShardedParameters.Of(model, layout);
        Vocabulary = vocabulary;
        Device = device;
    }

    /// <summary>
    /// Loads <c>config.json</c>, safetensors weights and, when present, <c>vocab.json</c>; with a tensor-parallel
    /// <paramref name="layout"/>, this rank's shards.
    /// </summary>
    public static LlamaCheckpoint Load(string directory, Device device, ScalarType dtype, ParallelLayout? layout = null)
    {
        string vocabPath = Path.Combine(directory, SmilesVocabulary.FileName);
        var vocabulary = File.Exists(vocabPath) ? SmilesVocabulary.Load(vocabPath) : null;
        var model = LlamaForCausalLM.Load(directory, device, dtype, layout);
        if (vocabulary is not null && vocabulary.Count != model.Config.VocabSize)
        {
            model.Dispose();
            throw new BioForgeException($"{directory}: {SmilesVocabulary.FileName} has {vocabulary.Count} tokens but config.json says vocab_size {model.Config.VocabSize}");
        }
        return new LlamaCheckpoint(model, vocabulary, device, layout);
    }

    /// <summary>
    /// A randomly initialised decoder (training from scratch); with a <paramref name="layout"/>, this rank's shards of
    /// the decoder a single process would draw from the seed.
    /// </summary>
    public static LlamaCheckpoint Random(LlamaConfig config, SmilesVocabulary? vocabulary, Device device, ScalarType dtype, long seed, ParallelLayout? layout = null)
    {
        var model = new LlamaForCausalLM(config, layout);
        CheckpointWeights.InitializeRandomly(model, name => name.EndsWith("norm.weight", StringComparison.Ordinal), (ulong)seed, ShardedParameters.Of(model, layout));
        model.to(device, dtype);
        model.eval();
        return new LlamaCheckpoint(model, vocabulary, device, layout);
    }

    /// <summary>
    /// An independent copy of the decoder in memory, in <paramref name="dtype"/> (REINVENT's agent starts as a copy of
    /// its prior; a server makes one per request from the model it already holds, without touching the disk).
    /// </summary>
    public LlamaCheckpoint Copy(ScalarType dtype)
    {
        if (Sharding.Layout.Size > 1) throw new InvalidOperationException("a tensor-parallel shard cannot be copied on its own");
        var model = new LlamaForCausalLM(Config);
        try
        {
            model.to(Device, dtype);
            using var _ = no_grad();
            var source = Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, parameter) in model.named_parameters()) parameter.copy_(source[name]);
            model.eval();
            return new LlamaCheckpoint(model, Vocabulary, Device, null);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Saves in the layout <c>save_pretrained</c> writes, plus <c>vocab.json</c> and the Hugging Face tokenizer files. A tensor-parallel model is written
    /// whole: every rank of its group calls <see cref="UnshardedWeights"/> and one passes them here.
    /// </summary>
    public void Save(string directory, IReadOnlyList<KeyValuePair<string, Tensor>>? weights = null)
    {
        using var scope = NewDisposeScope();
        CheckpointWeights.Save(weights ?? UnshardedWeights(), Config.ToJson(), directory);
        Vocabulary?.Save(Path.Combine(directory, SmilesVocabulary.FileName));
        Vocabulary?.SaveHuggingFace(directory, Config.MaxPositionEmbeddings);
    }

    /// <summary>Every parameter unsharded, by checkpoint name (with tensor parallelism a collective over the group).</summary>
    public List<KeyValuePair<string, Tensor>> UnshardedWeights() => CheckpointWeights.Unsharded(Model, Sharding);

    public void Dispose() => Model.Dispose();
}
