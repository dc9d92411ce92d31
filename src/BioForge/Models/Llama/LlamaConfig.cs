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

    public static LlamaConfig FromJson(string path)
    {
        var json = ConfigJson.Read(path, "llama");
        string act = json["hidden_act"]?.GetValue<string>() ?? "silu";
        if (act != "silu") throw new BioForgeException($"{path}: hidden_act '{act}' is not supported (Llama uses 'silu')");
        if (json["attention_bias"]?.GetValue<bool>() == true || json["mlp_bias"]?.GetValue<bool>() == true)
            throw new BioForgeException($"{path}: biased Llama projections are not supported");
        var rope = json["rope_parameters"] as JsonObject ?? json["rope_scaling"] as JsonObject;
        string ropeType = rope?["rope_type"]?.GetValue<string>() ?? "default";
        if (ropeType != "default") throw new BioForgeException($"{path}: rope_type '{ropeType}' is not supported (only 'default')");

        int hidden = Int(json, "hidden_size") ?? 4096, heads = Int(json, "num_attention_heads") ?? 32;
        var config = new LlamaConfig
        {
            VocabSize = Int(json, "vocab_size") ?? 32000,
            HiddenSize = hidden,
            IntermediateSize = Int(json, "intermediate_size") ?? 11008,
            NumHiddenLayers = Int(json, "num_hidden_layers") ?? 32,
            NumAttentionHeads = heads,
            NumKeyValueHeads = Int(json, "num_key_value_heads") ?? heads,
            HeadDim = Int(json, "head_dim") ?? hidden / heads,
            RmsNormEps = json["rms_norm_eps"]?.GetValue<double>() ?? 1e-6,
            RopeTheta = rope?["rope_theta"]?.GetValue<double>() ?? json["rope_theta"]?.GetValue<double>() ?? 10000.0,
            MaxPositionEmbeddings = Int(json, "max_position_embeddings") ?? 2048,
            TieWordEmbeddings = json["tie_word_embeddings"]?.GetValue<bool>() ?? false,
            BosTokenId = Int(json, "bos_token_id") ?? 1,
            EosTokenId = Int(json, "eos_token_id") ?? 2,
            PadTokenId = Int(json, "pad_token_id") ?? 0,
        };
        if (config.NumAttentionHeads % config.NumKeyValueHeads != 0)
            throw new BioForgeException($"{path}: {config.NumAttentionHeads} attention heads cannot share {config.NumKeyValueHeads} key/value heads evenly");
        if (config.HeadDim % 2 != 0) throw new BioForgeException($"{path}: head_dim {config.HeadDim} must be even for rotary embeddings");
        return config;

        int? Int(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue(out int i) ? i : null;
    }
}
