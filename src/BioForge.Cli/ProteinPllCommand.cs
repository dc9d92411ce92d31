using System.CommandLine;
using System.Globalization;
using System.Text;
using BioForge.IO;
using BioForge.Models.Esm;
using BioForge.Proteins;

namespace BioForge.Cli;

/// <summary>
/// <c>bioforge protein pll</c>: each sequence's ESM-2 pseudo-log-likelihood, every residue masked in turn — the
/// zero-shot fitness score protein designers rank candidates by (and its pseudo-perplexity).
/// </summary>
internal static class ProteinPllCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = Options.Required("--model", "Hugging Face ESM-2 checkpoint directory (config.json + safetensors)");
        var input = Options.Required("--in", "FASTA file (.fasta, .fa, optionally .gz)");
        var outPath = Options.Required("--out", "scores CSV: id, length, positions (scored), pll (mean log-probability per scored residue), pll_sum (over every canonical residue; estimated with --positions), pseudo_perplexity").Writes("CSV", ".csv");
        var positions = Options.Int("--positions", "residues scored per sequence: 0 = all (exact); N = a seeded sample of N (an estimate, N forward passes instead of L)", 0);
        var seed = new Option<ulong>("--seed") { Description = "seed of the sampled positions (with --positions N)", DefaultValueFactory = _ => 0 };
        var batchTokens = Options.Int("--batch-tokens", "token budget per batch (masked copies × length)", 16384);
        var compute = new ComputeOptionSet(scoring: true);
        var command = new Command("pll", "ESM-2 pseudo-log-likelihood of each sequence (every canonical residue masked in turn; X, B, Z, U, O and gaps are context; a residue of a sequence longer than the model reads is read in the 1,024-token window centred on it) and its pseudo-perplexity")
        {
            model, input, outPath, positions, seed, batchTokens,
        };
        compute.AddTo(command);
        command.SetAction(result => Cli.Guard(error, () =>
        {
            if (result.GetValue(positions) < 0) throw new BioForgeException($"--positions must be 0 (all) or positive (got {result.GetValue(positions)})");
            if (result.GetValue(batchTokens) < 1) throw new BioForgeException($"--batch-tokens must be positive (got {result.GetValue(batchTokens)})");
            string inPath = result.GetValue(input)!;
            var records = FastaReader.Read(inPath).ToList(); // the whole file checked before any compute
            if (records.Count == 0) throw new BioForgeException($"--in {inPath}: no sequences");
            var options = compute.Resolve(result);
            using var esm = EsmCheckpoint.Load(result.GetValue(model)!, options.Device, options.DType);
            if (records.FirstOrDefault(r => r.Sequence.Length == 0) is { } empty)
                throw new BioForgeException($"--in {inPath}:{empty.Line}: record '{empty.Id}' is empty");
            int perSequence = result.GetValue(positions) == 0 ? int.MaxValue : result.GetValue(positions);
            // Progress by residue: a long protein is one forward pass per residue.
            if (records.FirstOrDefault(r => !r.Sequence.Any(GenerationQuality.IsCanonical)) is { } unscorable)
                throw new BioForgeException($"--in {inPath}:{unscorable.Line}: record '{unscorable.Id}' has no residue ESM-2 can score (only X, B, Z, U, O or gaps)");
            long sites = records.Sum(r => (long)Math.Min(perSequence, r.Sequence.Count(GenerationQuality.IsCanonical)));
            var scores = ProgressDisplay.Run("pseudo-log-likelihood (residues)", sites, progress =>
                GenerationQuality.PseudoLogLikelihood(esm, [.. records.Select(r => r.Sequence)], perSequence, int.MaxValue, result.GetValue(seed), result.GetValue(batchTokens),
                    siteProgress: progress));
            var (pll, scored, scorable) = (scores.PerResidue, scores.Scored, scores.Scorable);
            string F(double v) => v.ToString("F4", CultureInfo.InvariantCulture);
            var text = new StringBuilder("id,length,positions,pll,pll_sum,pseudo_perplexity\n");
            for (int i = 0; i < records.Count; i++)
                text.Append(Csv.Quote(records[i].Id)).Append(',').Append(records[i].Sequence.Length.ToString(CultureInfo.InvariantCulture)).Append(',')
                    .Append(scored[i].ToString(CultureInfo.InvariantCulture)).Append(',').Append(F(pll[i])).Append(',').Append(F(pll[i] * scorable[i])).Append(',')
                    .Append(F(Math.Exp(-pll[i]))).Append('\n');
            AtomicFile.WriteText(result.GetValue(outPath)!, text.ToString());
            int best = Array.IndexOf(pll, pll.Max());
            output.WriteLine($"{records.Count} sequences; highest pll {F(pll[best])} ({records[best].Id}), mean {F(pll.Average())}");
            output.WriteLine($"-> {result.GetValue(outPath)}");
            return 0;
        }));
        return command;
    }
}
