using System.Text.Json.Nodes;

namespace BioForge.Models.Gpt2;

/// <summary>The fields of a Hugging Face <c>GPT2Config</c> that define the decoder (defaults: the original GPT-2 small).</summary>
public sealed record Gpt2Config
{
    public int VocabSize { get; init; } = 50257;
    /// <summary><c>n_positions</c>: rows of the learned position table, so the longest sequence.</summary>
    public int MaxPositions { get; init; } = 1024;
    public int HiddenSize { get; init; } = 768;
    public int NumLayers { get; init; } = 12;
    public int NumHeads { get; init; } = 12;
    /// <summary><c>n_inner</c>, 4 × hidden when absent or null.</summary>
    public int InnerSize { get; init; } = 3072;
    public string Activation { get; init; } = "gelu_new";
    public double LayerNormEpsilon { get; init; } = 1e-5;
    public bool TieWordEmbeddings { get; init; } = true;
    public int BosTokenId { get; init; } = 50256;
    public int EosTokenId { get; init; } = 50256;

    public int HeadDim => HiddenSize / NumHeads;

    /// <summary>The <c>config.json</c> keys this reader understands.</summary>
    public static IReadOnlySet<string> Keys { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "model_type", "architectures", "vocab_size", "n_positions", "n_ctx", "n_embd", "n_layer", "n_head", "n_inner",
        "activation_function", "layer_norm_epsilon", "resid_pdrop", "embd_pdrop", "attn_pdrop", "scale_attn_weights",
        "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "tie_word_embeddings", "bos_token_id", "eos_token_id",
        "pad_token_id", "initializer_range", "use_cache", "dtype", "torch_dtype",
    };

    /// <summary>The activations GPT-2 checkpoints name: the tanh approximation (GPT-2's own) and the exact GELU.</summary>
    private static readonly string[] Activations = ["gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu"];

    public static Gpt2Config FromJson(string path) => FromJson(ConfigJson.Read(path, "gpt2"), path);

    /// <param name="path">Names the source in error messages.</param>
    public static Gpt2Config FromJson(JsonObject json, string path)
    {
        string act = Text("activation_function") ?? "gelu_new";
        if (!Activations.Contains(act))
            throw new BioForgeException($"{path}: activation_function '{act}' is not supported ({string.Join(", ", Activations)})");
        // Two GPT-2 variants change the attention scores; refused rather than silently computed the plain way.
        if (Bool("scale_attn_weights") == false) throw new BioForgeException($"{path}: scale_attn_weights false is not supported");
        if (Bool("scale_attn_by_inverse_layer_idx") == true) throw new BioForgeException($"{path}: scale_attn_by_inverse_layer_idx is not supported");
        int hidden = Int("n_embd") ?? 768, heads = Int("n_head") ?? 12;
        var config = new Gpt2Config
        {
            VocabSize = Int("vocab_size") ?? 50257,
            MaxPositions = Int("n_positions") ?? Int("n_ctx") ?? 1024,
            HiddenSize = hidden,
            NumLayers = Int("n_layer") ?? 12,
            NumHeads = heads,
            InnerSize = Int("n_inner") ?? 4 * hidden,
            Activation = act,
            LayerNormEpsilon = json["layer_norm_epsilon"] is JsonValue eps && eps.TryGetValue(out double e) ? e
                : json["layer_norm_epsilon"] is null ? 1e-5 : throw new BioForgeException($"{path}: 'layer_norm_epsilon' must be a number"),
            TieWordEmbeddings = Bool("tie_word_embeddings") ?? true,
            BosTokenId = FramingId("bos_token_id"),
            EosTokenId = FramingId("eos_token_id"),
        };
        ConfigSizes.RequirePositive(path, ("vocab_size", config.VocabSize), ("n_embd", config.HiddenSize), ("n_inner (4 × n_embd when absent)", config.InnerSize), ("n_layer", config.NumLayers),
            ("n_head", config.NumHeads), ("n_positions (or n_ctx)", config.MaxPositions));
        if (config.HiddenSize % config.NumHeads != 0)
            throw new BioForgeException($"{path}: n_embd {config.HiddenSize} is not divisible by n_head {config.NumHeads}");
        if (!(config.LayerNormEpsilon > 0) || !double.IsFinite(config.LayerNormEpsilon)) throw new BioForgeException($"{path}: layer_norm_epsilon must be a positive finite number (got {config.LayerNormEpsilon.ToString(System.Globalization.CultureInfo.InvariantCulture)})");
        foreach (var (key, id) in new[] { ("bos_token_id", config.BosTokenId), ("eos_token_id", config.EosTokenId) })
            if (id < 0 || id >= config.VocabSize) throw new BioForgeException($"{path}: {key} {id} is outside the vocabulary of {config.VocabSize}");
        ModelShape.CheckSize(path, "n_layer", config.NumLayers, ModelShape.MaxLayers);
        ModelShape.CheckSize(path, "n_embd", config.HiddenSize, ModelShape.MaxHidden);
        ModelShape.CheckSize(path, "n_inner", config.InnerSize, ModelShape.MaxIntermediate);
        ModelShape.CheckSize(path, "vocab_size", config.VocabSize, ModelShape.MaxVocabulary);
        ModelShape.CheckSize(path, "n_positions", config.MaxPositions, ModelShape.MaxPositions);
        return config;

        // Absent, GPT-2's <|endoftext|> (transformers' default); null means the model has none, and BioForge frames every
        // sample with both, so a null is refused rather than read as 50256, a token the file never names.
        int FramingId(string key) => json.ContainsKey(key) && json[key] is null
            ? throw new BioForgeException($"{path}: {key} is null; BioForge starts and ends every sample with it, so give its id (GPT-2's <|endoftext|> is 50256)")
            : Int(key) ?? 50256;
        int? Int(string key) => json[key] switch
        {
            null => null,
            JsonValue v when v.TryGetValue(out int i) => i,
            _ => throw new BioForgeException($"{path}: '{key}' must be an integer"),
        };
        bool? Bool(string key) => json[key] switch
        {
            null => null,
            JsonValue v when v.TryGetValue(out bool b) => b,
            _ => throw new BioForgeException($"{path}: '{key}' must be true or false"),
        };
        string? Text(string key) => json[key] switch
        {
            null => null,
            JsonValue v when v.TryGetValue(out string? s) => s,
            _ => throw new BioForgeException($"{path}: '{key}' must be a string"),
        };
    }
}
