using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using BioForge.Chem;
using BioForge.Distributed;
using BioForge.IO;

namespace BioForge.Cli;

/// <summary><c>bioforge chem …</c>: molecule properties, similarity search, depictions, set metrics.</summary>
internal static class ChemCommands
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var chem = new Command("chem", "Cheminformatics on RDKit: properties, similarity search, depictions, generation metrics");
        chem.Subcommands.Add(Props(output, error));
        chem.Subcommands.Add(Similar(output, error));
        chem.Subcommands.Add(Depict(output, error));
        chem.Subcommands.Add(Metrics(output, error));
        chem.Subcommands.Add(Alerts(output, error));
        return chem;
    }

    private static Option<int> ThreadsOption() => Options.Int("--threads", "worker threads (default: BIOFORGE_THREADS, OMP_NUM_THREADS, or all cores)", 0);

    /// <summary>As the model commands count them: a shared machine's BIOFORGE_THREADS holds for RDKit's work too.</summary>
    private static int Threads(int requested) => Runtime.ComputeOptions.CpuThreads(requested);

    private static Command Props(TextWriter output, TextWriter error)
    {
        var input = Options.Required("--in", "molecules: .smi, .csv/.tsv (SMILES column) or .sdf, optionally .gz");
        var outPath = Options.Required("--out", "output CSV").Writes("CSV", ".csv");
        var column = new Option<string?>("--smiles-column") { Description = "SMILES column of a CSV/TSV (default: the column named smiles)" };
        var threads = ThreadsOption();
        var command = new Command("props", "Validity, canonical SMILES, descriptors, QED, SA score and PAINS alerts, one row per input") { input, outPath, column, threads };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            string path = result.GetValue(input)!, target = result.GetValue(outPath)!;
            _ = Molecule.RDKitVersion;
            long total = MoleculeSource.Read(path, result.GetValue(column)).LongCount();
            var world = ProcessGroup.World;
            var (first, count) = RankShares.Of(total, world);
            using var table = new PropertyTable();
            var clock = Stopwatch.StartNew();
            int valid = 0, rows = 0;
            AtomicFile.Write(RankShares.PartPath(target, world), stream =>
            {
                using var writer = new StreamWriter(stream, leaveOpen: true);
                writer.Write(PropertyTable.Header + "\n");
                ProgressDisplay.Run("molecules", count, progress =>
                {
                    var share = MoleculeSource.Read(path, result.GetValue(column)).Skip((int)first).Take((int)count);
                    foreach (var row in table.ComputeAll(share, Threads(result.GetValue(threads))))
                    {
                        writer.Write(PropertyTable.FormatCsv(row) + "\n");
                        rows++;
                        if (row.Valid) valid++;
                        progress.Report(1);
                    }
                    return 0;
                });
            });
            if (!RankShares.Merge(world, target, parts => RankShares.ConcatenateWithHeader(parts, target))) return 0;
            double seconds = clock.Elapsed.TotalSeconds;
            output.WriteLine(world.Size == 1
                ? $"{rows} molecules ({valid} valid, {rows - valid} invalid) -> {target} in {seconds:F1} s ({rows / Math.Max(seconds, 1e-9):F0} molecules/s)"
                : $"{total} molecules on {world.Size} ranks (rank 0: {valid} of {rows} valid) -> {target}, one file per rank as {RankShares.PartPath(target, 0)} …, in {seconds:F1} s");
            return 0;
        }));
        return command;
    }

    private static Command Similar(TextWriter output, TextWriter error)
    {
        var index = Options.Required("--index", "library to search: .smi, .csv/.tsv or .sdf, optionally .gz");
        var query = Options.Required("--query", "query SMILES");
        var top = Options.Int("--top", "neighbours to report", 10);
        var radius = Options.Int("--radius", "Morgan radius", 2);
        var bits = Options.Int("--bits", "fingerprint bits (multiple of 64)", 2048);
        var column = new Option<string?>("--smiles-column") { Description = "SMILES column of a CSV/TSV library" };
        var threads = ThreadsOption();
        var outPath = new Option<string?>("--out") { Description = "also write the neighbours as CSV (rank, similarity, line, id, smiles)" }.Writes("CSV", ".csv");
        var command = new Command("similar", "Top-k Tanimoto neighbours (Morgan fingerprints) of a query in a library") { index, query, top, radius, bits, column, threads, outPath };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            Fingerprints.CheckMorgan(result.GetValue(radius), result.GetValue(bits), "--radius", "--bits");
            // Before the library is fingerprinted (minutes for millions), not after.
            if (result.GetValue(top) < 1) throw new BioForgeException($"--top {result.GetValue(top)}: must be at least 1");
            using var molecule = Read(result.GetValue(query)!, "--query");
            var clock = Stopwatch.StartNew();
            var library = FingerprintIndex.Build(MoleculeSource.Read(result.GetValue(index)!, result.GetValue(column)),
                result.GetValue(radius), result.GetValue(bits), Threads(result.GetValue(threads)));
            double buildSeconds = clock.Elapsed.TotalSeconds;
            if (library.Count == 0)
                throw new BioForgeException($"--index {result.GetValue(index)}: no molecule RDKit can read ({library.Rejected.Count} unparsable), so nothing to search");
            clock.Restart();
            var hits = library.Search(library.Fingerprint(molecule), result.GetValue(top), Threads(result.GetValue(threads)));
            double searchSeconds = clock.Elapsed.TotalSeconds;
            output.WriteLine("rank\tsimilarity\tline\tid\tsmiles");
            var rows = hits.Select((hit, i) => (Rank: i + 1, Similarity: hit.Similarity.ToString("F4", CultureInfo.InvariantCulture), hit.Line, hit.Id, hit.Smiles)).ToList();
            foreach (var row in rows)
                output.WriteLine($"{row.Rank}\t{row.Similarity}\t{row.Line}\t{row.Id.Replace('\t', ' ')}\t{row.Smiles}");
            if (result.GetValue(outPath) is { } csv)
                IO.AtomicFile.WriteText(csv, "rank,similarity,line,id,smiles\n"
                    + string.Concat(rows.Select(r => $"{r.Rank},{r.Similarity},{r.Line},{IO.Csv.Quote(r.Id)},{IO.Csv.Quote(r.Smiles)}\n")));
            error.WriteLine($"indexed {library.Count} molecules in {buildSeconds:F1} s ({library.Rejected.Count} unparsable skipped); searched in {searchSeconds * 1000:F1} ms");
            return 0;
        }));
        return command;
    }

    private static Command Depict(TextWriter output, TextWriter error)
    {
        var smiles = Options.Required("--smiles", "molecule to draw");
        var outPath = Options.Required("--out", "picture: .svg or .png");
        var width = Options.Int("--width", "width in pixels", 400);
        var height = Options.Int("--height", "height in pixels", 300);
        var highlight = new Option<string?>("--highlight") { Description = "atom indices (0-based, comma-separated) or a SMARTS whose matches are highlighted" };
        var command = new Command("depict", "Draw a molecule as SVG or PNG") { smiles, outPath, width, height, highlight };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            using var molecule = Read(result.GetValue(smiles)!, "--smiles");
            string target = result.GetValue(outPath)!;
            var atoms = HighlightAtoms(molecule, result.GetValue(highlight));
            int w = result.GetValue(width), h = result.GetValue(height);
            // The service's range: RDKit's own limits (16–10,000) allow pictures no one can read or open.
            if (w is < 50 or > 2000) throw new BioForgeException($"--width must be 50–2000 pixels (got {w})");
            if (h is < 50 or > 2000) throw new BioForgeException($"--height must be 50–2000 pixels (got {h})");
            switch (Path.GetExtension(target).ToLowerInvariant())
            {
                case ".svg":
                    AtomicFile.WriteText(target, molecule.ToSvg(w, h, atoms));
                    break;
                case ".png":
                    byte[] png = molecule.ToPng(w, h, atoms);
                    AtomicFile.Write(target, s => s.Write(png));
                    break;
                default:
                    throw new BioForgeException($"--out {target}: use .svg or .png");
            }
            output.WriteLine($"{molecule.ToSmiles()} -> {target}");
            return 0;
        }));
        return command;
    }

    private static Command Alerts(TextWriter output, TextWriter error)
    {
        var catalog = new Option<string>("--catalog") { Description = "pains, brenk, screening (both: the rules screen, quickstart and --allow-alert know), nih or all", DefaultValueFactory = _ => "screening" };
        var smiles = new Option<string?>("--smiles") { Description = "list only the rules this molecule matches" };
        var command = new Command("alerts", "The structural alert rules (RDKit's PAINS, Brenk and NIH catalogues) by the names --allow-alert and filters' allow take") { catalog, smiles };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            var catalogs = result.GetValue(catalog)!.ToLowerInvariant() switch
            {
                "pains" => FilterCatalogs.Pains,
                "brenk" => FilterCatalogs.Brenk,
                "nih" => FilterCatalogs.Nih,
                "screening" => FilterCatalogs.Pains | FilterCatalogs.Brenk,
                "all" => FilterCatalogs.Pains | FilterCatalogs.Brenk | FilterCatalogs.Nih,
                var other => throw new BioForgeException($"--catalog must be pains, brenk, screening, nih or all (got '{other}')"),
            };
            using var filters = new StructuralFilters(catalogs);
            if (result.GetValue(smiles) is not { } text)
            {
                foreach (string rule in filters.Rules()) output.WriteLine(rule);
                return 0;
            }
            using (var molecule = Read(text, "--smiles"))
            {
                var matches = filters.Matches(molecule);
                foreach (string rule in matches) output.WriteLine(rule);
                if (matches.Count == 0) error.WriteLine($"note: no rule of --catalog {result.GetValue(catalog)} matches {Spelling.Excerpt(text, 80)}");
            }
            return 0;
        }));
        return command;
    }

    private static Command Metrics(TextWriter output, TextWriter error)
    {
        var gen = Options.Required("--gen", "generated molecules (.smi, .csv or .sdf)");
        var train = new Option<string?>("--train") { Description = "training set, for novelty" };
        var reference = new Option<string?>("--ref") { Description = "reference set (e.g. MOSES test), for SNN, Frag and Scaf" };
        var column = new Option<string?>("--smiles-column") { Description = "SMILES column of the CSV/TSV files among --gen, --train and --ref (default: the column named smiles)" };
        var outPath = Options.Required("--out", "metrics JSON").Writes("JSON", ".json");
        var threads = ThreadsOption();
        var command = new Command("metrics", "MOSES metrics: validity, unique@1k/10k, novelty, IntDiv1/2, filters, SNN, Frag, Scaf") { gen, train, reference, column, outPath, threads };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            // As SMILES, each SDF record too; the column applies to the tables only (a .smi file has none).
            List<string> Load(string path) => [.. MoleculeSource.Read(path, Csv.Extension(path) is ".csv" or ".tsv" ? result.GetValue(column) : null).Select(AsSmiles)];
            var generated = Load(result.GetValue(gen)!);
            var trainSet = result.GetValue(train) is { } t ? Load(t) : null;
            var referenceSet = result.GetValue(reference) is { } r ? Load(r) : null;
            using var metrics = new MosesMetrics();
            var report = metrics.Compute(generated, trainSet, referenceSet, Threads(result.GetValue(threads)), $"--train {result.GetValue(train)}", $"--ref {result.GetValue(reference)}");
            string json = System.Text.Json.JsonSerializer.Serialize(report, new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
            AtomicFile.WriteText(result.GetValue(outPath)!, json + "\n");
            output.WriteLine(json);
            // MOSES defines unique@k on the first k molecules: with fewer there is no value, said rather than left as a bare null.
            string valid = $"--gen has {Math.Round(report.Validity * report.Generated):N0} valid of {report.Generated:N0}";
            if (report.Unique1k is null) error.WriteLine($"note: unique@1000 and unique@10000 are null: they need at least 1,000 and 10,000 valid molecules ({valid})");
            else if (report.Unique10k is null) error.WriteLine($"note: unique@10000 is null: it needs at least 10,000 valid molecules ({valid})");
            if (report.IntDiv1 is null)
                error.WriteLine($"note: IntDiv, IntDiv2, Filters{(trainSet is null ? "" : ", Novelty")}{(referenceSet is null ? "" : ", SNN, Frag, Scaf")} are null: there is no valid molecule to measure ({valid})");
            foreach (var (name, value, what) in new[] { ("Frag", report.Frag, "BRICS fragment"), ("Scaf", report.Scaf, "scaffold with two or more rings") })
                if (referenceSet is not null && report.IntDiv1 is not null && value is null)
                    error.WriteLine($"note: {name} is null (MOSES: NaN): --gen or --ref has no {what} to compare");
            return 0;
        }));
        return command;
    }

    /// <summary>A record's SMILES as written, or an SDF record's molecule as canonical SMILES ("" when RDKit cannot read it: invalid).</summary>
    private static string AsSmiles(MoleculeRecord record)
    {
        if (!record.IsMolBlock) return record.Text;
        if (!record.TryParse(out var molecule, out _)) return "";
        using (molecule) return molecule!.ToSmiles();
    }

    private static List<int> HighlightAtoms(Molecule molecule, string? spec)
    {
        if (string.IsNullOrWhiteSpace(spec)) return [];
        var parts = spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.All(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out _)))
        {
            var indices = parts.Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToList();
            int atoms = molecule.Atoms().Count;
            if (indices.FirstOrDefault(i => i >= atoms, -1) is var outside and >= 0)
                throw new BioForgeException($"--highlight {spec}: atom {outside} does not exist (the molecule has atoms 0 to {atoms - 1})");
            return indices;
        }
        // Anything else is a SMARTS, as the help says: every atom of every match is highlighted.
        SmartsQuery query;
        try
        {
            query = new SmartsQuery(spec.Trim());
        }
        catch (BioForgeException e)
        {
            throw new BioForgeException($"--highlight {spec}: neither atom indices such as 0,1,2 nor a valid SMARTS ({e.Message})");
        }
        using (query)
        {
            var matched = molecule.SubstructureMatches(query).SelectMany(m => m).Distinct().Order().ToList();
            if (matched.Count == 0) throw new BioForgeException($"--highlight {spec}: the SMARTS matches no atom of {molecule.ToSmiles()}");
            return matched;
        }
    }

    /// <summary>The molecule of a SMILES given on the command line; one RDKit cannot read is an error naming the option.</summary>
    private static Molecule Read(string smiles, string option) =>
        Molecule.TryFromSmiles(smiles, out var molecule, out string? why) ? molecule! : throw new BioForgeException($"{option} '{Spelling.Excerpt(smiles, 80)}': {why}");
}
