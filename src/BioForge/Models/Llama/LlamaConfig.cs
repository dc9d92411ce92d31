using System.Text.Json.Nodes;

namespace BioForge.Models.Llama;

/// <summary>The fields of a Hugging Face <c>LlamaConfig</c> that define the decoder.</summary>
public sealed record LlamaConfig
{
    public int VocabSize { get; init; } = 32000;
    public int HiddenSize { get; init; } = 4096;
    public int IntermediateSize { get; init; } = 11008;
    public int NumHiddenLayers { get; init; } = 32;
    public int NumAttentionHeads { get; init; } = 32;
    public int NumKeyValueHeads { get; init; } = 32;
    public int HeadDim { get; init; } = 128;
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000.0;
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public bool TieWordEmbeddings { get; init; }
    public int BosTokenId { get; init; } = 1;
    public int EosTokenId { get; init; } = 2;
    public int PadTokenId { get; init; }

    /// <summary>The <c>config.json</c> keys this reader understands; a training configuration may use no others.</summary>
    public static IReadOnlySet<string> Keys { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "model_type", "architectures", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
        "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act", "rms_norm_eps", "rope_theta",
        "rope_parameters", "rope_scaling", "max_position_embeddings", "tie_word_embeddings", "bos_token_id",
        "eos_token_id", "pad_token_id", "attention_bias", "mlp_bias", "attention_dropout", "dtype",
    };

    public static LlamaConfig FromJson(string path) => FromJson(ConfigJson.Read(path, "llama"), path);

    /// <param name="path">Names the source in error messages.</param>
    public static LlamaConfig FromJson(JsonObject json, string path)
    {
        if (ConfigJson.Value<double>(json, "attention_dropout", path) is { } p && p != 0)
            throw new BioForgeException($"{path}: attention_dropout {p} is not supported (BioForge's Llama has no dropout)");
        string act = ConfigJson.Text(json, "hidden_act", path) ?? "silu";
        if (act != "silu") throw new BioForgeException($"{path}: hidden_act '{act}' is not supported (Llama uses 'silu')");
        if (ConfigJson.Value<bool>(json, "attention_bias", path) == true || ConfigJson.Value<bool>(json, "mlp_bias", path) == true)
            throw new BioForgeException($"{path}: biased Llama projections are not supported");
        // A scaling written as anything but an object ("linear", a YAML override's text) would be passed over as no scaling.
        foreach (string key in new[] { "rope_parameters", "rope_scaling" })
            if (json[key] is { } value && value is not JsonObject)
                throw new BioForgeException($"{path}: {key} must be an object such as {{\"rope_type\": \"default\"}} (got {value.ToJsonString()})");
        var rope = json["rope_parameters"] as JsonObject ?? json["rope_scaling"] as JsonObject;
        // Either object may carry the scaling (rope_scaling is the older name; "type" the key before transformers 4.43).
        foreach (var scaling in new[] { json["rope_parameters"], json["rope_scaling"] }.OfType<JsonObject>())
        {
            string ropeType = ConfigJson.Text(scaling, "rope_type", path) ?? ConfigJson.Text(scaling, "type", path) ?? "default";
            if (ropeType != "default") throw new BioForgeException($"{path}: rope_type '{ropeType}' is not supported (only 'default')");
        }

        int hidden = Int(json, "hidden_size") ?? 4096, heads = Int(json, "num_attention_heads") ?? 32;
        ConfigSizes.RequirePositive(path, ("num_attention_heads", heads));
        var config = new LlamaConfig
        {
            VocabSize = Int(json, "vocab_size") ?? 32000,
            HiddenSize = hidden,
            IntermediateSize = Int(json, "intermediate_size") ?? 11008,
            NumHiddenLayers = Int(json, "num_hidden_layers") ?? 32,
            NumAttentionHeads = heads,
            NumKeyValueHeads = Int(json, "num_key_value_heads") ?? heads,
            HeadDim = Int(json, "head_dim") ?? hidden / heads,
            RmsNormEps = ConfigJson.Value<double>(json, "rms_norm_eps", path) ?? 1e-6,
            RopeTheta = (rope is null ? null : ConfigJson.Value<double>(rope, "rope_theta", path)) ?? ConfigJson.Value<double>(json, "rope_theta", path) ?? 10000.0,
            MaxPositionEmbeddings = Int(json, "max_position_embeddings") ?? 2048,
            TieWordEmbeddings = ConfigJson.Value<bool>(json, "tie_word_embeddings", path) ?? false,
            BosTokenId = Int(json, "bos_token_id") ?? 1,
            EosTokenId = Int(json, "eos_token_id") ?? 2,
            PadTokenId = Int(json, "pad_token_id") ?? 0,
        };
        ConfigSizes.RequirePositive(path, ("vocab_size", config.VocabSize), ("hidden_size", config.HiddenSize), ("intermediate_size", config.IntermediateSize),
            ("num_hidden_layers", config.NumHiddenLayers), ("num_attention_heads", config.NumAttentionHeads), ("num_key_value_heads", config.NumKeyValueHeads),
            ("head_dim (hidden_size / num_attention_heads when absent)", config.HeadDim), ("max_position_embeddings", config.MaxPositionEmbeddings));
        if (config.NumAttentionHeads % config.NumKeyValueHeads != 0)
            throw new BioForgeException($"{path}: {config.NumAttentionHeads} attention heads cannot share {config.NumKeyValueHeads} key/value heads evenly");
        if (config.HeadDim % 2 != 0) throw new BioForgeException($"{path}: head_dim {config.HeadDim} must be even for rotary embeddings");
        if (!(config.RmsNormEps > 0) || !double.IsFinite(config.RmsNormEps))
            throw new BioForgeException($"{path}: rms_norm_eps must be a positive number (got {config.RmsNormEps.ToString(System.Globalization.CultureInfo.InvariantCulture)})");
        if (!(config.RopeTheta > 1) || !double.IsFinite(config.RopeTheta))
            throw new BioForgeException($"{path}: rope_theta must be a number above 1 (got {config.RopeTheta.ToString(System.Globalization.CultureInfo.InvariantCulture)})");
        // Sampling starts from bos and pads with pad; both, and eos, are rows of the embedding.
        foreach (var (key, id) in new[] { ("bos_token_id", config.BosTokenId), ("eos_token_id", config.EosTokenId), ("pad_token_id", config.PadTokenId) })
            if (id < 0 || id >= config.VocabSize) throw new BioForgeException($"{path}: {key} {id} is outside the vocabulary of {config.VocabSize}");
        ModelShape.CheckSize(path, "num_hidden_layers", config.NumHiddenLayers, ModelShape.MaxLayers);
        ModelShape.CheckSize(path, "hidden_size", config.HiddenSize, ModelShape.MaxHidden);
        ModelShape.CheckSize(path, "intermediate_size", config.IntermediateSize, ModelShape.MaxIntermediate);
        ModelShape.CheckSize(path, "vocab_size", config.VocabSize, ModelShape.MaxVocabulary);
        ModelShape.CheckSize(path, "max_position_embeddings", config.MaxPositionEmbeddings, ModelShape.MaxPositions);
        ModelShape.CheckSize(path, "num_attention_heads", config.NumAttentionHeads, config.HiddenSize);
        ModelShape.CheckSize(path, "head_dim", config.HeadDim, ModelShape.MaxHidden);
        return config;

        int? Int(JsonObject o, string key) => o[key] switch
        {
            null => null,
            JsonValue v when v.TryGetValue(out int i) => i,
            _ => throw new BioForgeException($"{path}: '{key}' must be an integer"),
        };
    }

    /// <summary>The <c>config.json</c> that Hugging Face's <c>LlamaForCausalLM</c> reads.</summary>
    public JsonObject ToJson() => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["model_type"] = "llama",
        ["vocab_size"] = VocabSize,
        ["hidden_size"] = HiddenSize,
        ["intermediate_size"] = IntermediateSize,
        ["num_hidden_layers"] = NumHiddenLayers,
        ["num_attention_heads"] = NumAttentionHeads,
        ["num_key_value_heads"] = NumKeyValueHeads,
        ["head_dim"] = HeadDim,
        ["hidden_act"] = "silu",
        ["rms_norm_eps"] = ConfigJson.Float(RmsNormEps),
        ["rope_theta"] = ConfigJson.Float(RopeTheta),
        ["max_position_embeddings"] = MaxPositionEmbeddings,
        ["tie_word_embeddings"] = TieWordEmbeddings,
        ["attention_bias"] = false,
        ["mlp_bias"] = false,
        ["attention_dropout"] = ConfigJson.Float(0.0),
        ["bos_token_id"] = BosTokenId,
        ["eos_token_id"] = EosTokenId,
        ["pad_token_id"] = PadTokenId,
        ["dtype"] = "float32",
    };
}
