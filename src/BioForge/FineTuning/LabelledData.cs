using BioForge.Chem;
using BioForge.IO;
using BioForge.Runtime;

namespace BioForge.FineTuning;

/// <summary>One labelled input and where it came from (for messages).</summary>
public sealed record LabelledRow(string Source, int Line, string Sequence, string Label)
{
    public string Where => $"{Source}:{Line}";
}

/// <summary>Which rows of a labelled set train, select (validation) and measure (test) a model.</summary>
public sealed record DataSplit(IReadOnlyList<LabelledRow> Train, IReadOnlyList<LabelledRow> Valid, IReadOnlyList<LabelledRow> Test);

public static class LabelledData
{
    /// <summary>The column named <paramref name="name"/>: as written, else the one header that differs only in case (SMILES, pIC50).</summary>
    public static int Column(string path, IReadOnlyList<string> header, string name, string setting)
    {
        var exact = Enumerable.Range(0, header.Count).Where(i => header[i].Trim() == name).ToList();
        var found = exact.Count > 0 ? exact : [.. Enumerable.Range(0, header.Count).Where(i => header[i].Trim().Equals(name, StringComparison.OrdinalIgnoreCase))];
        if (found.Count == 0) throw new BioForgeException($"{path}: no column '{name}' ({setting}); the header has: {string.Join(", ", header.Select(h => h.Trim()))}");
        if (found.Count > 1) throw new BioForgeException($"{path}: the header names column '{name}' ({setting}) {(exact.Count > 1 ? "twice" : $"in {found.Count} spellings")}; which one is meant?");
        return found[0];
    }

    /// <summary>The sequence and label columns of a CSV/TSV with a header (values trimmed; an empty one is an error naming its line).</summary>
    /// <param name="settings">How errors name the two column settings (a fine-tuning config's keys by default).</param>
    public static List<LabelledRow> Read(string path, string sequenceColumn, string labelColumn, (string Sequence, string Label)? settings = null)
    {
        var rows = Csv.ReadRows(path, out var header);
        var (sequenceSetting, labelSetting) = settings ?? ("data.sequence_column", "data.label_column");
        int sequenceIndex = Column(path, header, sequenceColumn, sequenceSetting), labelIndex = Column(path, header, labelColumn, labelSetting);
        var result = new List<LabelledRow>();
        foreach (var (line, fields) in rows)
        {
            if (fields.Count <= Math.Max(sequenceIndex, labelIndex))
                throw new BioForgeException($"{path}:{line}: {fields.Count} fields, the header has {header.Count}");
            string sequence = fields[sequenceIndex].Trim(), label = fields[labelIndex].Trim();
            if (sequence.Length == 0) throw new BioForgeException($"{path}:{line}: empty {sequenceColumn}");
            if (label.Length == 0) throw new BioForgeException($"{path}:{line}: empty {labelColumn}");
            result.Add(new LabelledRow(path, line, sequence, label));
        }
        if (result.Count == 0) throw new BioForgeException($"{path}: no data rows");
        return result;
    }

    /// <summary>A seeded shuffle cut into test, validation and training parts.</summary>
    public static DataSplit Random(IReadOnlyList<LabelledRow> rows, double validFraction, double testFraction, ulong seed)
    {
        var order = Enumerable.Range(0, rows.Count).OrderBy(i => StatelessRandom.Hash(seed, i, 0x5717)).ToList();
        int test = (int)Math.Round(testFraction * rows.Count), valid = (int)Math.Round(validFraction * rows.Count);
        return new DataSplit(
            [.. order.Skip(test + valid).Select(i => rows[i])],
            [.. order.Skip(test).Take(valid).Select(i => rows[i])],
            [.. order.Take(test).Select(i => rows[i])]);
    }

    /// <summary>
    /// Scaffold split (MoleculeNet/DeepChem): molecules grouped by Bemis–Murcko scaffold, groups taken largest first
    /// (equal sizes: the group whose first row comes later first, as DeepChem sorts) into train until it is full, then
    /// validation, then test, so test scaffolds never appear in training. Unparsable SMILES form a group each; rows most
    /// of which are not SMILES (protein sequences) are refused, since their "split" would be the file's order.
    /// </summary>
    public static DataSplit Scaffold(IReadOnlyList<LabelledRow> rows, double validFraction, double testFraction)
    {
        var groups = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var unread = new List<int>();
        for (int i = 0; i < rows.Count; i++)
        {
            string key = $"#invalid {i}";
            if (Molecule.TryFromSmiles(rows[i].Sequence, out var molecule, out _))
                using (molecule) key = molecule!.MurckoScaffold();
            else unread.Add(i);
            if (!groups.TryGetValue(key, out var members)) groups[key] = members = [];
            members.Add(i);
        }
        if (unread.Count * 2 > rows.Count)
            throw new BioForgeException($"data.split scaffold groups molecules by their Bemis–Murcko scaffold, but RDKit reads no molecule in {unread.Count} of the {rows.Count} rows "
                + $"(the first: '{Spelling.Excerpt(rows[unread[0]].Sequence)}'); use data.split random for sequences that are not SMILES");
        double trainCut = (1 - validFraction - testFraction) * rows.Count, validCut = (1 - testFraction) * rows.Count;
        List<LabelledRow> train = [], valid = [], test = [];
        foreach (var members in groups.Values.OrderByDescending(g => g.Count).ThenByDescending(g => g[0]))
        {
            var part = train.Count + members.Count <= trainCut ? train
                : train.Count + valid.Count + members.Count <= validCut ? valid : test;
            part.AddRange(members.Select(i => rows[i]));
        }
        return new DataSplit(train, valid, test);
    }

}
