using System.Text.Json;
using System.Text.Json.Nodes;
using BioForge.IO;

namespace BioForge.Tokenizers;

/// <summary>The special tokens a word-level tokenizer frames and pads sequences with (mask: masked-LM vocabularies only).</summary>
internal sealed record SpecialTokens(string Bos, string Eos, string Unk, string Pad, string? Mask = null)
{
    public IEnumerable<string> All => Mask is null ? [Bos, Eos, Unk, Pad] : [Bos, Eos, Unk, Pad, Mask];
}

/// <summary>
/// A word-level vocabulary written as a Hugging Face fast tokenizer (<c>tokenizer.json</c>,
/// <c>tokenizer_config.json</c>, <c>special_tokens_map.json</c>), so <c>AutoTokenizer.from_pretrained</c> and
/// tokenizers.js read a BioForge checkpoint with the ids BioForge gives: the special tokens matched first, an optional
/// normalizer, an isolating regex split, the vocabulary with &lt;unk&gt; for the rest, and bos … eos added around
/// every sequence (bos A eos B eos for a pair, as ESM-2's tokenizer frames pairs).
/// </summary>
internal static class WordLevelTokenizerFiles
{
    public const string TokenizerFile = "tokenizer.json";

    public static void Write(string directory, IReadOnlyList<string> vocabulary, SpecialTokens specials, string splitPattern, JsonNode? normalizer, int maxLength)
    {
        var vocab = new JsonObject();
        for (int i = 0; i < vocabulary.Count; i++) vocab[vocabulary[i]] = i;
        int IdOf(string token) => vocab[token]?.GetValue<int>() ?? throw new ArgumentException($"special token '{token}' is not in the vocabulary");
        static JsonObject Piece(string kind, string id) => new() { [kind] = new JsonObject { ["id"] = id, ["type_id"] = 0 } };
        JsonObject Special(string token) => Piece("SpecialToken", token);
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray([.. specials.All.OrderBy(IdOf).Select(t => (JsonNode)new JsonObject
            {
                ["id"] = IdOf(t),
                ["content"] = t,
                ["single_word"] = false,
                ["lstrip"] = false,
                ["rstrip"] = false,
                ["normalized"] = false,
                ["special"] = true,
            })]),
            ["normalizer"] = normalizer,
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Split",
                ["pattern"] = new JsonObject { ["Regex"] = splitPattern },
                ["behavior"] = "Isolated",
                ["invert"] = false,
            },
            ["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(Special(specials.Bos), Piece("Sequence", "A"), Special(specials.Eos)),
                ["pair"] = new JsonArray(Special(specials.Bos), Piece("Sequence", "A"), Special(specials.Eos), Piece("Sequence", "B"), Special(specials.Eos)),
                ["special_tokens"] = new JsonObject
                {
                    [specials.Bos] = new JsonObject { ["id"] = specials.Bos, ["ids"] = new JsonArray(IdOf(specials.Bos)), ["tokens"] = new JsonArray(specials.Bos) },
                    [specials.Eos] = new JsonObject { ["id"] = specials.Eos, ["ids"] = new JsonArray(IdOf(specials.Eos)), ["tokens"] = new JsonArray(specials.Eos) },
                },
            },
            ["decoder"] = new JsonObject { ["type"] = "Fuse" },
            ["model"] = new JsonObject { ["type"] = "WordLevel", ["vocab"] = vocab, ["unk_token"] = specials.Unk },
        };
        var specialTokens = new JsonObject
        {
            ["bos_token"] = specials.Bos,
            ["eos_token"] = specials.Eos,
            ["unk_token"] = specials.Unk,
            ["pad_token"] = specials.Pad,
        };
        if (specials.Mask is not null) specialTokens["mask_token"] = specials.Mask;
        var config = specialTokens.DeepClone().AsObject();
        config["tokenizer_class"] = "PreTrainedTokenizerFast";
        config["model_max_length"] = maxLength;
        config["padding_side"] = "right";
        config["clean_up_tokenization_spaces"] = false;
        var indented = new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        AtomicFile.WriteText(Path.Combine(directory, TokenizerFile), tokenizer.ToJsonString(indented) + "\n");
        AtomicFile.WriteText(Path.Combine(directory, "tokenizer_config.json"), config.ToJsonString(indented) + "\n");
        AtomicFile.WriteText(Path.Combine(directory, "special_tokens_map.json"), specialTokens.ToJsonString(indented) + "\n");
    }

    /// <summary>
    /// The vocabulary, by id, of a <c>tokenizer.json</c> of the kind <see cref="Write"/> makes with
    /// <paramref name="splitPattern"/> (as transformers' <c>save_pretrained</c> writes it back too); null when the file
    /// is absent or holds another tokenizer (a byte-level BPE's ids, or another split's, would not mean these).
    /// </summary>
    public static IReadOnlyList<string>? ReadVocabulary(string path, string splitPattern)
    {
        if (!File.Exists(path)) return null;
        var root = JsonFile.Read(path);
        static string? Text(JsonNode? node) => node?.GetValueKind() == JsonValueKind.String ? node.GetValue<string>() : null;
        static JsonNode? Field(JsonNode? node, string key) => node is JsonObject o ? o[key] : null; // another kind of value: not this tokenizer
        if (Field(root, "model") is not JsonObject { } model || Text(model["type"]) != "WordLevel" || model["vocab"] is not JsonObject vocab
            || Text(Field(Field(Field(root, "pre_tokenizer"), "pattern"), "Regex")) != splitPattern)
            return null;
        var byId = new string[vocab.Count];
        foreach (var (token, id) in vocab)
        {
            if (id?.GetValueKind() != JsonValueKind.Number || !id.AsValue().TryGetValue(out int index) || index < 0 || index >= byId.Length || byId[index] is not null)
                throw new BioForgeException($"{path}: the ids of model.vocab are not 0..{byId.Length - 1}, each once");
            byId[index] = token;
        }
        return byId;
    }
}
