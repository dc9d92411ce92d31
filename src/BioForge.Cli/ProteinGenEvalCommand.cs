using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using BioForge.IO;
using BioForge.Models;
using BioForge.Models.Esm;
using BioForge.Models.Llama;
using BioForge.Proteins;
using BioForge.Tokenizers;

namespace BioForge.Cli;

/// <summary><c>bioforge protein gen-eval</c>: how natural-like generated proteins are, against held-out natural ones.</summary>
internal static class ProteinGenEvalCommand
{
    public static Command Group(TextWriter output, TextWriter error)
    {
        var group = new Command("protein", "Protein tools: generated sequences against natural ones, pseudo-log-likelihoods");
        group.Subcommands.Add(Create(output, error));
        group.Subcommands.Add(ProteinPllCommand.Create(output, error));
        return group;
    }

    private static Command Create(TextWriter output, TextWriter error)
    {
        var generated = Options.Required("--generated", "generated sequences (FASTA, e.g. from `bioforge generate`)");
        var reference = Options.Required("--reference", "natural sequences held out from training: FASTA, or a directory of `data prepare --tokenizer esm` (its validation split)");
        var model = new Option<string?>("--model") { Description = "protein language model whose perplexity on the reference to report (optional)" };
        var esm = new Option<string>("--esm") { Description = "ESM-2 checkpoint for pseudo-log-likelihoods; none to skip", DefaultValueFactory = _ => Shipped.Path("models/esm2-small") };
        var maxSequences = Options.Int("--max-sequences", "use the first N sequences of each set (0 = all)", 0);
        var pllSequences = Options.Int("--pll-sequences", "sequences of each set scored by ESM-2 (the first ones)", 100);
        var pllPositions = Options.Int("--pll-positions", "masked positions per sequence for the pseudo-log-likelihood (a seeded sample when longer)", 32);
        var pllMaxLength = Options.Int("--pll-max-length", "residues of each sequence scored (its start; past the model's length each residue is read in the window centred on it)", 256);
        var seed = new Option<ulong>("--seed") { Description = "seed of the shuffles and position samples", DefaultValueFactory = _ => 0 };
        var outPath = new Option<string?>("--out") { Description = "also write the report as JSON" }.Writes("JSON", ".json");
        var compute = new ComputeOptionSet(scoring: true);
        var command = new Command("gen-eval", "Compare generated proteins with natural ones: perplexity, composition divergence, lengths, low complexity, ESM-2 pseudo-log-likelihood")
        {
            generated, reference, model, esm, maxSequences, pllSequences, pllPositions, pllMaxLength, seed, outPath,
        };
        compute.AddTo(command);
        command.SetAction(result => Cli.Guard(error, () =>
        {
            int max = result.GetValue(maxSequences), pllN = result.GetValue(pllSequences);
            if (max < 0) throw new BioForgeException($"--max-sequences must be >= 0 (got {max})");
            if (pllN < 0) throw new BioForgeException($"--pll-sequences must be >= 0 (got {pllN})");
            if (result.GetValue(pllMaxLength) < 1) throw new BioForgeException($"--pll-max-length must be positive (got {result.GetValue(pllMaxLength)})");
            if (Path.GetFullPath(result.GetValue(generated)!) == Path.GetFullPath(result.GetValue(reference)!).TrimEnd(Path.DirectorySeparatorChar))
                throw new BioForgeException($"--reference {result.GetValue(reference)} is also --generated: the comparison would measure nothing");
            var gen = Take(ReadFasta(result.GetValue(generated)!, "--generated"), max);
            var natural = Take(ReadReference(result.GetValue(reference)!), max);
            var report = Evaluate(gen, natural, result, model, esm, pllN, result.GetValue(pllPositions), result.GetValue(pllMaxLength), result.GetValue(seed), compute);
            foreach (var line in Table(report)) output.WriteLine(line);
            if (result.GetValue(outPath) is { } target)
                AtomicFile.WriteText(target, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }) + "\n");
            return 0;
        }));
        return command;
    }

    private static List<string> Take(List<string> sequences, int max) => max > 0 && sequences.Count > max ? sequences[..max] : sequences;

    private static List<string> ReadFasta(string path, string option)
    {
        if (!File.Exists(path)) throw new BioForgeException($"{option} {path}: no such file");
        var sequences = FastaReader.Read(path).Select(r => r.Sequence).ToList();
        if (sequences.Count == 0) throw new BioForgeException($"{option} {path}: no sequences");
        if (sequences.Any(s => s.Length == 0)) throw new BioForgeException($"{option} {path}: holds an empty sequence");
        return sequences;
    }

    /// <summary>A FASTA file, or the validation split of a prepared protein corpus decoded back to residues.</summary>
    private static List<string> ReadReference(string path)
    {
        if (!Directory.Exists(path)) return ReadFasta(path, "--reference");
        string vocab = Path.Combine(path, LlamaCheckpoint.ResidueFileName), prefix = Path.Combine(path, "valid");
        if (!File.Exists(vocab) || !File.Exists(TokenStore.IdxPath(prefix)))
            throw new BioForgeException($"--reference {path}: not a protein corpus of `bioforge data prepare --tokenizer esm` (no vocab.txt or valid.idx)");
        var tokenizer = EsmTokenizer.FromVocabFile(vocab);
        using var store = new TokenStore.Reader(prefix);
        var sequences = Enumerable.Range(0, store.Count)
            .Select(i => string.Concat(store.Document(i).Select(tokenizer.Decode).Where(t => !t.StartsWith('<'))))
            .Where(s => s.Length > 0).ToList();
        if (sequences.Count == 0) throw new BioForgeException($"--reference {path}: the validation split is empty");
        return sequences;
    }

    /// <param name="EsmUnscored">Sequences of the PLL's share without a residue ESM-2 can score, left out of <paramref name="EsmPll"/>.</param>
    private sealed record SetReport(int Sequences, LengthSummary Length, double LowComplexity, double Repetitive, double? EsmPll, int EsmUnscored);

    private sealed record Report(SetReport Generated, SetReport Natural, double? ShuffledEsmPll, double? AminoAcidJs, double? DipeptideJs,
        double? NaturalHalvesAminoAcidJs, double? NaturalHalvesDipeptideJs, double? ShuffledDipeptideJs, double LengthKs,
        double? Perplexity, double? NatsPerToken, long? PerplexityTokens, int EsmSequences, int EsmPositions);

    private static Report Evaluate(List<string> gen, List<string> natural, ParseResult result, Option<string?> model, Option<string> esm,
        int pllN, int pllPositions, int pllMaxLength, ulong seed, ComputeOptionSet compute)
    {
        var options = compute.Resolve(result);
        var shuffled = GenerationQuality.Shuffled(natural, seed);
        double? perplexity = null, nats = null;
        long? tokens = null;
        if (result.GetValue(model) is { } directory)
        {
            if (ModelRegistry.Of(directory) is not LlamaFamily)
                throw new BioForgeException($"--model {directory}: a {ModelRegistry.Of(directory).Title}, not a Llama-style protein language model");
            using var decoder = LlamaCheckpoint.Load(directory, options.Device, options.DType);
            if (!decoder.IsProtein) throw new BioForgeException($"--model {directory}: not a protein language model (no amino-acid vocabulary: {LlamaCheckpoint.ResidueFileName}, or BioForge's tokenizer.json)");
            var (n, t) = GenerationQuality.CausalNegativeLogLikelihood(decoder, natural);
            (nats, tokens, perplexity) = (n, t, Math.Exp(n));
        }
        double? genPll = null, natPll = null, shufPll = null;
        int genUnscored = 0, natUnscored = 0;
        if (result.GetValue(esm) is { } esmPath && esmPath != "none" && pllN > 0)
        {
            using var scorer = EsmCheckpoint.Load(esmPath, options.Device, options.DType);
            // A sequence of only X, gaps or U in its scored crop has no site to score: a generator's failure to count, not
            // a reason to lose the whole report.
            (double? Mean, int Unscored) Pll(List<string> set, string label)
            {
                var taken = set.Take(pllN).ToList();
                var scorable = taken.Where(s => s.Take(pllMaxLength).Any(GenerationQuality.IsCanonical)).ToList();
                double? mean = scorable.Count == 0 ? null : ProgressDisplay.Run($"ESM-2 PLL {label}", scorable.Count, progress =>
                    GenerationQuality.PseudoLogLikelihood(scorer, scorable, pllPositions, pllMaxLength, seed, progress: progress).Mean);
                return (mean, taken.Count - scorable.Count);
            }
            (genPll, genUnscored) = Pll(gen, "generated");
            (natPll, natUnscored) = Pll(natural, "natural");
            (shufPll, _) = Pll(shuffled, "shuffled");
        }
        var halfA = natural.Where((_, i) => i % 2 == 0).ToList();
        var halfB = natural.Where((_, i) => i % 2 == 1).ToList();
        return new Report(
            Describe(gen, genPll, genUnscored), Describe(natural, natPll, natUnscored), shufPll,
            GenerationQuality.Divergence(GenerationQuality.AminoAcidComposition(gen), GenerationQuality.AminoAcidComposition(natural)),
            GenerationQuality.Divergence(GenerationQuality.DipeptideComposition(gen), GenerationQuality.DipeptideComposition(natural)),
            halfB.Count == 0 ? null : GenerationQuality.Divergence(GenerationQuality.AminoAcidComposition(halfA), GenerationQuality.AminoAcidComposition(halfB)),
            halfB.Count == 0 ? null : GenerationQuality.Divergence(GenerationQuality.DipeptideComposition(halfA), GenerationQuality.DipeptideComposition(halfB)),
            GenerationQuality.Divergence(GenerationQuality.DipeptideComposition(shuffled), GenerationQuality.DipeptideComposition(natural)),
            GenerationQuality.LengthKolmogorovSmirnov(gen, natural),
            perplexity, nats, tokens, pllN, pllPositions);
    }

    private static SetReport Describe(List<string> set, double? pll, int unscored) =>
        new(set.Count, GenerationQuality.Lengths(set), set.Count(GenerationQuality.IsLowComplexity) / (double)set.Count,
            set.Count(GenerationQuality.IsRepetitive) / (double)set.Count, pll, unscored);

    private static IEnumerable<string> Table(Report r)
    {
        static string F(double? v, string format = "F4") => v is { } x && double.IsFinite(x) ? x.ToString(format, CultureInfo.InvariantCulture) : "—";
        static string L(LengthSummary l) => FormattableString.Invariant($"{l.Mean:F0} ± {l.StandardDeviation:F0} (median {l.Median:F0}, 10–90 % {l.P10:F0}–{l.P90:F0})");
        yield return $"| measure | generated ({r.Generated.Sequences}) | natural ({r.Natural.Sequences}) |";
        yield return "|---|---|---|";
        yield return $"| length, residues | {L(r.Generated.Length)} | {L(r.Natural.Length)} |";
        yield return $"| low complexity (a 12-residue window ≤ 2.2 bits) | {F(r.Generated.LowComplexity, "F3")} | {F(r.Natural.LowComplexity, "F3")} |";
        yield return $"| repetitive (exact period-1–6 stretch ≥ 12) | {F(r.Generated.Repetitive, "F3")} | {F(r.Natural.Repetitive, "F3")} |";
        static string Unscored(SetReport set) => set.EsmUnscored > 0 ? $" ({set.EsmUnscored} without a residue ESM-2 can score, left out)" : "";
        yield return $"| ESM-2 pseudo-log-likelihood per residue (the first {r.EsmSequences} or fewer of each set; shuffled natural: {F(r.ShuffledEsmPll, "F3")}) | {F(r.Generated.EsmPll, "F3")}{Unscored(r.Generated)} | {F(r.Natural.EsmPll, "F3")}{Unscored(r.Natural)} |";
        yield return $"amino-acid composition JS divergence (bits), generated vs natural: {F(r.AminoAcidJs)}; natural half vs half: {F(r.NaturalHalvesAminoAcidJs)}";
        yield return $"dipeptide composition JS divergence (bits), generated vs natural: {F(r.DipeptideJs)}; natural half vs half: {F(r.NaturalHalvesDipeptideJs)}; shuffled natural vs natural: {F(r.ShuffledDipeptideJs)}";
        yield return $"length distribution, Kolmogorov–Smirnov D generated vs natural: {F(r.LengthKs, "F3")}";
        if (r.Perplexity is not null)
            yield return $"perplexity of the natural sequences under the model: {F(r.Perplexity, "F3")} ({F(r.NatsPerToken)} nats/token over {r.PerplexityTokens:N0} tokens)";
    }
}
