using System.Text.RegularExpressions;

namespace BioForge.Tokenizers;

/// <summary>
/// SMILES tokens by the regular expression of Schwaller et al. (Molecular Transformer): bracket atoms, two-letter
/// halogens, ring-closure numbers (%nn), bonds and branches are single tokens.
/// </summary>
internal static partial class SmilesTokenizer
{
    /// <summary>The token pattern (also written into a model's Hugging Face <c>tokenizer.json</c>).</summary>
    // Verbatim string: several public copies double the backslash and silently drop "\" (down bond) tokens.
    public const string Pattern = @"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$|\%[0-9]{2}|[0-9])";

    [GeneratedRegex(Pattern)]
    private static partial Regex TokenPattern();

    /// <summary>Splits a SMILES into tokens; characters no token covers are an error naming their position.</summary>
    public static IReadOnlyList<string> Split(string smiles)
    {
        var tokens = new List<string>();
        int position = 0;
        foreach (Match match in TokenPattern().Matches(smiles))
        {
            if (match.Index != position)
                throw new BioForgeException($"SMILES '{Spelling.Excerpt(smiles, 80)}': no token covers '{Spelling.Excerpt(smiles[position..match.Index])}' at position {position + 1}");
            tokens.Add(match.Value);
            position = match.Index + match.Length;
        }
        if (position != smiles.Length)
            throw new BioForgeException($"SMILES '{Spelling.Excerpt(smiles, 80)}': no token covers '{Spelling.Excerpt(smiles[position..])}' at position {position + 1}");
        return tokens;
    }
}
