using System.IO.Compression;
using System.Text;
using BioForge.IO;

namespace BioForge.Chem;

/// <summary>
/// One input molecule as written: <see cref="Text"/> is a SMILES or, from SDF files, a MOL block; <see cref="Label"/>
/// is what the user sees in reports (the SMILES, or the SDF title); <see cref="Line"/> is 1-based.
/// </summary>
public sealed record MoleculeRecord(string Label, string Text, bool IsMolBlock, int Line, IReadOnlyDictionary<string, string> Properties)
{
    public bool TryParse(out Molecule? molecule, out string? error) =>
        IsMolBlock ? Molecule.TryFromMolBlock(Text, out molecule, out error) : Molecule.TryFromSmiles(Text, out molecule, out error);
}

/// <summary>Streams molecules from .smi, .csv/.tsv or .sdf files (each optionally .gz).</summary>
public static class MoleculeSource
{
    private static readonly IReadOnlyDictionary<string, string> NoProperties = new Dictionary<string, string>();

    /// <summary>The property holding a molecule's name: the text after the SMILES of a .smi line, or a table's name/id column.</summary>
    public const string NameProperty = "name";

    private static readonly string[] NameColumns = ["name", "id", "title", "zinc_id", "compound_id", "molecule_chembl_id"];

    public static IEnumerable<MoleculeRecord> Read(string path, string? smilesColumn = null)
    {
        if (!File.Exists(path)) throw new BioForgeException($"{path}: file not found");
        string name = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? path[..^3] : path;
        string ext = Path.GetExtension(name).ToLowerInvariant();
        return ext switch
        {
            ".smi" or ".smiles" or ".txt" => ReadSmiles(path),
            ".csv" or ".tsv" => ReadTable(path, smilesColumn),
            ".sdf" or ".sd" or ".mol" => ReadSdf(path),
            _ => throw new BioForgeException($"{path}: unknown molecule file type '{ext}' (use .smi, .csv, .tsv or .sdf, optionally .gz)"),
        };
    }

    private static StreamReader Open(string path)
    {
        Stream stream = File.OpenRead(path);
        if (path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase)) stream = new GZipStream(stream, CompressionMode.Decompress);
        return new StreamReader(stream, Encoding.UTF8);
    }

    /// <summary>One SMILES per line, optionally followed by whitespace and a name; blank lines are skipped.</summary>
    private static IEnumerable<MoleculeRecord> ReadSmiles(string path)
    {
        using var reader = Open(path);
        string? line;
        int number = 0;
        while ((line = reader.ReadLine()) != null)
        {
            number++;
            string text = line.Trim();
            if (text.Length == 0) continue;
            int space = text.IndexOfAny([' ', '\t']);
            string smiles = space < 0 ? text : text[..space];
            string name = space < 0 ? "" : text[(space + 1)..].Trim();
            yield return new MoleculeRecord(smiles, smiles, false, number, name.Length == 0 ? NoProperties : new Dictionary<string, string> { [NameProperty] = name });
        }
    }

    private static IEnumerable<MoleculeRecord> ReadTable(string path, string? smilesColumn)
    {
        using var reader = Open(path);
        string? header = reader.ReadLine();
        if (string.IsNullOrWhiteSpace(header)) throw new BioForgeException($"{path}: empty file (expected a header row)");
        char separator = path.Contains(".tsv", StringComparison.OrdinalIgnoreCase) || header.Contains('\t') ? '\t' : ',';
        var columns = Csv.Split(header.TrimEnd('\r'), separator);
        int index = smilesColumn is not null
            ? columns.IndexOf(smilesColumn)
            : columns.FindIndex(c => c.Trim().Equals("smiles", StringComparison.OrdinalIgnoreCase));
        if (index < 0 && smilesColumn is null)
            index = columns.FindIndex(c => c.Contains("smiles", StringComparison.OrdinalIgnoreCase));
        if (index < 0 && smilesColumn is null && columns.Count == 1)
        {
            // A one-column file without a SMILES header (MOSES's test.csv): every line, the first included, is a SMILES.
            foreach (var record in ReadSmiles(path)) yield return record;
            yield break;
        }
        if (index < 0)
            throw new BioForgeException($"{path}: no {(smilesColumn is null ? "SMILES" : $"'{smilesColumn}'")} column in the header ({string.Join(", ", columns)}); name it with --smiles-column");
        int nameIndex = columns.FindIndex(c => NameColumns.Contains(c.Trim(), StringComparer.OrdinalIgnoreCase));
        string? line;
        int number = 1;
        while ((line = reader.ReadLine()) != null)
        {
            number++;
            if (line.Trim().Length == 0) continue;
            var fields = Csv.Split(line.TrimEnd('\r'), separator);
            if (fields.Count <= index) throw new BioForgeException($"{path}:{number}: {fields.Count} fields, the SMILES column is number {index + 1}");
            string smiles = fields[index].Trim();
            string name = nameIndex >= 0 && nameIndex < fields.Count ? fields[nameIndex].Trim() : "";
            yield return new MoleculeRecord(smiles, smiles, false, number, name.Length == 0 ? NoProperties : new Dictionary<string, string> { [NameProperty] = name });
        }
    }

    /// <summary>MOL blocks separated by <c>$$$$</c>, each followed by <c>&gt;  &lt;name&gt;</c> data items.</summary>
    private static IEnumerable<MoleculeRecord> ReadSdf(string path)
    {
        using var reader = Open(path);
        var block = new StringBuilder();
        var properties = new Dictionary<string, string>();
        string? line, property = null, title = null;
        bool inData = false;
        int number = 0, start = 1, record = 0;
        while ((line = reader.ReadLine()) != null)
        {
            number++;
            line = line.TrimEnd('\r');
            if (line == "$$$$")
            {
                record++;
                yield return new MoleculeRecord(string.IsNullOrWhiteSpace(title) ? $"record {record}" : title!.Trim(), block.ToString(), true, start, properties);
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
            else if (property is not null && line.Length > 0)
            {
                properties[property] = properties[property].Length == 0 ? line : properties[property] + "\n" + line;
            }
        }
        if (block.ToString().Trim().Length > 0)
            yield return new MoleculeRecord(string.IsNullOrWhiteSpace(title) ? $"record {record + 1}" : title!.Trim(), block.ToString(), true, start, properties);
    }
}
