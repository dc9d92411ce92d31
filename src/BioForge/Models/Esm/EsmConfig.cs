using System.Text.Json;
using System.Text.Json.Nodes;

namespace BioForge.Models.Esm;

/// <summary>The fields of a Hugging Face <c>EsmConfig</c> (<c>config.json</c>) that define an ESM-2 network.</summary>
public sealed record EsmConfig
{
    public int VocabSize { get; init; } = 33;
    public int HiddenSize { get; init; } = 320;
    public int NumHiddenLayers { get; init; } = 6;
    public int NumAttentionHeads { get; init; } = 20;
    public int IntermediateSize { get; init; } = 1280;
    public double LayerNormEps { get; init; } = 1e-5;
    public int MaxPositionEmbeddings { get; init; } = 1026;
    public bool TokenDropout { get; init; } = true;
    public bool EmbLayerNormBefore { get; init; }
    public double RopeTheta { get; init; } = 10000.0;
    public int PadTokenId { get; init; } = 1;
    public int MaskTokenId { get; init; } = 32;
    public int EosTokenId { get; init; } = 2;
    /// <summary>Dropout on embeddings and on each residual branch (training only; ESM-2 hub checkpoints say 0).</summary>
    public double HiddenDropoutProb { get; init; }
    /// <summary>Dropout on attention probabilities (training only).</summary>
    public double AttentionProbsDropoutProb { get; init; }

    /// <summary><c>layer_norm_eps</c> where a <c>config.json</c> leaves it out, as <c>transformers.EsmConfig</c> has it.</summary>
    public const double HuggingFaceLayerNormEps = 1e-12;

    public int HeadDim => HiddenSize / NumAttentionHeads;

    /// <summary>Longest residue sequence the model accepts: position budget minus <c>&lt;cls&gt;</c> and <c>&lt;eos&gt;</c>.</summary>
    public int MaxResidues => MaxPositionEmbeddings - 2;

    /// <summary>The ESM-2 family (Lin et al. 2023) by parameter count: layers × hidden, heads.</summary>
    public static IReadOnlyDictionary<string, EsmConfig> Esm2Sizes { get; } = new Dictionary<string, EsmConfig>(StringComparer.OrdinalIgnoreCase)
    {
        ["8M"] = Sized(6, 320, 20),
        ["35M"] = Sized(12, 480, 20),
        ["150M"] = Sized(30, 640, 20),
        ["650M"] = Sized(33, 1280, 20),
        ["3B"] = Sized(36, 2560, 40),
        ["15B"] = Sized(48, 5120, 40),
    };

    private static EsmConfig Sized(int layers, int hidden, int heads) =>
        new() { NumHiddenLayers = layers, HiddenSize = hidden, NumAttentionHeads = heads, IntermediateSize = 4 * hidden };

    /// <summary>The <c>config.json</c> keys this reader understands; a training configuration may use no others.</summary>
    public static IReadOnlySet<string> Keys { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "model_type", "architectures", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
        "intermediate_size", "hidden_act", "layer_norm_eps", "max_position_embeddings", "position_embedding_type",
        "rope_theta", "token_dropout", "emb_layer_norm_before", "pad_token_id", "mask_token_id", "eos_token_id",
        "hidden_dropout_prob", "attention_probs_dropout_prob", "tie_word_embeddings", "is_folding_model", "dtype",
    };

    /// <summary>
    /// A checkpoint's <c>config.json</c>. Its sizes must be stated (Hugging Face writes them all): the defaults a
    /// training configuration may lean on are ESM-2 8M's, not transformers' EsmConfig's, so a missing one is named
    /// rather than assumed.
    /// </summary>
    public static EsmConfig FromJson(string path) => FromCheckpointJson(ConfigJson.Read(path, "esm"), path);

    /// <summary>A checkpoint's <c>config.json</c> already read (<see cref="FromJson(string)"/>).</summary>
    public static EsmConfig FromCheckpointJson(JsonObject json, string path)
    {
        foreach (string key in new[] { "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size" })
            if (json[key] is null) throw new BioForgeException($"{path}: no '{key}' (a Hugging Face ESM config.json states it)");
        return FromJson(json, path);
    }

    /// <param name="where">Names the source in error messages.</param>
    public static EsmConfig FromJson(JsonObject json, string where)
    {
        string path = where;
        string position = ConfigJson.Text(json, "position_embedding_type", path) ?? "absolute";
        if (position != "rotary")
            throw new BioForgeException($"{path}: position_embedding_type '{position}' is not supported (ESM-2 checkpoints use 'rotary')");
        if (ConfigJson.Value<bool>(json, "is_folding_model", path) == true) throw new BioForgeException($"{path}: ESMFold checkpoints are not supported");
        // The masked-LM decoder is the word embedding (every ESM-2 checkpoint); an untied one would be silently replaced.
        if (ConfigJson.Value<bool>(json, "tie_word_embeddings", path) == false)
            throw new BioForgeException($"{path}: tie_word_embeddings false (a masked-LM decoder apart from the word embeddings) is not supported");
        string act = ConfigJson.Text(json, "hidden_act", path) ?? "gelu";
        if (act != "gelu") throw new BioForgeException($"{path}: hidden_act '{act}' is not supported (ESM-2 uses exact 'gelu')");

        var defaults = new EsmConfig();
        var config = new EsmConfig
        {
            VocabSize = Int(json, "vocab_size", path) ?? defaults.VocabSize,
            HiddenSize = Int(json, "hidden_size", path) ?? defaults.HiddenSize,
            NumHiddenLayers = Int(json, "num_hidden_layers", path) ?? defaults.NumHiddenLayers,
            NumAttentionHeads = Int(json, "num_attention_heads", path) ?? defaults.NumAttentionHeads,
            IntermediateSize = Int(json, "intermediate_size", path) ?? defaults.IntermediateSize,
            // Hugging Face's EsmConfig default, so a config.json without the key computes as transformers does; the
            // record's 1e-5 is ESM-2's own value (every hub config states it), which training configs get (Trainer).
            LayerNormEps = ConfigJson.Value<double>(json, "layer_norm_eps", path) ?? HuggingFaceLayerNormEps,
            MaxPositionEmbeddings = Int(json, "max_position_embeddings", path) ?? defaults.MaxPositionEmbeddings,
            TokenDropout = ConfigJson.Value<bool>(json, "token_dropout", path) ?? false,
            EmbLayerNormBefore = ConfigJson.Value<bool>(json, "emb_layer_norm_before", path) ?? false,
            RopeTheta = ConfigJson.Value<double>(json, "rope_theta", path) ?? defaults.RopeTheta,
            PadTokenId = Int(json, "pad_token_id", path) ?? defaults.PadTokenId,
            MaskTokenId = Int(json, "mask_token_id", path) ?? defaults.MaskTokenId,
            EosTokenId = Int(json, "eos_token_id", path) ?? defaults.EosTokenId,
            HiddenDropoutProb = Probability(json, "hidden_dropout_prob", path),
            AttentionProbsDropoutProb = Probability(json, "attention_probs_dropout_prob", path),
        };
        config.Validate(path);
        return config;
    }

    private static int? Int(JsonObject json, string key, string path)
    {
        var node = json[key];
        if (node is null || node.GetValueKind() == JsonValueKind.Null) return null;
        if (node.GetValueKind() != JsonValueKind.Number || !node.AsValue().TryGetValue(out int value))
            throw new BioForgeException($"{path}: '{key}' must be an integer");
        return value;
    }

    private static double Probability(JsonObject json, string key, string path)
    {
        var node = json[key];
        if (node is null || node.GetValueKind() == JsonValueKind.Null) return 0;
        if (node.GetValueKind() != JsonValueKind.Number || node.GetValue<double>() is < 0 or >= 1)
            throw new BioForgeException($"{path}: '{key}' must be a number in [0, 1)");
        return node.GetValue<double>();
    }

    public void Validate(string where)
    {
        ConfigSizes.RequirePositive(where, ("vocab_size", VocabSize), ("hidden_size", HiddenSize), ("num_hidden_layers", NumHiddenLayers),
            ("num_attention_heads", NumAttentionHeads), ("intermediate_size", IntermediateSize));
        if (HiddenSize % NumAttentionHeads != 0 || HeadDim % 2 != 0)
            throw new BioForgeException($"{where}: hidden_size {HiddenSize} must split into {NumAttentionHeads} heads of even size");
        if (MaxPositionEmbeddings < 3) throw new BioForgeException($"{where}: max_position_embeddings must be at least 3");
        // A zero or negative epsilon makes every layer norm of a constant row NaN, and every output with it.
        if (!(LayerNormEps > 0) || !double.IsFinite(LayerNormEps))
            throw new BioForgeException($"{where}: layer_norm_eps must be a positive number (got {LayerNormEps.ToString(System.Globalization.CultureInfo.InvariantCulture)})");
        // transformers' ESM rotates with base 10000 whatever its config says: a network of another would load there and
        // compute something else.
        if (RopeTheta != 10000.0)
            throw new BioForgeException($"{where}: rope_theta {RopeTheta.ToString(System.Globalization.CultureInfo.InvariantCulture)}: ESM-2's rotary embeddings use 10000 (Hugging Face's EsmRotaryEmbedding reads no other)");
        foreach (var (key, id) in new[] { ("pad_token_id", PadTokenId), ("mask_token_id", MaskTokenId), ("eos_token_id", EosTokenId) })
            if (id < 0 || id >= VocabSize) throw new BioForgeException($"{where}: {key} {id} is outside the vocabulary of {VocabSize}");
        ModelShape.CheckSize(where, "num_hidden_layers", NumHiddenLayers, ModelShape.MaxLayers);
        ModelShape.CheckSize(where, "hidden_size", HiddenSize, ModelShape.MaxHidden);
        ModelShape.CheckSize(where, "intermediate_size", IntermediateSize, ModelShape.MaxIntermediate);
        ModelShape.CheckSize(where, "vocab_size", VocabSize, ModelShape.MaxVocabulary);
        ModelShape.CheckSize(where, "max_position_embeddings", MaxPositionEmbeddings, ModelShape.MaxPositions);
        ModelShape.CheckSize(where, "num_attention_heads", NumAttentionHeads, HiddenSize);
    }

    /// <summary>
    /// The <c>config.json</c> that Hugging Face's <c>EsmForMaskedLM</c> reads; an encoder without the masked-LM head
    /// says <c>EsmModel</c>, so a fill-mask pipeline does not take a randomly initialised head for a trained one.
    /// </summary>
    public JsonObject ToJson(bool languageModelHead = true) => new()
    {
        ["architectures"] = new JsonArray(languageModelHead ? "EsmForMaskedLM" : "EsmModel"),
        ["model_type"] = "esm",
        ["vocab_size"] = VocabSize,
        ["hidden_size"] = HiddenSize,
        ["num_hidden_layers"] = NumHiddenLayers,
        ["num_attention_heads"] = NumAttentionHeads,
        ["intermediate_size"] = IntermediateSize,
        ["hidden_act"] = "gelu",
        ["layer_norm_eps"] = ConfigJson.Float(LayerNormEps),
        ["max_position_embeddings"] = MaxPositionEmbeddings,
        ["position_embedding_type"] = "rotary",
        ["rope_theta"] = ConfigJson.Float(RopeTheta),
        ["token_dropout"] = TokenDropout,
        ["emb_layer_norm_before"] = EmbLayerNormBefore,
        ["pad_token_id"] = PadTokenId,
        ["mask_token_id"] = MaskTokenId,
        ["eos_token_id"] = EosTokenId,
        ["hidden_dropout_prob"] = ConfigJson.Float(HiddenDropoutProb),
        ["attention_probs_dropout_prob"] = ConfigJson.Float(AttentionProbsDropoutProb),
        ["tie_word_embeddings"] = true,
        ["is_folding_model"] = false,
        ["dtype"] = "float32",
    };
}
