using System.Collections.Frozen;
using System.Globalization;
using BioForge.IO;
using BioForge.Models;

namespace BioForge.FineTuning;

/// <summary>One labelled input ready for the model: its tokens and its target(s) in model units.</summary>
internal sealed record Example(LabelledRow Row, EncodedSequence Encoded, float Target, long[] Classes);

/// <summary>
/// How labels become model outputs. Regression targets are standardised with the training split's mean and standard
/// deviation (predictions are mapped back); class labels are the training split's distinct labels, numerically ordered
/// when all are numbers (so "0"/"1" puts the positive class second). Residue labels are one character per residue, or
/// whitespace-separated when they contain white space (one per SMILES token, say).
/// </summary>
public sealed record LabelSpace(FineTuneTask Task, IReadOnlyList<string> Classes, double Mean, double Std)
{
    public int Outputs => Task == FineTuneTask.Regression ? 1 : Classes.Count;

    public static LabelSpace Fit(FineTuneTask task, IReadOnlyList<LabelledRow> train)
    {
        if (task == FineTuneTask.Regression)
        {
            var values = train.Select(Number).ToList();
            double mean = values.Average();
            double std = Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / Math.Max(1, values.Count - 1));
            return new LabelSpace(task, [], mean, std > 0 ? std : 1);
        }
        if (task == FineTuneTask.Classification)
            foreach (var row in train) RequireClassLabel(row);
        var labels = train.SelectMany(r => task == FineTuneTask.Classification ? [r.Label] : ResidueLabels(r.Label)).Distinct().ToList();
        bool numeric = labels.All(l => double.TryParse(l, NumberStyles.Float, CultureInfo.InvariantCulture, out _));
        if (numeric && labels.GroupBy(l => double.Parse(l, CultureInfo.InvariantCulture)).FirstOrDefault(g => g.Count() > 1) is { } spellings)
            throw new BioForgeException($"{train[0].Source}: the class labels {string.Join(" and ", spellings.Select(l => $"'{l}'"))} are one number written "
                + "differently, which would make them two classes; write each class one way");
        // "Yes" and "yes" in a spreadsheet are one answer typed twice, as 1 and 1.0 are one number.
        if (task == FineTuneTask.Classification && labels.GroupBy(l => l.Trim(), StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1) is { } cased)
            throw new BioForgeException($"{train[0].Source}: the class labels {string.Join(" and ", cased.Select(l => $"'{l}'"))} differ only in case or blanks, "
                + "which would make them two classes; write each class one way");
        var ordered = numeric
            ? labels.OrderBy(l => double.Parse(l, CultureInfo.InvariantCulture)).ToList()
            : labels.OrderBy(l => l, StringComparer.Ordinal).ToList();
        if (ordered.Count < 2)
            throw new BioForgeException($"{train[0].Source}: the training split has only one class ('{ordered[0]}'); classification needs at least two");
        return new LabelSpace(task, ordered, 0, 1);
    }

    internal Example ToExample(LabelledRow row, EncodedSequence encoded, int maxLength)
    {
        var cut = encoded.Cut(maxLength);
        switch (Task)
        {
            case FineTuneTask.Regression:
                return new Example(row, cut, (float)((Number(row) - Mean) / Std), []);
            case FineTuneTask.Classification:
                RequireClassLabel(row);
                return new Example(row, cut, 0, [ClassOf(row.Label, row)]);
            default:
                var labels = ResidueLabels(row.Label);
                if (labels.Count != encoded.Residues)
                    throw new BioForgeException($"{row.Where}: {labels.Count} residue labels for {encoded.Residues} residues");
                return new Example(row, cut, 0, [.. labels.Take(cut.Residues).Select(l => (long)ClassOf(l, row))]);
        }
    }

    public double Unstandardize(double value) => value * Std + Mean;

    /// <summary>How pandas and spreadsheets write a missing value besides NaN and inf; case matters ("Na" may be sodium, a class).</summary>
    private static readonly FrozenSet<string> MissingSpellings = new[] { "NA", "N/A", "n/a" }.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>
    /// A missing measurement in a class column (NaN, inf, NA, N/A) would become a class of its own, silently turning a
    /// binary task into three classes; sklearn and Chemprop read it as missing.
    /// </summary>
    private static void RequireClassLabel(LabelledRow row)
    {
        string label = row.Label.Trim();
        if ((double.TryParse(label, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && !double.IsFinite(value))
            || label.TrimStart('+', '-').Equals("inf", StringComparison.OrdinalIgnoreCase) || MissingSpellings.Contains(label))
            throw new BioForgeException($"{row.Where}: label '{row.Label}' is a missing value, not a class; remove the row");
    }

    private int ClassOf(string label, LabelledRow row)
    {
        for (int i = 0; i < Classes.Count; i++)
            if (Classes[i] == label) return i;
        // Classes are text: 1.0 in the test split is not the training split's 1, but the message should say why.
        if (double.TryParse(label, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            && Classes.FirstOrDefault(c => double.TryParse(c, NumberStyles.Float, CultureInfo.InvariantCulture, out double other) && other == value) is { } same)
            throw new BioForgeException($"{row.Where}: label '{label}' is the training split's class '{same}' written differently; classes are compared as written, so write them alike in every split");
        throw new BioForgeException($"{row.Where}: label '{label}' does not occur in the training split (classes: {string.Join(", ", Classes)})");
    }

    public static IReadOnlyList<string> ResidueLabels(string label) =>
        label.Any(char.IsWhiteSpace) ? label.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries) : [.. label.Select(c => c.ToString())];

    private static double Number(LabelledRow row) =>
        double.TryParse(row.Label, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && double.IsFinite(value)
            ? value : throw new BioForgeException($"{row.Where}: label '{row.Label}' is not a number{Csv.DecimalCommaNote(row.Label)} (task.type regression)");
}
