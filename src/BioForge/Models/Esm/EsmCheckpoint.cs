using BioForge.Distributed;
using BioForge.IO;
using BioForge.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.Models.Esm;

/// <summary>An ESM-2 network with its tokenizer, ready on a device.</summary>
public sealed class EsmCheckpoint : IDisposable
{
    public EsmForMaskedLM Model { get; }
    public EsmTokenizer Tokenizer { get; }
    public EsmConfig Config => Model.Config;
    public Device Device { get; }

    /// <summary>Which parameters are tensor-parallel shards (none without a layout).</summary>
    public ShardedParameters Sharding { get; }

    private EsmCheckpoint(EsmForMaskedLM model, EsmTokenizer tokenizer, Device device, ParallelLayout? layout)
    {
        Model = model;
        Sharding = ShardedParameters.Of(model, layout);
        Tokenizer = tokenizer;
        Device = device;
    }

    /// <summary>
    /// Loads a Hugging Face ESM-2 checkpoint directory (<c>config.json</c>, <c>model.safetensors</c> or sharded
    /// safetensors, optional <c>vocab.txt</c>).
    /// </summary>
    /// <param name="layout">Tensor parallelism: each rank takes its shard of the unsharded checkpoint tensors.</param>
    public static EsmCheckpoint Load(string directory, Device device, ScalarType dtype, ParallelLayout? layout = null)
    {
        string configPath = ModelRegistry.ConfigPath(directory, "ESM-2");
        var config = EsmConfig.FromJson(configPath);
        ModelShape.Of(config).EnsureFitsInMemory(configPath);
        string vocabPath = Path.Combine(directory, "vocab.txt");
        var tokenizer = File.Exists(vocabPath) ? EsmTokenizer.FromVocabFile(vocabPath) : EsmTokenizer.Esm2;
        if (tokenizer.Vocabulary.Count != config.VocabSize)
            throw new BioForgeException($"{directory}: vocab.txt has {tokenizer.Vocabulary.Count} tokens but config.json says vocab_size {config.VocabSize}");

        var model = CheckpointWeights.Place(new EsmForMaskedLM(config, layout), network =>
        {
            using var weights = SafetensorsCheckpoint.Open(directory);
            LoadWeights(network, weights, ShardedParameters.Of(network, layout));
        }, device, dtype);
        return new EsmCheckpoint(model, tokenizer, device, layout);
    }

    /// <summary>
    /// A randomly initialised network of the given shape (for benchmarks and training from scratch); with a
    /// <paramref name="layout"/>, this rank's shards of the network a single process would draw from the seed.
    /// </summary>
    public static EsmCheckpoint Random(EsmConfig config, Device device, ScalarType dtype, long seed, ParallelLayout? layout = null)
    {
        var model = new EsmForMaskedLM(config, layout);
        CheckpointWeights.InitializeRandomly(model, IsNormWeight, (ulong)seed, ShardedParameters.Of(model, layout));
        model.to(device, dtype);
        model.eval();
        return new EsmCheckpoint(model, EsmTokenizer.Esm2, device, layout);
    }

    private static bool IsNormWeight(string name) =>
        name.EndsWith("LayerNorm.weight", StringComparison.Ordinal) || name.EndsWith("layer_norm.weight", StringComparison.Ordinal)
        || name.EndsWith("emb_layer_norm_after.weight", StringComparison.Ordinal);

    private static void LoadWeights(EsmForMaskedLM model, SafetensorsCheckpoint weights, ShardedParameters sharding)
    {
        // Checkpoints saved from a bare EsmModel have no "esm." prefix; older ones call LayerNorm parameters gamma/beta.
        bool bare = !weights.Names.Any(n => n.StartsWith("esm.", StringComparison.Ordinal));
        // Nor a masked-LM head: such an encoder loads for embeddings and contacts, the head all missing or all there.
        bool headless = !weights.Names.Any(IsLanguageModelHead);
        CheckpointWeights.LoadInto(model, weights, name => Candidates(name, bare), IsIgnorable, "ESM-2", sharding.Shard, headless ? IsLanguageModelHead : null);
        model.HasLanguageModelHead = !headless;
    }

    private static bool IsLanguageModelHead(string name) => name.StartsWith("lm_head.", StringComparison.Ordinal);

    private static IEnumerable<string> Candidates(string name, bool bare)
    {
        string stored = bare && name.StartsWith("esm.", StringComparison.Ordinal) ? name["esm.".Length..] : name;
        yield return stored;
        if (stored.EndsWith("LayerNorm.weight", StringComparison.Ordinal)) yield return stored[..^"weight".Length] + "gamma";
        if (stored.EndsWith("LayerNorm.bias", StringComparison.Ordinal)) yield return stored[..^"bias".Length] + "beta";
    }

    /// <summary>
    /// Tensors recomputed or tied rather than stored (rotary frequencies, position ids, the tied decoder), the unused
    /// pooler, and the task head of a fine-tuned EsmForSequenceClassification / EsmForTokenClassification
    /// (<c>classifier.*</c>), whose encoder is read as transformers' AutoModel reads it.
    /// </summary>
    private static bool IsIgnorable(string name) =>
        name.EndsWith("rotary_embeddings.inv_freq", StringComparison.Ordinal)
        || name.EndsWith("position_ids", StringComparison.Ordinal)
        || name == "lm_head.decoder.weight"
        || name.Contains("pooler.", StringComparison.Ordinal)
        || name.StartsWith("classifier.", StringComparison.Ordinal);

    /// <summary>
    /// Saves in the layout <c>save_pretrained</c> writes (config.json, vocab.txt, model.safetensors or shards),
    /// float32 on the CPU; the tied decoder weight is not stored, as in Hugging Face checkpoints. A tensor-parallel
    /// model is written whole: every rank of its group calls <see cref="UnshardedWeights"/> and one passes them here.
    /// </summary>
    public void Save(string directory, IReadOnlyList<KeyValuePair<string, Tensor>>? weights = null, long maxShardBytes = 5_000_000_000,
        ScalarType storage = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        CheckpointWeights.Save(weights ?? UnshardedWeights(), Config.ToJson(Model.HasLanguageModelHead), directory, maxShardBytes, storage);
        AtomicFile.WriteText(Path.Combine(directory, "vocab.txt"), string.Join("\n", Tokenizer.Vocabulary) + "\n");
    }

    /// <summary>
    /// Every parameter unsharded, by checkpoint name (with tensor parallelism a collective over the group); a model
    /// loaded without a masked-LM head is written without one, as it came.
    /// </summary>
    public List<KeyValuePair<string, Tensor>> UnshardedWeights() =>
        [.. CheckpointWeights.Unsharded(Model, Sharding).Where(w => Model.HasLanguageModelHead || !IsLanguageModelHead(w.Key))];

    public void Dispose() => Model.Dispose();
}
