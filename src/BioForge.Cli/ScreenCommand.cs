using System.CommandLine;
using System.Globalization;
using System.Text;
using BioForge.Chem;
using BioForge.Discovery;
using BioForge.IO;

namespace BioForge.Cli;

/// <summary><c>bioforge screen</c>: rank a molecule library by predicted affinity to one target.</summary>
internal static class ScreenCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var target = Options.Required("--target", "the target: a Davis kinase (ABL1, EGFR, …), a UniProt accession of the KIBA kinases (P00533, Q06187, …), a protein sequence, or a FASTA file of one record");
        var library = Options.Required("--library", "molecules: .smi, .csv/.tsv (a smiles column) or .sdf, optionally .gz");
        var top = Options.Int("--top", "hits to keep", 100);
        var outPath = Options.Required("--out", "hits CSV").Writes("CSV", ".csv");
        var report = new Option<string?>("--report") { Description = "also write a self-contained HTML report" }.Writes("HTML", ".html", ".htm");
        var model = new Option<string>("--model") { Description = "affinity model directory", DefaultValueFactory = _ => Shipped.Path("models/dti-davis") };
        var column = new Option<string?>("--smiles-column") { Description = "CSV/TSV column holding the SMILES (default: smiles)" };
        var idColumn = new Option<string?>("--id-column")
        {
            Description = "CSV/TSV column or SDF data item naming each molecule (default: a name, id, title, zinc_id, compound_id or molecule_chembl_id column; an SDF record's title line)",
        };
        var batch = Options.Int("--batch", "molecules read and scored together", 512);
        var compute = new ComputeOptionSet();
        var chemist = new ChemistOptionSet();
        var command = new Command("screen", "Virtual screening: predicted affinity, drug-likeness, alerts and nearest known binder for a library")
        {
            target, library, top, outPath, report, model, column, idColumn, batch,
        };
        chemist.AddTo(command);
        command.Options.Add(compute.Device);
        command.Options.Add(compute.Threads);
        command.SetAction(result => Cli.Guard(error, () =>
        {
            var options = Runtime.ComputeOptions.Resolve(result.GetValue(compute.Device)!, "fp32", result.GetValue(compute.Threads));
            var protein = ProteinTarget.Resolve(result.GetValue(target)!);
            string sequence = protein.Sequence;
            string libraryPath = result.GetValue(library)!;
            if (result.GetValue(batch) < 1) throw new BioForgeException($"--batch must be at least 1 (got {result.GetValue(batch)})");
            var screenOptions = new ScreenOptions
            {
                Top = result.GetValue(top),
                BatchSize = result.GetValue(batch),
                Limits = chemist.LimitsOf(result),
                AllowedAlerts = chemist.AllowedOf(result),
                Actives = chemist.ActivesOf(result),
                TargetName = protein.Name,
            };
            using var affinity = AffinityModel.Load(result.GetValue(model)!, options.Device);
            var records = MoleculeSource.Read(libraryPath, result.GetValue(column), result.GetValue(idColumn));
            var summary = ProgressDisplay.Run("screening", CountRecords(libraryPath), progress =>
                VirtualScreen.Run(affinity, sequence, records, screenOptions, progress));
            if (summary.Read == 0) throw new BioForgeException($"{libraryPath}: the library holds no molecules");
            if (summary.Scored == 0 && summary.OutsideLimits > 0)
                throw new BioForgeException($"{libraryPath}: all {summary.OutsideLimits:N0} molecules it could read are outside the limits ({string.Join(", ", screenOptions.Limits.Select(l => l.Text))})");
            if (summary.Scored == 0 && summary.WithoutCarbon > 0)
                throw new BioForgeException($"{libraryPath}: none of the {summary.WithoutCarbon:N0} molecules it could read has a carbon atom (water, inorganic salts): nothing to screen");
            if (summary.Scored == 0) throw new BioForgeException($"{libraryPath}: none of its {summary.Read} molecules could be read ({string.Join("; ", summary.FirstErrors)})");
            output.WriteLine($"{summary.Read:N0} molecules read, {summary.Scored:N0} scored, {summary.Invalid:N0} skipped (unreadable)"
                + (screenOptions.Limits.Count > 0 ? $", {summary.OutsideLimits:N0} outside the limits" : "")
                + (summary.WithoutCarbon > 0 ? $", {summary.WithoutCarbon:N0} without carbon (not scored)" : "")
                + $" in {summary.Elapsed.TotalSeconds:F1} s ({summary.MoleculesPerSecond:N0} molecules/s)");
            foreach (string e in summary.FirstErrors) output.WriteLine($"  skipped {e}");
            output.WriteLine($"target {protein.Name}: {sequence.Length} residues; known binders of it in {affinity.Manifest.Dataset}: {summary.KnownBinders - summary.Actives}"
                + (summary.Actives > 0 ? $", and {summary.Actives} from --actives" : ""));
            var domain = ApplicabilityDomain.Notes(affinity, sequence, summary.Hits);
            foreach (string note in domain.Sentences) output.WriteLine(note);
            foreach (var hit in summary.Hits.Take(5))
                output.WriteLine($"  {hit.Rank}. {hit.Smiles}  {affinity.Manifest.Measure} {hit.Affinity:F2}  QED {hit.Qed:F2}  SA {hit.Sa:F1}{(hit.NearestSimilarity is { } s ? $"  nearest binder {s:F2}" : "")}");
            // The report is rendered before either file is written: a failure there leaves neither.
            string? reportPath = result.GetValue(report);
            string? html = reportPath is null ? null : DiscoveryReport.Render(new DiscoveryReport.Content
            {
                Title = "Virtual screening",
                Target = sequence,
                TargetName = protein.Name,
                Measure = affinity.Manifest.Measure,
                Hits = summary.Hits,
                Domain = domain.Sentences,
                TargetOutside = domain.TargetOutside,
                AffinitySample = summary.AffinitySample,
                Parameters = new Dictionary<string, string>
                {
                    ["library"] = libraryPath,
                    ["molecules scored"] = summary.Scored.ToString("N0", CultureInfo.InvariantCulture),
                    ["skipped (unreadable)"] = summary.Invalid.ToString("N0", CultureInfo.InvariantCulture),
                    ["skipped (no carbon atom: water, inorganic salts)"] = summary.WithoutCarbon.ToString("N0", CultureInfo.InvariantCulture),
                    ["limits"] = screenOptions.Limits.Count == 0 ? "none"
                            : $"{string.Join(", ", screenOptions.Limits.Select(l => l.Text))}: {summary.OutsideLimits.ToString("N0", CultureInfo.InvariantCulture)} molecules outside, not scored",
                    ["alerts not counted"] = screenOptions.AllowedAlerts.Count == 0 ? "none" : string.Join(", ", screenOptions.AllowedAlerts),
                    ["known binders"] = $"{summary.KnownBinders - summary.Actives} in {affinity.Manifest.Dataset} ({AffinityModel.KnownBinderRule(affinity.Manifest.Measure)})" + (summary.Actives > 0 ? $", {summary.Actives} from {result.GetValue(chemist.Actives)}" : ""),
                    ["affinity model"] = result.GetValue(model)!,
                    ["model test metrics"] = string.Join(", ", affinity.Manifest.TestMetrics.Select(kv => $"{kv.Key} {kv.Value:F3}")),
                },
            });
            WriteHits(result.GetValue(outPath)!, summary.Hits, affinity.Manifest.Measure);
            output.WriteLine($"-> {result.GetValue(outPath)}");
            if (reportPath is not null)
            {
                AtomicFile.WriteText(reportPath, html!);
                output.WriteLine($"-> {reportPath}");
            }
            return 0;
        }));
        return command;
    }

    /// <summary>The number of records for the progress bar (a quick line count; SDF records by their $$$$ lines).</summary>
    private static long? CountRecords(string path)
    {
        if (Console.IsErrorRedirected || !File.Exists(path)) return null;
        using var reader = LineReader.Open(path, MoleculeSource.MaxLineLength);
        bool sdf = MoleculeSource.IsSdf(path), table = MoleculeSource.IsTable(path);
        long count = 0;
        for (string? line = reader.ReadLine(); line is not null; line = reader.ReadLine())
            if (sdf ? line.StartsWith("$$$$", StringComparison.Ordinal) : line.Trim().Length > 0) count++;
        return table ? Math.Max(0, count - 1) : count;
    }

    internal static void WriteHits(string path, IReadOnlyList<ScreenHit> hits, string measure)
    {
        string F(double v, string format = "F3") => v.ToString(format, CultureInfo.InvariantCulture);
        var text = new StringBuilder($"rank,id,smiles,predicted_{measure.Replace(' ', '_').ToLowerInvariant()},qed,sa,logp,mw,tpsa,hbd,hba,alerts,nearest_known_binder,nearest_binder_name,nearest_binder_similarity,nearest_binder_measured_{measure.Replace(' ', '_').ToLowerInvariant()},nearest_training_ligand_similarity\n");
        foreach (var h in hits)
            text.Append(h.Rank.ToString(CultureInfo.InvariantCulture)).Append(',').Append(Csv.Quote(h.Id)).Append(',').Append(Csv.Quote(h.Smiles)).Append(',')
                .Append(F(h.Affinity)).Append(',').Append(F(h.Qed)).Append(',').Append(F(h.Sa, "F2")).Append(',').Append(F(h.LogP, "F2")).Append(',')
                .Append(F(h.MolWt, "F1")).Append(',').Append(F(h.Tpsa, "F1")).Append(',').Append(h.Donors.ToString(CultureInfo.InvariantCulture)).Append(',')
                .Append(h.Acceptors.ToString(CultureInfo.InvariantCulture)).Append(',').Append(Csv.Quote(h.Alerts)).Append(',')
                .Append(Csv.Quote(h.NearestBinder ?? "")).Append(',').Append(Csv.Quote(h.NearestBinderName ?? "")).Append(',')
                .Append(h.NearestSimilarity is { } s ? F(s) : "").Append(',').Append(h.NearestBinderAffinity is { } a ? F(a) : "").Append(',')
                .Append(h.TrainingSimilarity is { } t ? F(t) : "").Append('\n');
        AtomicFile.WriteText(path, text.ToString());
    }
}
