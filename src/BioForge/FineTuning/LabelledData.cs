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
            // More fields than the header is an unquoted separator in a field: the columns after it are shifted. Fewer is
            // a row whose trailing columns were left empty (as pandas reads it), fine while it holds the two read here.
            if (fields.Count > header.Count || fields.Count <= Math.Max(sequenceIndex, labelIndex))
                throw new BioForgeException($"{path}:{line}: {fields.Count} fields, the header has {header.Count}");
            string sequence = fields[sequenceIndex].Trim(), label = fields[labelIndex].Trim();
            if (sequence.Length == 0) throw new BioForgeException($"{path}:{line}: empty {sequenceColumn}");
            if (label.Length == 0) throw new BioForgeException($"{path}:{line}: empty {labelColumn}");
            result.Add(new LabelledRow(path, line, sequence, label));
        }
        if (result.Count == 0) throw new BioForgeException($"{path}: no data rows");
        return result;
    }

    /// <summary>
    /// What a row is, for keeping copies together: a molecule's parent (salt stripped, neutralized) as canonical SMILES
    /// without stereochemistry, and that parent's Bemis–Murcko scaffold, also without it ("" when acyclic); a row RDKit
    /// cannot read (a protein sequence) is its own text, with no scaffold — upper-cased when it is all letters, as the ESM
    /// tokenizer reads a sequence, so a lower-case copy of a protein is that protein. Replicate measurements, a salt and
    /// its parent, or two stereoisomers (Morgan features and scaffold keys cannot tell them apart) are then one compound,
    /// never split between fitting and testing.
    /// </summary>
    /// <param name="readMolecules">False where RDKit is not installed (a random split needs none): every row is its text.</param>
    public static (string Identity, string? Scaffold) Keys(LabelledRow row, bool readMolecules = true)
    {
        if (!readMolecules || !Molecule.TryFromSmiles(row.Sequence, out var molecule, out _))
            return (row.Sequence.All(char.IsAsciiLetter) ? row.Sequence.ToUpperInvariant() : row.Sequence, null);
        using (molecule)
        {
            Molecule? standardized = null;
            try
            {
                standardized = molecule!.Standardized();
            }
            catch (BioForgeException)
            {
                // A parent RDKit cannot neutralize stays as written: the key only groups copies.
            }
            using (standardized)
            {
                var parent = standardized ?? molecule!;
                return (parent.ToSmiles(isomeric: false), parent.MurckoScaffold(isomeric: false));
            }
        }
    }

    /// <summary>
    /// A seeded shuffle of compounds (<see cref="Keys"/>: copies of one move together) cut into test, validation and
    /// training parts. Without copies, row i goes where a shuffle of rows puts it.
    /// </summary>
    public static DataSplit Random(IReadOnlyList<LabelledRow> rows, double validFraction, double testFraction, ulong seed)
    {
        bool chemistry = Molecule.Unavailable() is null;
        var compounds = Enumerable.Range(0, rows.Count).GroupBy(i => Keys(rows[i], chemistry).Identity, StringComparer.Ordinal)
            .OrderBy(g => StatelessRandom.Hash(seed, g.First(), 0x5717)).ToList();
        int testCount = (int)Math.Round(testFraction * rows.Count), validCount = (int)Math.Round(validFraction * rows.Count);
        List<LabelledRow> train = [], valid = [], test = [];
        foreach (var members in compounds)
        {
            var part = test.Count < testCount ? test : valid.Count < validCount ? valid : train;
            part.AddRange(members.Select(i => rows[i]));
        }
        return new DataSplit(train, valid, test);
    }

    /// <summary>
    /// Scaffold split (MoleculeNet/DeepChem): molecules grouped by Bemis–Murcko scaffold, groups taken largest first
    /// (equal sizes: the group whose first row comes later first, as DeepChem sorts) into train until it is full, then
    /// validation, then test, so test scaffolds never appear in training. The scaffold is the salt parent's, without
    /// stereochemistry (<see cref="Keys"/>; as MoleculeNet writes it: stereoisomers share one). Unparsable SMILES form a
    /// group per text; rows most of which are not SMILES (protein sequences) are refused, since their "split" would be
    /// the file's order.
    /// <para>
    /// Largest first leaves validation the mid-size groups and test the singletons, two parts of different kinds, so the
    /// epoch chosen on validation says little about test. With a <paramref name="balancedSeed"/> (Chemprop's
    /// <c>scaffold_balanced</c>), groups larger than half the validation or test part go first, in seeded order, then the
    /// others, shuffled: validation and test both draw random scaffolds, and each seed gives another split.
    /// </para>
    /// </summary>
    public static DataSplit Scaffold(IReadOnlyList<LabelledRow> rows, double validFraction, double testFraction, ulong? balancedSeed = null)
    {
        var groups = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var unread = new List<int>();
        for (int i = 0; i < rows.Count; i++)
        {
            var (identity, scaffold) = Keys(rows[i]);
            if (scaffold is null) unread.Add(i);
            string key = scaffold ?? $"#invalid {identity}"; // copies of one unreadable text stay together too
            if (!groups.TryGetValue(key, out var members)) groups[key] = members = [];
            members.Add(i);
        }
        if (unread.Count * 2 > rows.Count)
            throw new BioForgeException($"data.split scaffold groups molecules by their Bemis–Murcko scaffold, but RDKit reads no molecule in {unread.Count} of the {rows.Count} rows "
                + $"(the first: '{Spelling.Excerpt(rows[unread[0]].Sequence)}'); use data.split random for sequences that are not SMILES");
        double trainCut = (1 - validFraction - testFraction) * rows.Count, validCut = (1 - testFraction) * rows.Count;
        IEnumerable<List<int>> order = groups.Values.OrderByDescending(g => g.Count).ThenByDescending(g => g[0]);
        if (balancedSeed is { } seed)
        {
            // Half the smaller part held out (a part not split off, such as QSAR's validation, does not count).
            double half = new[] { validFraction, testFraction }.Where(f => f > 0).DefaultIfEmpty(0).Min() * rows.Count / 2;
            order = groups.Values.OrderBy(g => g.Count > half ? 0 : 1).ThenBy(g => StatelessRandom.Hash(seed, g[0], 0x5CAF));
        }
        List<LabelledRow> train = [], valid = [], test = [];
        foreach (var members in order)
        {
            var part = train.Count + members.Count <= trainCut ? train
                : train.Count + valid.Count + members.Count <= validCut ? valid : test;
            part.AddRange(members.Select(i => rows[i]));
        }
        return new DataSplit(train, valid, test);
    }

}
