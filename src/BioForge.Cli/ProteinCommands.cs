using System.CommandLine;
using System.Globalization;
using System.Text;
using BioForge.Distributed;
using BioForge.Imaging;
using BioForge.IO;
using BioForge.Models.Esm;
using BioForge.Proteins;
using BioForge.Statistics;

namespace BioForge.Cli;

/// <summary>Protein language model commands: embed, fill-mask, contacts, score-variants.</summary>
internal static class ProteinCommands
{
    private static Option<string> ModelOption() => Options.Required("--model", "Hugging Face ESM-2 checkpoint directory (config.json + safetensors)");

    private static Option<string> EmbedModelOption() =>
        Options.Required("--model", "checkpoint directory: ESM-2, or a decoder of another registered family (GPT-2, Llama; mean pooling of the final layer)");

    private static Option<int> BatchTokensOption() => Options.Int("--batch-tokens", "token budget per batch (sequences × padded length)", 4096);

    public static IEnumerable<Command> Create(TextWriter output, TextWriter error)
    {
        yield return Embed(output, error);
        yield return FillMask(output, error);
        yield return Contacts(output, error);
        yield return ScoreVariants(output, error);
    }

    private static EsmCheckpoint LoadModel(ParseResult result, Option<string> model, ComputeOptionSet compute)
    {
        var options = compute.Resolve(result);
        return EsmCheckpoint.Load(result.GetValue(model)!, options.Device, options.DType);
    }

    private static Command Embed(TextWriter output, TextWriter error)
    {
        var model = EmbedModelOption();
        var input = Options.Required("--in", "FASTA file (.fasta, .fa, optionally .gz); for a SMILES model, a molecule file (.smi, .csv/.tsv with a smiles column, .sdf)");
        var outPath = Options.Required("--out", "output file: .csv, .npy or .safetensors");
        var pool = new Option<string>("--pool") { Description = "mean over residues, the <cls> vector, or none (one vector per residue)", DefaultValueFactory = _ => "mean" };
        pool.AcceptOnlyFromAmong("mean", "cls", "none");
        var layer = new Option<int[]>("--layer")
        {
            Description = "representation to take: 0 = embeddings, N = after layer N, -1 = final; repeat it for several from one pass (one file each: emb.npy -> emb.layer3.npy, emb.layer6.npy)",
            DefaultValueFactory = _ => [-1],
        };
        var batchTokens = BatchTokensOption();
        var unknown = new Option<bool>("--unknown-as-unk") { Description = "map letters outside the alphabet to <unk> instead of failing" };
        var truncate = new Option<string>("--truncate")
        {
            Description = "a sequence longer than the model reads (1,024 residues for the ESM-2 checkpoints): refused (none), its first (end) or last (start) residues embedded, or read whole in overlapping windows of 1,024 tokens, each residue the weighted mean of the windows that read it (window; ProteinGym's way)",
            DefaultValueFactory = _ => "none",
        };
        truncate.AcceptOnlyFromAmong("none", "end", "start", "window");
        var compute = new ComputeOptionSet();
        var command = new Command("embed", "Embed sequences with a language model (ESM-2, or a GPT-2 / Llama decoder)") { model, input, outPath, pool, layer, batchTokens, unknown, truncate };
        compute.AddTo(command);
        command.SetAction(result => Cli.Guard(error, () =>
        {
            var request = new FastaEmbeddingRequest
            {
                Model = result.GetValue(model)!,
                Input = result.GetValue(input)!,
                Output = result.GetValue(outPath)!,
                Options = new EmbedOptions
                {
                    Pooling = Enum.Parse<Pooling>(result.GetValue(pool)!, ignoreCase: true),
                    Layers = result.GetValue(layer)!,
                    BatchTokens = result.GetValue(batchTokens),
                    UnknownAsUnk = result.GetValue(unknown),
                    Truncate = Enum.Parse<Truncation>(result.GetValue(truncate)!, ignoreCase: true),
                },
            };
            using var job = FastaEmbedding.Open(request, () => compute.Resolve(result));
            var done = ProgressDisplay.Run("embedding", job.Share, progress => job.Run(progress));
            if (!done.Merged) return 0;
            double seconds = done.Elapsed.TotalSeconds;
            var pooling = request.Options.Pooling;
            output.WriteLine($"embedded {job.Total} sequences ({(job.Ranks > 1 ? $"{job.Ranks} ranks, one file each as {RankShares.PartPath(job.Targets[0], 0)} …, merged" : $"{done.Residues} {(FastaEmbedding.IsMoleculeFile(request.Input) ? "SMILES characters" : "residues")} read")}, "
                + $"{(pooling == Pooling.None ? "per residue" : pooling.ToString().ToLowerInvariant() + " pooling")}, {job.Dims} dims) -> {string.Join(", ", job.Targets)} in {seconds:F1} s ({job.Total / seconds:F1} seq/s) on {job.Device}");
            return 0;
        }));
        return command;
    }

    private static Command FillMask(TextWriter output, TextWriter error)
    {
        var model = ModelOption();
        var seq = Options.Required("--seq", "protein sequence with one or more <mask> tokens, e.g. MKT<mask>IAK");
        var topK = Options.Int("--top-k", "candidates to show per masked position", 5);
        var outPath = new Option<string?>("--out") { Description = "also write the predictions as CSV (position, rank, token, probability)" }.Writes("CSV", ".csv");
        var compute = new ComputeOptionSet(scoring: true);
        var command = new Command("fill-mask", "Predict the residues at <mask> positions") { model, seq, topK, outPath };
        compute.AddTo(command);
        command.SetAction(result => Cli.Guard(error, () =>
        {
            using var esm = LoadModel(result, model, compute);
            IReadOnlyList<MaskPrediction> predictions;
            try
            {
                predictions = MaskFiller.Predict(esm, result.GetValue(seq)!, result.GetValue(topK));
            }
            catch (BioForgeException e) when (!e.Message.StartsWith("--", StringComparison.Ordinal))
            {
                throw new BioForgeException($"--seq: {e.Message}");
            }
            var rows = predictions.SelectMany(p => p.Candidates.Select(c => (p.Position, c.Rank, c.Token, Probability: c.Probability.ToString("F4", CultureInfo.InvariantCulture)))).ToList();
            output.WriteLine("position\trank\ttoken\tprobability");
            foreach (var r in rows) output.WriteLine($"{r.Position}\t{r.Rank}\t{r.Token}\t{r.Probability}");
            if (result.GetValue(outPath) is { } path)
            {
                AtomicFile.WriteText(path, "position,rank,token,probability\n" + string.Concat(rows.Select(r => $"{r.Position},{r.Rank},{Csv.Quote(r.Token)},{r.Probability}\n")));
                output.WriteLine($"-> {path}");
            }
            return 0;
        }));
        return command;
    }

    private static Command Contacts(TextWriter output, TextWriter error)
    {
        var model = ModelOption();
        var seq = new Option<string?>("--seq") { Description = "protein sequence" };
        var seqFile = new Option<string?>("--seq-file") { Description = "file holding the sequence (plain text, or FASTA with that one record)" };
        var outPath = Options.Required("--out", "contact probability matrix (.csv)").Writes("CSV", ".csv");
        var png = new Option<string?>("--png") { Description = "also draw the map as a PNG heat map" }.Writes("PNG", ".png");
        var compute = new ComputeOptionSet();
        var command = new Command("contacts", "Predict residue-residue contacts from attention maps (a sequence longer than the model reads: in overlapping windows, pairs no window holds left empty)") { model, seq, seqFile, outPath, png };
        compute.AddTo(command);
        command.SetAction(result => Cli.Guard(error, () =>
        {
            string sequence = OneSequence(result.GetValue(seq), result.GetValue(seqFile)), target = result.GetValue(outPath)!;
            if (!target.EndsWith(".csv", StringComparison.OrdinalIgnoreCase)) throw new BioForgeException($"--out {target}: the contact map is written as .csv");
            using var esm = LoadModel(result, model, compute);
            var contacts = ContactPredictor.Predict(esm, sequence);
            ContactPredictor.WriteCsv(target, sequence, contacts);
            int n = contacts.GetLength(0);
            bool trained = esm.Model.ContactHeadTrained;
            if (!trained)
                error.WriteLine($"warning: the contact head is untrained in {result.GetValue(model)} (its regression is still at initialisation): the map is about 0.5 everywhere, not a prediction; use an ESM-2 checkpoint with a fitted contact head (e.g. facebook/esm2_t6_8M_UR50D)");
            output.WriteLine($"{n}x{n} contact map -> {target}");
            output.WriteLine($"contact_head: {(trained ? "trained" : "untrained")}");
            if (result.GetValue(png) is { } picture)
            {
                BioForge.Imaging.Heatmap.WritePng(picture, contacts);
                output.WriteLine($"heat map -> {picture}");
            }
            if (n > esm.Config.MaxResidues)
            {
                int unknown = Enumerable.Range(0, n).Sum(i => Enumerable.Range(i + 1, n - i - 1).Count(j => float.IsNaN(contacts[i, j])));
                output.WriteLine($"read in overlapping windows of {ContactPredictor.WindowResidues(esm)} residues" +
                    (unknown > 0 ? $"; {unknown} pairs no window holds (residues too far apart) are left empty in the CSV" + (result.GetValue(png) is null ? "" : " and grey in the picture") : ""));
            }
            var top = Enumerable.Range(0, n).SelectMany(i => Enumerable.Range(i + 6, Math.Max(0, n - i - 6)).Select(j => (i, j)))
                .Where(p => !float.IsNaN(contacts[p.i, p.j]))
                .OrderByDescending(p => contacts[p.i, p.j]).Take(5).ToList();
            if (top.Count > 0)
                output.WriteLine("most probable pairs at least 6 apart (|i-j| >= 6): " + string.Join(", ", top.Select(p => $"{p.i + 1}-{p.j + 1} ({contacts[p.i, p.j].ToString("F3", CultureInfo.InvariantCulture)})")));
            return 0;
        }));
        return command;
    }

    private static Command ScoreVariants(TextWriter output, TextWriter error)
    {
        var model = ModelOption();
        var seq = new Option<string?>("--seq") { Description = "wild-type protein sequence" };
        var seqFile = new Option<string?>("--seq-file") { Description = "file holding the wild type (plain text, or FASTA with that one record)" };
        var mutations = new Option<string?>("--mutations") { Description = "variants separated by commas, sites of a multi-mutant by colons: \"A23G,K45R:L50P\"" };
        var input = new Option<string?>("--in") { Description = "CSV/TSV (optionally .gz) with a mutant column; a DMS_score column adds Spearman's rho" };
        var column = new Option<string?>("--mutation-column") { Description = "name of the mutation column (default: mutant, variant or mutation)" };
        var scoreColumn = new Option<string?>("--score-column") { Description = "the measured column of --in, for Spearman's rho (default: DMS_score or score)" };
        var scan = new Option<bool>("--scan") { Description = "a deep mutational scan: every single substitution to the 20 amino acids at every position (19 × length variants)" };
        var indexBase = Options.Int("--index-base", "the number the first residue carries in the mutations: 1 (ProteinGym), 0 (METL files), or where a fragment or mature protein starts (ESM's --offset-idx, e.g. 24)", 1);
        var outPath = Options.Required("--out", "scores CSV").Writes("CSV", ".csv");
        var map = new Option<string?>("--map") { Description = "also draw the single substitutions' scores as a heat map (position × amino acid), e.g. with --scan" }.Writes("SVG", ".svg");
        var batchTokens = BatchTokensOption();
        var compute = new ComputeOptionSet(scoring: true);
        var command = new Command("score-variants", "Zero-shot variant effect scores (masked marginal)") { model, seq, seqFile, mutations, input, scan, column, scoreColumn, indexBase, outPath, map, batchTokens };
        compute.AddTo(command);
        command.SetAction(result => Cli.Guard(error, () =>
        {
            string wildType = OneSequence(result.GetValue(seq), result.GetValue(seqFile));
            int numbering = result.GetValue(indexBase);
            if (numbering is not (>= 0 and <= Variant.MaxIndexBase)) throw new BioForgeException($"--index-base {numbering}: expected a residue number from 0 to {Variant.MaxIndexBase:N0}");
            string? list = result.GetValue(mutations), table = result.GetValue(input);
            if ((list is null ? 0 : 1) + (table is null ? 0 : 1) + (result.GetValue(scan) ? 1 : 0) != 1) throw new BioForgeException("give exactly one of --mutations, --in or --scan");
            var variants = list is not null
                ? new VariantTable(list.Split(',', StringSplitOptions.TrimEntries).Select(v => v.Length > 0 ? Variant.Parse(v, wildType, numbering)
                    : throw new BioForgeException($"--mutations \"{list}\": an empty variant (two commas in a row, or one at an end)")).ToList(), null, null)
                : table is not null ? VariantTable.Read(table!, wildType, result.GetValue(column), numbering, result.GetValue(scoreColumn))
                : new VariantTable(Variant.Scan(wildType, numbering), null, null);
            if (variants.Variants.Count == 0)
                throw new BioForgeException(result.GetValue(scan) ? "--scan: the sequence has no position holding one of the 20 amino acids" : "--mutations lists no variants");
            if (result.GetValue(map) is { } drawn && variants.Variants.All(v => v.Substitutions.Count > 1))
                throw new BioForgeException($"--map {drawn}: no single substitutions to draw (the map shows one per cell)");

            if (result.GetValue(scan) && Variant.ScanSkips(wildType, numbering) is { Count: > 0 } skipped)
                error.WriteLine($"note: --scan leaves out {Plural(skipped.Count, "site")} whose residue is not one of the 20 amino acids: {string.Join(", ", skipped.Take(10))}{(skipped.Count > 10 ? ", …" : "")}");
            using var esm = LoadModel(result, model, compute);
            // The shipped model shows the command working; its scores are no evidence (models/README.md measures why).
            if (IsShippedModel(result.GetValue(model)!, "models/esm2-small"))
                error.WriteLine("note: models/esm2-small is the small ESM-2 trained on this project's 2-core machine (Spearman 0.06 on the bundled TEM-1 scan, models/README.md): "
                    + "its scores show the command working, not variant effects; use a published ESM-2 checkpoint (e.g. facebook/esm2_t33_650M_UR50D) for science");
            var scorer = new VariantScorer(esm, result.GetValue(batchTokens));
            int sites = variants.Variants.SelectMany(v => v.Substitutions.Select(s => s.Position)).Distinct().Count();
            var scores = ProgressDisplay.Run("scoring sites", sites, progress => scorer.Score(wildType, variants.Variants, progress));
            WriteScores(result.GetValue(outPath)!, variants, scores);
            output.WriteLine($"scored {Plural(variants.Variants.Count, "variant")} at {Plural(sites, "site")} -> {result.GetValue(outPath)}");
            if (result.GetValue(map) is { } picture)
            {
                var singles = variants.Variants.Select((v, i) => (v, i)).Where(x => x.v.Substitutions.Count == 1)
                    .DistinctBy(x => (x.v.Substitutions[0].Position, x.v.Substitutions[0].Mutant))
                    .ToDictionary(x => (x.v.Substitutions[0].Position, x.v.Substitutions[0].Mutant), x => scores[x.i]);
                AtomicFile.WriteText(picture, MutationMap.Svg(wildType, singles, $"Variant effects, {Path.GetFileName(result.GetValue(model))} (masked marginal)", numbering));
                output.WriteLine($"-> {picture}");
            }
            if (variants.Measured is { } measured)
            {
                var pairs = measured.Select((m, i) => (Measured: m, Score: scores[i])).Where(p => p.Measured is not null).ToList();
                int missing = measured.Count - pairs.Count;
                // Ranks without a spread (one variant scored, one value measured for all) correlate with nothing: NaN.
                string? unranked = pairs.Count < 2 ? $"{pairs.Count} measured variant(s)"
                    : pairs.DistinctBy(p => p.Score).Count() == 1 ? "every variant scores the same"
                    : pairs.DistinctBy(p => p.Measured).Count() == 1 ? $"every variant has the same {variants.MeasuredColumn}"
                    : null;
                output.WriteLine(unranked is not null
                    ? $"Spearman rho vs {variants.MeasuredColumn}: not computed ({unranked})"
                    : $"Spearman rho vs {variants.MeasuredColumn}: {Correlation.Spearman([.. pairs.Select(p => p.Score)], [.. pairs.Select(p => p.Measured!.Value)]).ToString("F4", CultureInfo.InvariantCulture)} "
                        + $"(n = {pairs.Count}{(missing > 0 ? $"; {missing} without a {variants.MeasuredColumn}" : "")})");
            }
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// Whether <paramref name="directory"/> holds the shipped model or a copy of it: the same configuration and the same
    /// weights, byte for byte (a model trained on from it has the same configuration and file size, not its weights).
    /// </summary>
    private static bool IsShippedModel(string directory, string shipped)
    {
        string installed = Shipped.Path(shipped);
        string Config(string folder) => Path.Combine(folder, "config.json");
        string Weights(string folder) => Path.Combine(folder, SafetensorsCheckpoint.SingleFileName);
        static byte[] Hash(string path)
        {
            using var stream = File.OpenRead(path);
            return System.Security.Cryptography.SHA256.HashData(stream);
        }
        try
        {
            return File.Exists(Config(installed)) && File.Exists(Weights(installed)) && File.Exists(Config(directory)) && File.Exists(Weights(directory))
                && new FileInfo(Weights(directory)).Length == new FileInfo(Weights(installed)).Length
                && File.ReadAllText(Config(directory)) == File.ReadAllText(Config(installed))
                && Hash(Weights(directory)).AsSpan().SequenceEqual(Hash(Weights(installed)));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // a note is not worth failing the command over
        }
    }

    /// <summary>The one sequence of <c>--seq</c> or <c>--seq-file</c> (plain text or a one-record FASTA), a final stop left out.</summary>
    private static string OneSequence(string? seq, string? seqFile)
    {
        if ((seq is null) == (seqFile is null)) throw new BioForgeException("give exactly one of --seq or --seq-file");
        if (seq is not null) return seq.Trim().TrimEnd('*'); // a translated sequence's stop, as FASTA files are read
        if (!File.Exists(seqFile)) throw new BioForgeException($"--seq-file {seqFile}: file not found");
        // Plain text (letters on one or more lines) or FASTA with the one record; read with the readers' limits and checks.
        var text = new StringBuilder();
        int? stop = null; // the line of a final '*'
        int? gap = null; // the first blank line after the sequence began
        using (var reader = LineReader.Open(seqFile!, FastaReader.MaxSequenceLength))
        {
            for (string? line = reader.ReadLine(); line is not null; line = reader.ReadLine())
            {
                string trimmed = line.Trim();
                if (trimmed.Length == 0)
                {
                    if (text.Length > 0) gap ??= reader.LineNumber;
                    continue;
                }
                // Lines of one sequence are wrapped without blank lines; text after one is a second sequence.
                if (gap is { } blank)
                    throw new BioForgeException($"--seq-file {seqFile}:{reader.LineNumber}: more sequence after the blank line {blank}: the file holds two sequences? give one (or join its lines)");
                if (text.Length == 0 && trimmed.StartsWith('>'))
                {
                    var records = FastaReader.Read(seqFile!).Take(2).ToList();
                    if (records.Count > 1) throw new BioForgeException($"--seq-file {seqFile}: holds more than one FASTA record; give the sequence alone");
                    return records[0].Sequence;
                }
                if (stop is { } at && trimmed.Length > 0) throw new BioForgeException($"--seq-file {seqFile}:{at}: '*' (a stop) before the end of the sequence");
                for (int i = 0; i < trimmed.Length; i++)
                    if (trimmed[i] == '*' && i == trimmed.Length - 1) stop = reader.LineNumber;
                    else if (!char.IsAsciiLetter(trimmed[i]))
                        throw new BioForgeException($"--seq-file {seqFile}:{reader.LineNumber}: '{trimmed[i]}' at column {i + 1} is not a residue letter");
                text.Append(trimmed.TrimEnd('*'));
            }
        }
        if (text.Length == 0) throw new BioForgeException($"--seq-file {seqFile}: empty file");
        return text.ToString();
    }

    private static void WriteScores(string path, VariantTable variants, double[] scores)
    {
        var text = new System.Text.StringBuilder(variants.MeasuredColumn is null ? "mutant,esm_score\n" : $"mutant,esm_score,{Csv.Quote(variants.MeasuredColumn)}\n");
        for (int i = 0; i < scores.Length; i++)
        {
            text.Append(Csv.Quote(variants.Variants[i].Name)).Append(',').Append(scores[i].ToString("G9", CultureInfo.InvariantCulture));
            if (variants.Measured is { } m) text.Append(',').Append(m[i] is { } value ? value.ToString("R", CultureInfo.InvariantCulture) : "");
            text.Append('\n');
        }
        AtomicFile.WriteText(path, text.ToString());
    }

    private static string Plural(int count, string noun) => $"{count} {noun}{(count == 1 ? "" : "s")}";
}
