using System.Text;
using System.Text.Json;
using BioForge.IO;

namespace BioForge.Tokenizers;

/// <summary>
/// Token ids for a SMILES language model: <c>&lt;pad&gt;</c> 0, <c>&lt;bos&gt;</c> 1, <c>&lt;eos&gt;</c> 2,
/// <c>&lt;unk&gt;</c> 3 (the ids Llama checkpoints use for pad/bos/eos), then the tokens of the training data, most
/// frequent first. Saved with the model as <c>vocab.json</c> (a JSON list, position = id).
/// </summary>
public sealed class SmilesVocabulary
{
    public const int PadId = 0, BosId = 1, EosId = 2, UnkId = 3;
    public const string FileName = "vocab.json";
    private static readonly string[] Specials = ["<pad>", "<bos>", "<eos>", "<unk>"];

    private readonly string[] tokens;
    private readonly Dictionary<string, int> ids;

    public IReadOnlyList<string> Tokens => tokens;
    public int Count => tokens.Length;

    private SmilesVocabulary(string[] tokens)
    {
        if (tokens.Length < Specials.Length || !tokens.Take(Specials.Length).SequenceEqual(Specials))
            throw new BioForgeException($"a SMILES vocabulary must start with {string.Join(", ", Specials)}");
        this.tokens = tokens;
        ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < tokens.Length; i++)
            if (!ids.TryAdd(tokens[i], i)) throw new BioForgeException($"vocabulary token '{tokens[i]}' appears twice");
    }

    /// <summary>Collects the tokens of <paramref name="smiles"/>; tokens seen fewer than <paramref name="minCount"/> times map to &lt;unk&gt;.</summary>
    public static SmilesVocabulary Build(IEnumerable<string> smiles, int minCount = 1)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (string s in smiles)
            foreach (string token in SmilesTokenizer.Split(s))
                counts[token] = counts.GetValueOrDefault(token) + 1;
        var learned = counts.Where(kv => kv.Value >= minCount && !Specials.Contains(kv.Key))
            .OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key);
        return new SmilesVocabulary([.. Specials, .. learned]);
    }

    public static SmilesVocabulary Load(string path)
    {
        if (!File.Exists(path)) throw new BioForgeException($"{path}: SMILES vocabulary not found");
        string[]? list;
        try
        {
            list = JsonSerializer.Deserialize<string[]>(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new BioForgeException($"{path}: not a JSON list of tokens ({e.Message})");
        }
        if (list is not null && Array.IndexOf(list, null) is int at and >= 0) throw new BioForgeException($"{path}: token {at} is null, not a string");
        try
        {
            return new SmilesVocabulary(list ?? []);
        }
        catch (BioForgeException e)
        {
            throw new BioForgeException($"{path}: {e.Message}");
        }
    }

    public void Save(string path) => AtomicFile.WriteText(path, JsonSerializer.Serialize(tokens) + "\n");

    public const string HuggingFaceTokenizerFile = WordLevelTokenizerFiles.TokenizerFile;

    /// <summary>
    /// A model folder's SMILES vocabulary: its <c>vocab.json</c>, else the SMILES <c>tokenizer.json</c> BioForge writes
    /// (<see cref="FromHuggingFace"/>); null when it has neither, or when its <c>vocab.json</c> is a byte-level BPE's
    /// (a JSON object of token → id, as GPT-2-style tokenizers write, not this vocabulary's list).
    /// </summary>
    public static SmilesVocabulary? InModel(string directory)
    {
        string file = Path.Combine(directory, FileName), tokenizer = Path.Combine(directory, HuggingFaceTokenizerFile);
        if (File.Exists(file) && !IsTokenMap(file)) return Load(file);
        return File.Exists(tokenizer) ? FromHuggingFace(tokenizer) : null;
    }

    private static bool IsTokenMap(string path)
    {
        using var reader = new StreamReader(path);
        int c;
        while ((c = reader.Read()) >= 0 && char.IsWhiteSpace((char)c)) { }
        return c == '{';
    }

    /// <summary>
    /// The vocabulary of a Hugging Face <c>tokenizer.json</c> of the kind <see cref="SaveHuggingFace"/> writes (the
    /// SMILES regex split, a word-level vocabulary starting with the four special tokens), or null for any other
    /// tokenizer: a byte-level BPE's ids would not mean what this vocabulary's mean.
    /// </summary>
    public static SmilesVocabulary? FromHuggingFace(string path)
    {
        if (WordLevelTokenizerFiles.ReadVocabulary(path, SmilesTokenizer.Pattern) is not { } byId) return null;
        try
        {
            return new SmilesVocabulary([.. byId]);
        }
        catch (BioForgeException e)
        {
            throw new BioForgeException($"{path}: {e.Message}");
        }
    }

    /// <summary>
    /// Writes the vocabulary as a Hugging Face fast tokenizer (<c>tokenizer.json</c>, <c>tokenizer_config.json</c>,
    /// <c>special_tokens_map.json</c>), so <c>AutoTokenizer.from_pretrained</c> and tokenizers.js give the ids
    /// <see cref="Encode"/> gives: the SMILES regex as an isolating split, a word-level vocabulary with &lt;unk&gt;, and
    /// &lt;bos&gt; … &lt;eos&gt; added around every sequence.
    /// </summary>
    public void SaveHuggingFace(string directory, int maxLength) =>
        WordLevelTokenizerFiles.Write(directory, tokens, new SpecialTokens(Specials[BosId], Specials[EosId], Specials[UnkId], Specials[PadId]),
            SmilesTokenizer.Pattern, normalizer: null, maxLength);

    /// <summary>
    /// The first token of <paramref name="smiles"/> outside the vocabulary and the character it starts at (<c>'.' at
    /// character 19</c>), with what a '.' usually means; null when every token is known.
    /// </summary>
    public string? FirstUnknown(string smiles)
    {
        int at = 0;
        foreach (string token in SmilesTokenizer.Split(smiles))
        {
            int start = smiles.IndexOf(token, at, StringComparison.Ordinal);
            if (!ids.ContainsKey(token))
                return $"'{token}' at character {start + 1}" + (token == "." ? " (a salt or mixture: the model writes single molecules; send the parent)" : "");
            at = start + token.Length;
        }
        return null;
    }

    /// <summary><c>&lt;bos&gt; tokens &lt;eos&gt;</c>; tokens outside the vocabulary become &lt;unk&gt;.</summary>
    public int[] Encode(string smiles)
    {
        var split = SmilesTokenizer.Split(smiles);
        var result = new int[split.Count + 2];
        result[0] = BosId;
        for (int i = 0; i < split.Count; i++) result[i + 1] = ids.GetValueOrDefault(split[i], UnkId);
        result[^1] = EosId;
        return result;
    }

    /// <summary>The SMILES of a token sequence: stops at &lt;eos&gt;, skips &lt;bos&gt; and &lt;pad&gt;; null if it holds &lt;unk&gt;.</summary>
    public string? Decode(IEnumerable<long> sequence)
    {
        var text = new StringBuilder();
        foreach (long id in sequence)
        {
            if (id == EosId) break;
            if (id is BosId or PadId) continue;
            if (id == UnkId || id < 0 || id >= tokens.Length) return null;
            text.Append(tokens[id]);
        }
        return text.ToString();
    }

    /// <summary>The tokens as sampled, special ones written as their names (so a malformed sample stays visible as such).</summary>
    public string DecodeRaw(IEnumerable<long> sequence) =>
        string.Concat(sequence.Select(id => id >= 0 && id < tokens.Length ? tokens[id] : "<?>"));
}
