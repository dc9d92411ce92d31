using System.Globalization;
using BioForge.IO;

namespace BioForge.Proteins;

/// <summary>One substitution; <see cref="Position"/> is 1-based in the wild-type sequence.</summary>
public sealed record Substitution(char WildType, int Position, char Mutant);

/// <summary>A variant as written by the user (e.g. "A23G:K45R") and its substitutions.</summary>
public sealed record Variant(string Name, IReadOnlyList<Substitution> Substitutions)
{
    /// <summary>The largest number a first residue may carry (the longest proteins have about 35,000 residues).</summary>
    public const int MaxIndexBase = 1_000_000;

    private const string CanonicalAminoAcids = "ACDEFGHIKLMNPQRSTVWY";

    /// <summary>
    /// Parses "A23G" or a multi-mutant "A23G:K45R" (also "A23G,K45R" inside one table cell) and checks every
    /// wild-type letter against <paramref name="wildType"/>. <paramref name="indexBase"/> is the number the first residue
    /// carries: 0 reads 0-based positions, 24 a protein numbered from its 24th residue (ESM's <c>--offset-idx</c>).
    /// </summary>
    public static Variant Parse(string text, string wildType, int indexBase = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(indexBase);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(indexBase, MaxIndexBase);
        string name = text.Trim();
        if (name.Length == 0) throw new BioForgeException("empty mutation");
        var subs = new List<Substitution>();
        foreach (string part in name.Split([':', ','], StringSplitOptions.TrimEntries))
        {
            if (part.Length == 0) throw new BioForgeException($"mutation '{name}': an empty substitution (a stray ':' or ',')");
            if (part[^1] == '*')
                throw new BioForgeException($"mutation '{part}' in '{name}': a stop (nonsense) variant cannot be scored: the masked marginal compares two amino acids at a site");
            if (part.Length < 3 || !char.IsLetter(part[0]) || !char.IsLetter(part[^1])
                || !int.TryParse(part.AsSpan(1, part.Length - 2), NumberStyles.None, CultureInfo.InvariantCulture, out int raw))
                throw new BioForgeException($"mutation '{part}' in '{name}': expected wild-type letter, position, mutant letter (e.g. A23G)");
            int position = raw - indexBase + 1;
            char wt = char.ToUpperInvariant(part[0]), mut = char.ToUpperInvariant(part[^1]);
            // X, B, Z, U and O are in ESM's alphabet, so a masked-marginal score exists for them, but not a residue to make.
            if (!CanonicalAminoAcids.Contains(mut))
                throw new BioForgeException($"mutation '{part}' in '{name}': the mutant {mut} is not one of the 20 amino acids ({CanonicalAminoAcids})");
            if (position < 1 || position > wildType.Length)
                throw new BioForgeException($"mutation '{part}' in '{name}': position {raw} is outside the {wildType.Length}-residue wild type"
                    + (indexBase == 1 ? "" : $" (numbered from {indexBase}: {indexBase}–{(long)indexBase + wildType.Length - 1})"));
            char actual = char.ToUpperInvariant(wildType[position - 1]);
            if (actual != wt)
                throw new BioForgeException($"mutation '{part}' in '{name}': the wild type has {actual} at position {raw}, not {wt}");
            if (!CanonicalAminoAcids.Contains(wt))
                throw new BioForgeException($"mutation '{part}' in '{name}': the wild type's {wt} at position {raw} is not one of the 20 amino acids, so there is no residue to compare the mutant with");
            if (subs.Any(s => s.Position == position))
                throw new BioForgeException($"mutation '{name}' changes position {raw} twice");
            subs.Add(new Substitution(wt, position, mut));
        }
        if (subs.Count == 0) throw new BioForgeException($"mutation '{name}' has no substitutions");
        return new Variant(name, subs);
    }

    /// <summary>
    /// A deep mutational scan: every single substitution to another of the 20 amino acids, position by position
    /// (positions whose wild type is not one of them, such as X, are left out).
    /// </summary>
    /// <param name="indexBase">The number the first residue carries in the names (0 names the first residue's variants M0A …).</param>
    public static List<Variant> Scan(string wildType, int indexBase = 1)
    {
        var variants = new List<Variant>();
        for (int position = 1; position <= wildType.Length; position++)
        {
            char wt = char.ToUpperInvariant(wildType[position - 1]);
            if (!CanonicalAminoAcids.Contains(wt)) continue;
            foreach (char mutant in CanonicalAminoAcids)
                if (mutant != wt) variants.Add(new Variant($"{wt}{position - 1 + indexBase}{mutant}", [new Substitution(wt, position, mutant)]));
        }
        return variants;
    }

    /// <summary>The sites <see cref="Scan"/> leaves out, as <c>X3</c> (wild type and number).</summary>
    public static List<string> ScanSkips(string wildType, int indexBase = 1) =>
        [.. wildType.Select((c, i) => (Residue: char.ToUpperInvariant(c), Number: i + indexBase)).Where(s => !CanonicalAminoAcids.Contains(s.Residue)).Select(s => $"{s.Residue}{s.Number}")];
}

/// <summary>Variants from a table, with the measured fitness when the table has it (null for a variant it left empty).</summary>
public sealed record VariantTable(IReadOnlyList<Variant> Variants, IReadOnlyList<double?>? Measured, string? MeasuredColumn)
{
    private static readonly string[] MutationColumns = ["mutant", "variant", "mutation", "mutations"];
    private static readonly string[] MeasuredColumns = ["DMS_score", "score"];

    /// <summary>
    /// Reads a CSV or TSV (optionally .gz) with a header. The mutation column is <paramref name="mutationColumn"/> or
    /// the first of mutant / variant / mutation(s); a DMS_score (or score) column, or <paramref name="scoreColumn"/>,
    /// is read as the measured value: an empty cell, NA or NaN (a variant not measured) is missing, other text an error.
    /// </summary>
    public static VariantTable Read(string path, string wildType, string? mutationColumn, int indexBase, string? scoreColumn = null)
    {
        if (!File.Exists(path)) throw new BioForgeException($"{path}: file not found");
        using var reader = LineReader.Open(path, Csv.MaxLineLength);
        string? headerLine = reader.ReadLine();
        if (string.IsNullOrWhiteSpace(headerLine)) throw new BioForgeException($"{path}: empty file (expected a header row)");
        char separator = Csv.Separator(path, headerLine);
        // Trimmed as MoleculeSource trims its headers: "mutant, DMS_score" lost its score column without a word.
        var header = Csv.Split(headerLine.TrimEnd('\r'), separator).Select(h => h.Trim()).ToList();
        mutationColumn = mutationColumn?.Trim();
        scoreColumn = scoreColumn?.Trim();
        var mutationColumns = Enumerable.Range(0, header.Count)
            .Where(i => mutationColumn is not null ? header[i] == mutationColumn : MutationColumns.Contains(header[i], StringComparer.OrdinalIgnoreCase)).ToList();
        // Two candidates would have the first read without a word, the other ignored.
        if (mutationColumns.Count > 1)
            throw new BioForgeException($"{path}: the header names {string.Join(" and ", mutationColumns.Select(i => $"'{header[i]}' (column {i + 1})"))}; which one holds the mutations? (--mutation-column NAME{(mutationColumn is null ? "" : "; rename one of the two")})");
        int mutationIndex = mutationColumns.Count == 1 ? mutationColumns[0] : -1;
        if (mutationIndex < 0)
            throw new BioForgeException($"{path}: no {(mutationColumn is null ? "mutant/variant" : $"'{mutationColumn}'")} column in the header ({string.Join(", ", header)})");
        int measuredIndex = scoreColumn is not null
            ? header.IndexOf(scoreColumn) is >= 0 and var given ? given != mutationIndex ? given
                    : throw new BioForgeException($"{path}: --score-column {scoreColumn} is the mutation column")
                : throw new BioForgeException($"{path}: no '{scoreColumn}' column in the header ({string.Join(", ", header)})")
            // Found without case, as the mutation column is (dms_score, Score).
            : MeasuredColumns.Select(c => header.FindIndex(h => string.Equals(h, c, StringComparison.OrdinalIgnoreCase))).FirstOrDefault(i => i >= 0 && i != mutationIndex, -1);
        // Two such columns would have the first read without a word (as two mutation columns would).
        if (measuredIndex >= 0 && header.Count(h => string.Equals(h, header[measuredIndex], scoreColumn is null ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal)) > 1)
            throw new BioForgeException($"{path}: the header has the score column '{header[measuredIndex]}' twice; which one is meant? (name it with --score-column after renaming the other)");

        var variants = new List<Variant>();
        var measured = measuredIndex >= 0 ? new List<double?>() : null;
        string? line;
        while ((line = reader.ReadLine()) != null)
        {
            int lineNumber = reader.LineNumber;
            if (line.Trim().Length == 0) continue;
            var fields = Csv.Split(line.TrimEnd('\r'), separator);
            if (fields.Count != header.Count)
                throw new BioForgeException($"{path}:{lineNumber}: {fields.Count} fields, the header has {header.Count}");
            try
            {
                variants.Add(Variant.Parse(fields[mutationIndex], wildType, indexBase));
            }
            catch (BioForgeException e)
            {
                throw new BioForgeException($"{path}:{lineNumber}: {e.Message}");
            }
            if (measured is not null)
            {
                string cell = fields[measuredIndex].Trim();
                if (cell.Length == 0 || cell.Equals("NA", StringComparison.OrdinalIgnoreCase) || cell.Equals("NaN", StringComparison.OrdinalIgnoreCase))
                {
                    measured.Add(null); // not measured: scored, left out of ρ
                    continue;
                }
                // Infinity parses, and would enter Spearman's ρ as the highest rank.
                if (!double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value))
                    throw new BioForgeException($"{path}:{lineNumber}: {header[measuredIndex]} '{fields[measuredIndex]}' is not a finite number{Csv.DecimalCommaNote(fields[measuredIndex])} (leave a cell empty for a variant not measured)");
                measured.Add(value);
            }
        }
        if (variants.Count == 0) throw new BioForgeException($"{path}: no variants after the header");
        return new VariantTable(variants, measured, measuredIndex >= 0 ? header[measuredIndex] : null);
    }
}
