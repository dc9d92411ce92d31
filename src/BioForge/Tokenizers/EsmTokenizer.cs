using System.Text.Json.Nodes;

namespace BioForge.Tokenizers;

/// <summary>
/// The ESM-2 alphabet: <c>&lt;cls&gt; residues &lt;eos&gt;</c>, one token per residue letter, special tokens written
/// as <c>&lt;name&gt;</c> inside a sequence. Ids are the checkpoint's <c>vocab.txt</c> line numbers.
/// </summary>
public sealed class EsmTokenizer
{
    /// <summary>The fair-esm / Hugging Face ESM-2 alphabet in id order.</summary>
    public static readonly IReadOnlyList<string> Esm2Vocabulary =
    [
        "<cls>", "<pad>", "<eos>", "<unk>",
        "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q", "N", "F", "Y", "M", "H", "W", "C",
        "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>",
    ];

    private readonly Dictionary<string, int> ids;

    public IReadOnlyList<string> Vocabulary { get; }
    public int ClsId { get; }
    public int PadId { get; }
    public int EosId { get; }
    public int UnkId { get; }
    public int MaskId { get; }

    public EsmTokenizer(IReadOnlyList<string> vocabulary)
    {
        Vocabulary = vocabulary;
        ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < vocabulary.Count; i++)
            if (!ids.TryAdd(vocabulary[i], i)) throw new BioForgeException($"vocabulary token '{vocabulary[i]}' appears twice");
        ClsId = Require("<cls>");
        PadId = Require("<pad>");
        EosId = Require("<eos>");
        UnkId = Require("<unk>");
        MaskId = Require("<mask>");
        ResidueIds = [.. Enumerable.Range(0, vocabulary.Count).Where(i => vocabulary[i].Length == 1 && char.IsLetter(vocabulary[i][0]))];
    }

    /// <summary>The ids of the residue letters (the 25 of ESM-2: the 20 amino acids, X, B, U, Z, O), what a masked site is predicted among.</summary>
    public IReadOnlyList<int> ResidueIds { get; }

    public static EsmTokenizer Esm2 { get; } = new(Esm2Vocabulary);

    /// <summary>Reads <c>vocab.txt</c> (one token per line, line number = id; spaces around a token ignored, as transformers' <c>load_vocab_file</c> strips them).</summary>
    public static EsmTokenizer FromVocabFile(string path)
    {
        var lines = File.ReadAllLines(path).Select(l => l.Trim()).ToList();
        while (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        if (lines.Count == 0) throw new BioForgeException($"{path}: empty vocabulary");
        try
        {
            return new EsmTokenizer(lines);
        }
        catch (BioForgeException e)
        {
            throw new BioForgeException($"{path}: {e.Message}");
        }
    }

    /// <summary>
    /// The alphabet of a <c>tokenizer.json</c> of the kind <see cref="SaveHuggingFace"/> writes (as transformers'
    /// <c>save_pretrained</c> writes it back, without <c>vocab.txt</c>); null when the file is absent or holds another tokenizer.
    /// </summary>
    public static EsmTokenizer? FromHuggingFace(string path)
    {
        if (WordLevelTokenizerFiles.ReadVocabulary(path, HuggingFaceSplit) is not { } byId) return null;
        try
        {
            return new EsmTokenizer(byId);
        }
        catch (BioForgeException e)
        {
            throw new BioForgeException($"{path}: {e.Message}");
        }
    }

    /// <summary>The pre-tokenizer's split of the <c>tokenizer.json</c> this alphabet is written as: one token per character.</summary>
    private const string HuggingFaceSplit = ".";

    /// <summary>
    /// Writes the alphabet as a Hugging Face fast tokenizer (see <see cref="WordLevelTokenizerFiles"/>) for a protein
    /// decoder, whose <c>llama</c> model type gives transformers no tokenizer of its own: one token per character, ASCII
    /// lower case read as upper, <c>&lt;mask&gt;</c> and <c>&lt;unk&gt;</c> as written, any other character
    /// <c>&lt;unk&gt;</c>. For sequences of residue letters, gaps and those two tokens these are the ids
    /// <see cref="Encode"/> gives with <c>unknownAsUnk</c>; they part on a final stop (dropped here, <c>&lt;unk&gt;</c>
    /// there), an unknown <c>&lt;name&gt;</c> (one <c>&lt;unk&gt;</c> here, one per character there) and characters
    /// outside the BMP.
    /// </summary>
    public void SaveHuggingFace(string directory, int maxLength)
    {
        var toUpper = new JsonArray([.. Enumerable.Range('a', 26).Select(c => (JsonNode)new JsonObject
        {
            ["type"] = "Replace",
            ["pattern"] = new JsonObject { ["String"] = ((char)c).ToString() },
            ["content"] = char.ToUpperInvariant((char)c).ToString(),
        })]);
        WordLevelTokenizerFiles.Write(directory, Vocabulary, new SpecialTokens(Vocabulary[ClsId], Vocabulary[EosId], Vocabulary[UnkId], Vocabulary[PadId], Vocabulary[MaskId]),
            HuggingFaceSplit, new JsonObject { ["type"] = "Sequence", ["normalizers"] = toUpper }, maxLength);
    }

    private int Require(string token) =>
        ids.TryGetValue(token, out int id) ? id : throw new BioForgeException($"the vocabulary has no '{token}' token");

    public int IdOf(string token) => ids.TryGetValue(token, out int id) ? id : throw new BioForgeException($"'{token}' is not in the vocabulary");

    /// <summary>
    /// Token ids of <c>&lt;cls&gt; sequence &lt;eos&gt;</c>. Letters may be lower case; <c>&lt;mask&gt;</c> and
    /// <c>&lt;unk&gt;</c> may appear, other special tokens may not. An unknown letter is an error naming its position
    /// unless <paramref name="unknownAsUnk"/> maps it to <c>&lt;unk&gt;</c>. Positions count residues, a special token
    /// such as <c>&lt;mask&gt;</c> being one (the numbering of fill-mask's output), not characters. A <c>*</c> ending the
    /// sequence is the stop codon translated sequences end with, not a residue: left out, as FASTA files are read.
    /// </summary>
    /// <param name="stopCodon">False for a sequence whose stop was already left out (a FASTA record): a '*' still ending
    /// it was one of two and is read like any other character.</param>
    public int[] Encode(string sequence, bool unknownAsUnk = false, bool stopCodon = true)
    {
        int end = stopCodon && sequence.EndsWith('*') ? sequence.Length - 1 : sequence.Length;
        var tokens = new List<int>(end + 2) { ClsId };
        for (int i = 0; i < end; i++)
        {
            char c = sequence[i];
            if (c == '<')
            {
                int close = sequence.IndexOf('>', i + 1);
                string special = close < 0 ? "" : sequence[i..(close + 1)];
                if (close < 0 || !ids.TryGetValue(special, out int sid))
                {
                    if (unknownAsUnk && close >= 0) { tokens.Add(UnkId); i = close; continue; }
                    throw new BioForgeException($"unknown special token '{(close < 0 ? sequence[i..] : special)}' at position {tokens.Count}");
                }
                // <cls>, <eos> and <pad> frame and fill sequences; inside one they would change what the model reads.
                if (sid != MaskId && sid != UnkId)
                    throw new BioForgeException($"special token '{special}' at position {tokens.Count} is not allowed inside a sequence (only <mask> and <unk>)");
                tokens.Add(sid);
                i = close;
                continue;
            }
            if (ids.TryGetValue(char.ToUpperInvariant(c).ToString(), out int id))
                tokens.Add(id);
            else if (unknownAsUnk)
                tokens.Add(UnkId);
            else
                throw new BioForgeException($"invalid residue '{Spelling.CharacterAt(sequence, i)}' at position {tokens.Count} (not in the model's alphabet)");
        }
        tokens.Add(EosId);
        return [.. tokens];
    }

    public string Decode(int id) => id >= 0 && id < Vocabulary.Count ? Vocabulary[id] : throw new BioForgeException($"token id {id} is outside the vocabulary");
}
