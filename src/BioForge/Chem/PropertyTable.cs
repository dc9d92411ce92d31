using System.Globalization;
using System.Text;
using BioForge.IO;

namespace BioForge.Chem;

/// <summary>
/// One row of <c>bioforge chem props</c>: an invalid input keeps its row, with the reason in <see cref="Error"/>;
/// <see cref="Name"/> is the input's name (a .smi line's text after the SMILES, a table's name/id column), or empty.
/// </summary>
public sealed record PropertyRow(string Input, bool Valid, string Canonical, MolecularDescriptors? Descriptors, double Qed, double Sa, string Pains, string Error,
    string Name = "");

/// <summary>
/// Computes descriptors, QED, SA score and PAINS alerts for many molecules on all cores, keeping input order. The
/// calculators are shared across threads: the shim only reads them.
/// </summary>
public sealed class PropertyTable : IDisposable
{
    /// <summary>The CSV header; <c>name</c> comes last so the columns scripts already read keep their places.</summary>
    public const string Header = "input,valid,canonical,molwt,logp,tpsa,hbd,hba,rotb,qed,sa,pains,error,name";

    private readonly Qed qed = new();
    private readonly SaScore sa = new();
    private readonly StructuralFilters pains = new(FilterCatalogs.Pains);

    public PropertyRow Compute(MoleculeRecord record)
    {
        string name = record.Properties.GetValueOrDefault(MoleculeSource.NameProperty, "");
        if (!record.TryParse(out var parsed, out string? error))
            return new PropertyRow(record.Label, false, "", null, double.NaN, double.NaN, "", error ?? "invalid", name);
        using var molecule = parsed!;
        try
        {
            return new PropertyRow(record.Label, true, molecule.ToSmiles(), molecule.Descriptors(), qed.Score(molecule), sa.Score(molecule),
                string.Join(';', pains.Matches(molecule).Select(m => m[(m.IndexOf(':') + 1)..])), "", name);
        }
        catch (BioForgeException e)
        {
            return new PropertyRow(record.Label, false, "", null, double.NaN, double.NaN, "", e.Message, name);
        }
    }

    /// <summary>
    /// Rows in input order, computed <paramref name="chunk"/> records at a time in parallel; <paramref name="cancellation"/>
    /// is checked between chunks, so a caller's deadline bounds the work to one more chunk.
    /// </summary>
    public IEnumerable<PropertyRow> ComputeAll(IEnumerable<MoleculeRecord> records, int threads, int chunk = 2048, CancellationToken cancellation = default)
    {
        var options = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) };
        var batch = new List<MoleculeRecord>(chunk);
        foreach (var record in records)
        {
            batch.Add(record);
            if (batch.Count < chunk) continue;
            cancellation.ThrowIfCancellationRequested();
            foreach (var row in Run(batch, options)) yield return row;
            batch.Clear();
        }
        cancellation.ThrowIfCancellationRequested();
        foreach (var row in Run(batch, options)) yield return row;
    }

    private PropertyRow[] Run(List<MoleculeRecord> batch, ParallelOptions options)
    {
        var rows = new PropertyRow[batch.Count];
        Parallel.For(0, batch.Count, options, i => rows[i] = Compute(batch[i]));
        return rows;
    }

    public static string FormatCsv(PropertyRow r)
    {
        static string F(double v, string format) => double.IsNaN(v) ? "" : v.ToString(format, CultureInfo.InvariantCulture);
        var d = r.Descriptors;
        var line = new StringBuilder();
        line.Append(Csv.Quote(r.Input)).Append(',').Append(r.Valid ? '1' : '0').Append(',').Append(Csv.Quote(r.Canonical));
        if (d is null) line.Append(",,,,,,,,,");
        else
        {
            line.Append(',').Append(F(d.MolWt, "F3")).Append(',').Append(F(d.LogP, "F4")).Append(',').Append(F(d.Tpsa, "F2"))
                .Append(',').Append(d.HBondDonors).Append(',').Append(d.HBondAcceptors).Append(',').Append(d.RotatableBonds)
                .Append(',').Append(F(r.Qed, "F4")).Append(',').Append(F(r.Sa, "F4")).Append(',').Append(Csv.Quote(r.Pains));
        }
        line.Append(',').Append(Csv.Quote(r.Error.Replace('\n', ' '))).Append(',').Append(Csv.Quote(r.Name));
        return line.ToString();
    }

    public void Dispose()
    {
        qed.Dispose();
        pains.Dispose();
    }
}
