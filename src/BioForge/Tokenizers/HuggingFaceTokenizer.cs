using System.Text.Json.Nodes;
using BioForge.IO;
using Tokenizers.DotNet;

namespace BioForge.Tokenizers;

/// <summary>
/// A checkpoint's own Hugging Face tokenizer (the byte-level BPE of GPT-2, ProtGPT2 and SMILES GPT-2s), run by Hugging
/// Face's Rust <c>tokenizers</c> library through Tokenizers.DotNet, so ids are those the Python library gives.
/// Reads <c>tokenizer.json</c>, or the older <c>vocab.json</c> + <c>merges.txt</c> pair as GPT-2's byte-level BPE.
/// </summary>
public sealed class HuggingFaceTokenizer : IDisposable
{
    public const string FileName = "tokenizer.json";
    public const string VocabFileName = "vocab.json";
    public const string MergesFileName = "merges.txt";

    private readonly Tokenizer tokenizer;
    private readonly Lock gate = new();

    /// <summary>The added special tokens' texts (<c>&lt;|endoftext|&gt;</c>): decoding drops them, so text holding one cannot round-trip.</summary>
    private readonly IReadOnlyList<string> special;

    private HuggingFaceTokenizer(Tokenizer tokenizer, string source, int count, IReadOnlyList<string> special)
    {
        this.tokenizer = tokenizer;
        Source = source;
        Count = count;
        this.special = special;
    }

    /// <summary>The file it was read from, for messages.</summary>
    public string Source { get; }

    /// <summary>Tokens in the vocabulary, added tokens included (the highest id + 1).</summary>
    public int Count { get; }

    /// <summary>True when <paramref name="directory"/> holds a tokenizer this class reads.</summary>
    public static bool Exists(string directory) =>
        File.Exists(Path.Combine(directory, FileName))
        || (File.Exists(Path.Combine(directory, VocabFileName)) && File.Exists(Path.Combine(directory, MergesFileName)));

    /// <summary>The tokenizer of a checkpoint directory: <c>tokenizer.json</c>, else <c>vocab.json</c> + <c>merges.txt</c>.</summary>
    public static HuggingFaceTokenizer Load(string directory)
    {
        string json = Path.Combine(directory, FileName);
        if (File.Exists(json))
        {
            // Truncation or padding saved with a training pipeline's tokenizer would cut or pad every text silently
            // (seven end tokens after a short protein, or a cut blamed on a character): BioForge frames its own inputs.
            var file = JsonFile.ReadObject(json, json);
            if (file["truncation"] is null && file["padding"] is null) return Open(json, json);
            file["truncation"] = null;
            file["padding"] = null;
            return OpenScratch(file, json);
        }
        string vocab = Path.Combine(directory, VocabFileName), merges = Path.Combine(directory, MergesFileName);
        if (!File.Exists(vocab) || !File.Exists(merges))
            throw new BioForgeException($"{directory}: no {FileName} (or {VocabFileName} + {MergesFileName}): the checkpoint's tokenizer is needed to read and write text");
        // The native library reads tokenizer.json files only: the pair becomes one.
        return OpenScratch(ByteLevelBpeJson(vocab, merges), vocab);
    }

    /// <summary>A tokenizer from JSON made here, through a scratch file (the native library reads files only).</summary>
    private static HuggingFaceTokenizer OpenScratch(JsonNode tokenizer, string source)
    {
        string scratch = Path.Combine(Path.GetTempPath(), $"bioforge-tokenizer-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(scratch, tokenizer.ToJsonString());
            return Open(scratch, source);
        }
        finally
        {
            File.Delete(scratch);
        }
    }

    private static HuggingFaceTokenizer Open(string path, string source)
    {
        var (count, special) = ReadVocabulary(path, source);
        try
        {
            return new HuggingFaceTokenizer(new Tokenizer(path), source, count, special);
        }
        catch (Exception e) when (e is TokenizerException or DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            throw new BioForgeException($"{source}: Hugging Face's tokenizers library could not read it ({e.Message})");
        }
    }

    /// <summary>Token ids of <paramref name="text"/>, as the checkpoint's tokenizer gives them (with the special tokens its post-processor adds: GPT-2's adds none).</summary>
    public int[] Encode(string text)
    {
        uint[] ids;
        lock (gate) ids = tokenizer.Encode(text);
        return [.. ids.Select(i => (int)i)];
    }

    /// <summary>The text of <paramref name="ids"/>; a token that is part of a multi-byte character decodes to U+FFFD on its own.</summary>
    public string Decode(IReadOnlyList<int> ids)
    {
        if (ids.Count == 0) return "";
        lock (gate) return tokenizer.Decode([.. ids.Select(i => (uint)i)]);
    }

    /// <summary>
    /// Tokens of <paramref name="text"/>, refused when they do not give the text back: a character outside a vocabulary
    /// that is not byte-complete (the library drops it silently).
    /// </summary>
    public int[] EncodeExactly(string text, string what)
    {
        foreach (string token in special)
            if (text.IndexOf(token, StringComparison.Ordinal) is int found and >= 0)
                throw new BioForgeException($"{what}: holds the special token '{token}' at position {found + 1}; special tokens are added by BioForge, not read from text");
        var ids = Encode(text);
        string back = Decode(ids);
        if (back != text)
        {
            // The model's folder and file, not the whole path: the service passes this message to its clients.
            int at = Enumerable.Range(0, Math.Min(back.Length, text.Length)).FirstOrDefault(i => back[i] != text[i], Math.Min(back.Length, text.Length));
            throw new BioForgeException($"{what}: the character '{(at < text.Length ? text[at] : back[at])}' at position {at + 1} is outside the vocabulary of {Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(Source)))}/{Path.GetFileName(Source)}");
        }
        return ids;
    }

    public void Dispose()
    {
        lock (gate) tokenizer.Dispose(); // not while a request thread encodes with it
    }

    private static (int Count, List<string> Special) ReadVocabulary(string path, string source)
    {
        var json = JsonFile.ReadObject(path, source);
        var ids = new List<int>();
        var special = new List<string>();
        if (json["model"] is JsonObject { } model && model["vocab"] is JsonObject vocab)
            foreach (var (token, id) in vocab) ids.Add(Id(id, $"model.vocab '{token}'"));
        if (json["added_tokens"] is JsonArray added)
            for (int k = 0; k < added.Count; k++)
            {
                var token = added[k] as JsonObject ?? throw new BioForgeException($"{source}: added_tokens[{k}] must be an object with id and content");
                ids.Add(Id(token["id"], "added_tokens[].id"));
                if (token["special"] is JsonValue flag && flag.TryGetValue(out bool isSpecial) && isSpecial
                    && token["content"] is JsonValue content && content.TryGetValue(out string? text) && text.Length > 0)
                    special.Add(text);
            }
        if (ids.Count == 0) throw new BioForgeException($"{source}: no vocabulary (model.vocab)");
        // Ids index the embedding: the largest cannot be a count past int, which would wrap and pass the size check.
        if (ids.Max() == int.MaxValue) throw new BioForgeException($"{source}: token id {int.MaxValue} is larger than any vocabulary");
        return (ids.Max() + 1, special);

        int Id(JsonNode? node, string what) => node is JsonValue v && v.TryGetValue(out int i) && i >= 0
            ? i : throw new BioForgeException($"{source}: {what} must be a non-negative integer id");
    }

    /// <summary>GPT-2's tokenizer as tokenizer.json describes it: byte-level pre-tokenizer and decoder around a BPE model.</summary>
    private static JsonObject ByteLevelBpeJson(string vocabPath, string mergesPath)
    {
        var vocab = JsonFile.ReadObject(vocabPath);
        var merges = new JsonArray();
        using (var reader = LineReader.Open(mergesPath, maxLength: 4096))
            while (reader.ReadLine() is { } text)
            {
                if (text.StartsWith("#version", StringComparison.Ordinal) || text.Length == 0) continue;
                if (text.Split(' ') is not [var left, var right])
                    throw new BioForgeException($"{mergesPath}:{reader.LineNumber}: a merge is two tokens separated by one space (got '{text}')");
                // The library checks this too, but names a position in the combined file it is given, not this line.
                foreach (string token in new[] { left, right, left + right })
                    if (!vocab.ContainsKey(token))
                        throw new BioForgeException($"{mergesPath}:{reader.LineNumber}: the merge '{text}' uses '{token}', which is not in {Path.GetFileName(vocabPath)}");
                merges.Add(text);
            }
        JsonObject ByteLevel(bool prefixSpace) => new() { ["type"] = "ByteLevel", ["add_prefix_space"] = prefixSpace, ["trim_offsets"] = true, ["use_regex"] = true };
        var added = new JsonArray();
        if (vocab["<|endoftext|>"] is { } end)
            added.Add(new JsonObject
            {
                ["id"] = end is JsonValue v && v.TryGetValue(out int id) ? id
                    : throw new BioForgeException($"{vocabPath}: '<|endoftext|>' must map to an integer id (got {end.ToJsonString()})"),
                ["content"] = "<|endoftext|>",
                ["single_word"] = false,
                ["lstrip"] = false,
                ["rstrip"] = false,
                ["normalized"] = true,
                ["special"] = true,
            });
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = null,
            ["pre_tokenizer"] = ByteLevel(false),
            ["post_processor"] = ByteLevel(false),
            ["decoder"] = ByteLevel(false),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["continuing_subword_prefix"] = "",
                ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["vocab"] = vocab.DeepClone(),
                ["merges"] = merges,
            },
        };
    }
}
