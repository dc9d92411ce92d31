namespace BioForge;

/// <summary>Words for error messages: "did you mean …?" for a name that names nothing, a type in words, a long text quoted short.</summary>
public static class Spelling
{
    /// <summary>
    /// The name <paramref name="word"/> most likely misspells: one it begins (three letters or more), else one within an
    /// edit distance of 2 (1 for words under four letters, or <paramref name="maxDistance"/>); null when none is that near.
    /// </summary>
    public static string? Nearest(string word, IEnumerable<string> names, bool ignoreCase = false, int? maxDistance = null)
    {
        var comparison = ignoreCase ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        string Fold(string s) => ignoreCase ? s.ToUpperInvariant() : s;
        return names.Select(n => (Name: n, Distance: word.Length >= 3 && n.StartsWith(word, comparison) ? 0 : EditDistance(Fold(word), Fold(n))))
            .Where(c => c.Distance <= (maxDistance ?? (word.Length >= 4 ? 2 : 1))).OrderBy(c => c.Distance).Select(c => c.Name).FirstOrDefault();
    }

    /// <summary>
    /// A number or true/false type in words for an error message ("a whole number"), null for any other type.
    /// <paramref name="typeName"/> is a CLR full name, nullable or not, as exception messages write it.
    /// </summary>
    public static string? ValueInWords(string typeName) =>
        System.Text.RegularExpressions.Regex.Replace(typeName, @"^System\.Nullable`1\[(.*)\]$", "$1") switch
        {
            "System.Int32" => "a whole number up to 2,147,483,647",
            "System.Int64" => "a whole number",
            "System.UInt32" => "a whole number from 0 to 4,294,967,295",
            "System.UInt64" => "a whole number, 0 or more",
            "System.Double" or "System.Single" => "a number",
            "System.Boolean" => "true or false",
            _ => null,
        };

    /// <summary>
    /// <paramref name="text"/> as an error message quotes it: whole up to <paramref name="maxLength"/> characters, else
    /// its start and "…" (a line of a damaged file or a pasted SMILES can be megabytes).
    /// </summary>
    public static string Excerpt(string text, int maxLength = 40)
    {
        if (text.Length <= maxLength) return text;
        int cut = char.IsHighSurrogate(text[maxLength - 2]) ? maxLength - 2 : maxLength - 1; // not half a character
        return text[..cut] + "…";
    }

    private static int EditDistance(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (int i = 1; i <= a.Length; i++)
        {
            int diagonal = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }
        return row[b.Length];
    }

    /// <summary>The character at <paramref name="index"/> as a message quotes it: both halves of a pair outside the BMP (one alone prints as U+FFFD).</summary>
    public static string CharacterAt(string text, int index) =>
        char.IsHighSurrogate(text[index]) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1]) ? text.Substring(index, 2) : text[index].ToString();
}
