using System.Text;
using BioForge.IO;

namespace BioForge.Chem;

/// <summary>
/// One input molecule as written: <see cref="Text"/> is a SMILES or, from SDF files, a MOL block; <see cref="Label"/>
/// is what the user sees in reports (the SMILES, or the SDF title); <see cref="Line"/> is 1-based.
/// </summary>
public sealed partial record MoleculeRecord(string Label, string Text, bool IsMolBlock, int Line, IReadOnlyDictionary<string, string> Properties)
{
    /// <summary>Where the record is, as messages name it: its line in a file; a JSON array's element in a request.</summary>
    public string Where { get; init; } = $"line {Line}";

    /// <summary>What the molecule is called: the name given in the file, else its SDF title, else where it is (its line).</summary>
    public string Id => Properties.TryGetValue(MoleculeSource.NameProperty, out string? name) ? name : Label == Text ? Where : Label;

    public bool TryParse(out Molecule? molecule, out string? error)
    {
        if (!IsMolBlock) return Molecule.TryFromSmiles(Text, out molecule, out error);
        if (Molecule.TryFromMolBlock(Text, out molecule, out error)) return true;
        // RDKit counts a MOL block's lines from the record's first; a file's own line is the one a reader can go to.
        if (error is not null && Where == $"line {Line}")
            error = RecordLine().Replace(error, m => $"on line {Line + int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) - 1} (line {m.Groups[1].Value} of the record)");
        return false;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"\bon line (\d+)")]
    private static partial System.Text.RegularExpressions.Regex RecordLine();
}

/// <summary>Streams molecules from .smi, .csv/.tsv or .sdf files (each optionally .gz).</summary>
public static class MoleculeSource
{
    private static readonly IReadOnlyDictionary<string, string> NoProperties = new Dictionary<string, string>();

    /// <summary>The property holding a molecule's name: the text after the SMILES of a .smi line, or a table's name/id column.</summary>
    public const string NameProperty = "name";

    /// <summary>
    /// Longest line read (a SMILES, a table row or a line of a MOL block), checked while reading: SMILES are at most
    /// <see cref="Molecule.MaxSmilesLength"/> characters, so a longer line is a wrong file or a decompression bomb.
    /// </summary>
    public const int MaxLineLength = 100_000;

    private static readonly string[] NameColumns = ["name", "id", "title", "zinc_id", "compound_id", "molecule_chembl_id"];

    /// <summary>Whether the file is a CSV/TSV table (by its name, a .gz aside), whose SMILES column can be named.</summary>
    public static bool IsTable(string path) => Csv.Extension(path) is ".csv" or ".tsv";

    /// <summary>Whether the file holds MOL blocks (.sdf, .sd, .mol; a .gz aside).</summary>
    public static bool IsSdf(string path) => Csv.Extension(path) is ".sdf" or ".sd" or ".mol";

    /// <summary>
    /// The molecules of a file, streamed. A file with none (empty, or only blank lines), binary data, or a line longer
    /// than <see cref="MaxLineLength"/> is an error naming the file and line.
    /// </summary>
    /// <param name="idColumn">The table column or SDF data item naming each molecule (default: a column named name, id,
    /// title, zinc_id, compound_id or molecule_chembl_id; an SDF record's title line, else such a data item).</param>
    public static IEnumerable<MoleculeRecord> Read(string path, string? smilesColumn = null, string? idColumn = null)
    {
        if (!File.Exists(path)) throw new BioForgeException($"{path}: file not found");
        string ext = Csv.Extension(path);
        var records = ext switch
        {
            ".smi" or ".smiles" or ".txt" when idColumn is not null =>
                throw new BioForgeException($"{path}: a SMILES file has no columns; its names are the text after each SMILES (an id column is for CSV/TSV and SDF files)"),
            ".smi" or ".smiles" or ".txt" or ".sdf" or ".sd" or ".mol" when smilesColumn is not null =>
                throw new BioForgeException($"{path}: a SMILES column ({smilesColumn}) is for CSV/TSV tables; this file holds {(ext is ".smi" or ".smiles" or ".txt" ? "one SMILES per line" : "MOL blocks")}"),
            ".smi" or ".smiles" or ".txt" => ReadSmiles(path),
            ".csv" or ".tsv" => ReadTable(path, smilesColumn, idColumn),
            ".sdf" or ".sd" or ".mol" => ReadSdf(path, idColumn),
            _ => throw new BioForgeException($"{path}: unknown molecule file type '{ext}' (use .smi, .csv, .tsv or .sdf, optionally .gz)"),
        };
        return NotEmpty(path, records);
    }

    private static IEnumerable<MoleculeRecord> NotEmpty(string path, IEnumerable<MoleculeRecord> records)
    {
        bool any = false;
        foreach (var record in records)
        {
            any = true;
            yield return record;
        }
        if (!any) throw new BioForgeException($"{path}: the file holds no molecules (it is empty or has only blank lines)");
    }

    private static LineReader Open(string path) => LineReader.Open(path, MaxLineLength);

    /// <summary>One SMILES per line, optionally followed by whitespace and a name; blank lines and a header line (<c>smiles name</c>) are skipped.</summary>
    private static IEnumerable<MoleculeRecord> ReadSmiles(string path)
    {
        using var reader = Open(path);
        string? line;
        bool first = true;
        while ((line = reader.ReadLine()) != null)
        {
            string text = line.Trim();
            if (text.Length == 0) continue;
            int space = text.IndexOfAny([' ', '\t']);
            string smiles = space < 0 ? text : text[..space];
            bool header = first && smiles.Equals("smiles", StringComparison.OrdinalIgnoreCase);
            first = false;
            if (header) continue;
            string name = space < 0 ? "" : text[(space + 1)..].Trim();
            yield return new MoleculeRecord(smiles, smiles, false, reader.LineNumber, name.Length == 0 ? NoProperties : new Dictionary<string, string> { [NameProperty] = name });
        }
    }

    /// <summary>An SDF record's name: the data item asked for, else its title line, else a data item with a usual name column's name.</summary>
    private static string? Name(Dictionary<string, string> properties, string? title, string? idColumn)
    {
        string? Item(Func<string, bool> match) => properties.FirstOrDefault(p => match(p.Key) && p.Value.Trim().Length > 0).Value?.Trim();
        if (idColumn is not null) return Item(k => k.Equals(idColumn, StringComparison.OrdinalIgnoreCase));
        if (!string.IsNullOrWhiteSpace(title)) return null; // the record's label already
        return Item(k => NameColumns.Contains(k, StringComparer.OrdinalIgnoreCase));
    }

    private static IEnumerable<MoleculeRecord> ReadTable(string path, string? smilesColumn, string? idColumn)
    {
        using var reader = Open(path);
        string? header = reader.ReadLine();
        if (header is null) yield break;
        if (string.IsNullOrWhiteSpace(header)) throw new BioForgeException($"{path}:1: empty header row");
        char separator = Csv.Separator(path, header);
        var columns = Csv.Split(header, separator);
        int index = columns.FindIndex(c => c.Trim().Equals(smilesColumn ?? "smiles", StringComparison.OrdinalIgnoreCase));
        if (index < 0 && smilesColumn is null)
        {
            // One column that says SMILES (canonical_smiles) is it; of two (raw_smiles, canonical_smiles) the first was taken without a word.
            var named = columns.Where(c => c.Contains("smiles", StringComparison.OrdinalIgnoreCase)).ToList();
            if (named.Count > 1)
                throw new BioForgeException($"{path}: no column is named smiles and {named.Count} hold the word ({string.Join(", ", named.Select(c => c.Trim()))}); name one with --smiles-column where the command takes it, or rename the others");
            index = named.Count == 1 ? columns.IndexOf(named[0]) : -1;
        }
        if (index < 0 && smilesColumn is null && columns.Count == 1)
        {
            // A one-column file without a SMILES header (MOSES's test.csv): every line, the first included, is a SMILES.
            foreach (var record in ReadSmiles(path)) yield return record;
            yield break;
        }
        if (index < 0)
            throw new BioForgeException($"{path}: no {(smilesColumn is null ? "SMILES" : $"'{smilesColumn}'")} column in the header ({string.Join(", ", columns)}); name it with --smiles-column");
        if (columns.Count(c => c.Trim().Equals(columns[index].Trim(), StringComparison.OrdinalIgnoreCase)) > 1)
            throw new BioForgeException($"{path}: the header names the SMILES column '{columns[index].Trim()}' twice; which one is meant?");
        int nameIndex = idColumn is null
            ? columns.FindIndex(c => NameColumns.Contains(c.Trim(), StringComparer.OrdinalIgnoreCase))
            : columns.FindIndex(c => c.Trim().Equals(idColumn, StringComparison.OrdinalIgnoreCase));
        if (nameIndex < 0 && idColumn is not null)
            throw new BioForgeException($"{path}: no '{idColumn}' column in the header ({string.Join(", ", columns)})");
        string? line;
        while ((line = reader.ReadLine()) != null)
        {
            int number = reader.LineNumber;
            if (line.Trim().Length == 0) continue;
            if (Csv.QuotingProblem(line, separator) is { } problem) throw new BioForgeException($"{path}:{number}: {problem}");
            var fields = Csv.Split(line, separator);
            if (fields.Count != columns.Count) throw new BioForgeException($"{path}:{number}: {fields.Count} fields, the header has {columns.Count}");
            string smiles = fields[index].Trim();
            string name = nameIndex >= 0 && nameIndex < fields.Count ? fields[nameIndex].Trim() : "";
            yield return new MoleculeRecord(smiles, smiles, false, number, name.Length == 0 ? NoProperties : new Dictionary<string, string> { [NameProperty] = name });
        }
    }

    /// <summary>
    /// MOL blocks separated by <c>$$$$</c>, each followed by <c>&gt;  &lt;name&gt;</c> data items whose values end at a
    /// blank line. Text after <c>M  END</c> that is neither a data item nor <c>$$$$</c> is a molecule whose separator
    /// is missing: an error naming its line (RDKit's SDMolSupplier fails there too), never a record silently dropped.
    /// </summary>
    private static IEnumerable<MoleculeRecord> ReadSdf(string path, string? idColumn)
    {
        using var reader = Open(path);
        var block = new StringBuilder();
        var properties = new Dictionary<string, string>();
        string? line, property = null, title = null;
        bool inData = false;
        int start = 1, record = 0;
        while ((line = reader.ReadLine()) != null)
        {
            int number = reader.LineNumber;
            if (line.TrimEnd() == "$$$$") // trailing blanks as RDKit reads them
            {
                yield return Completed(++record);
                block.Clear();
                properties = new Dictionary<string, string>();
                inData = false;
                property = title = null;
                start = number + 1;
                continue;
            }
            if (!inData)
            {
                title ??= line;
                if (block.Length + line.Length > MaxRecordLength)
                    throw new BioForgeException($"{path}:{number}: the MOL block starting at line {start} is longer than {MaxRecordLength:N0} characters");
                block.Append(line).Append('\n');
                if (line.StartsWith("M  END", StringComparison.Ordinal)) inData = true;
                continue;
            }
            if (line.StartsWith('>'))
            {
                int open = line.IndexOf('<'), close = line.LastIndexOf('>');
                property = open >= 0 && close > open ? line[(open + 1)..close] : null;
                if (property is not null) properties[property] = "";
            }
            else if (line.Trim().Length == 0)
            {
                property = null; // a blank line ends a data item's value
            }
            else if (property is not null)
            {
                if (properties[property].Length + line.Length > MaxRecordLength)
                    throw new BioForgeException($"{path}:{number}: data item '{property}' is longer than {MaxRecordLength:N0} characters");
                properties[property] = properties[property].Length == 0 ? line : properties[property] + "\n" + line;
            }
            else
            {
                throw new BioForgeException($"{path}:{number}: '{Spelling.Excerpt(line.Trim())}' after the M  END of the record at line {start}, outside a data item: is the '$$$$' that ends that record missing?");
            }
        }
        // The last record may end without its '$$$$' (RDKit reads it so): named and checked as the others.
        if (block.ToString().Trim().Length > 0) yield return Completed(record + 1);

        MoleculeRecord Completed(int index)
        {
            if (Name(properties, title, idColumn) is { } id) properties[NameProperty] = id;
            else if (idColumn is not null) throw new BioForgeException($"{path}:{start}: the record has no '{idColumn}' data item");
            return new MoleculeRecord(string.IsNullOrWhiteSpace(title) ? $"record {index}" : title!.Trim(), block.ToString(), true, start, properties);
        }
    }

    /// <summary>Longest MOL block or data item of one SDF record (about 100,000 atoms).</summary>
    private const int MaxRecordLength = 10_000_000;

}
