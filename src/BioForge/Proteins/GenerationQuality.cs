using BioForge.Models.Esm;
using BioForge.Models.Llama;
using BioForge.Runtime;
using BioForge.Statistics;
using BioForge.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BioForge.Proteins;

/// <summary>Summary of a length distribution (residues).</summary>
public sealed record LengthSummary(int Count, double Mean, double StandardDeviation, double Median, double P10, double P90, int Min, int Max);

/// <summary>
/// How natural-like generated proteins are, measured against natural sequences: composition and length statistics
/// (pure functions over residue strings), perplexity under a causal protein model, and ESM-2 pseudo-log-likelihood.
/// Only the 20 canonical amino acids enter compositions; other letters (X, B, U, Z, O) are skipped.
/// </summary>
public static class GenerationQuality
{
    public const string Canonical = "ACDEFGHIKLMNPQRSTVWY";

    /// <summary>SEG's trigger window and complexity (Wootton &amp; Federhen 1993: W = 12, K1 = 2.2 bits).</summary>
    public const int ComplexityWindow = 12;
    public const double LowComplexityBits = 2.2;

    /// <summary>An exact periodic stretch at least this long (period 1–6) makes a sequence repetitive.</summary>
    public const int RepeatSpan = 12, MaxRepeatPeriod = 6;

    private static int Index(char c) => Canonical.IndexOf(char.ToUpperInvariant(c));

    /// <summary>Whether <paramref name="c"/> is one of the 20 canonical amino acids, in either case (the tokenizer reads both).</summary>
    public static bool IsCanonical(char c) => Index(c) >= 0;

    /// <summary>
    /// Frequencies of the 20 canonical amino acids over all residues of all sequences (in <see cref="Canonical"/> order),
    /// or null when there are none.
    /// </summary>
    public static double[]? AminoAcidComposition(IEnumerable<string> sequences)
    {
        var counts = new double[Canonical.Length];
        foreach (var s in sequences)
            foreach (char c in s)
                if (Index(c) is var i and >= 0) counts[i]++;
        return Normalized(counts);
    }

    /// <summary>
    /// Frequencies of the 400 ordered pairs of adjacent canonical residues (overlapping, within each sequence), or null
    /// when there are none (every sequence a single residue, say).
    /// </summary>
    public static double[]? DipeptideComposition(IEnumerable<string> sequences)
    {
        var counts = new double[Canonical.Length * Canonical.Length];
        foreach (var s in sequences)
            for (int k = 0; k + 1 < s.Length; k++)
                if (Index(s[k]) is var a and >= 0 && Index(s[k + 1]) is var b and >= 0) counts[a * Canonical.Length + b]++;
        return Normalized(counts);
    }

    private static double[]? Normalized(double[] counts)
    {
        double total = counts.Sum();
        return total == 0 ? null : [.. counts.Select(c => c / total)];
    }

    /// <summary><see cref="JensenShannon"/> of two compositions, undefined (null) when either has nothing in it.</summary>
    public static double? Divergence(double[]? p, double[]? q) => p is null || q is null ? null : JensenShannon(p, q);

    /// <summary>Jensen–Shannon divergence in bits (0 = identical, 1 = disjoint), with 0 · log 0 = 0.</summary>
    public static double JensenShannon(IReadOnlyList<double> p, IReadOnlyList<double> q)
    {
        if (p.Count != q.Count) throw new ArgumentException("distributions of different sizes");
        double sum = 0;
        for (int i = 0; i < p.Count; i++)
        {
            double m = (p[i] + q[i]) / 2;
            if (p[i] > 0) sum += p[i] * Math.Log2(p[i] / m);
            if (q[i] > 0) sum += q[i] * Math.Log2(q[i] / m);
        }
        return sum / 2;
    }

    public static LengthSummary Lengths(IReadOnlyList<string> sequences)
    {
        if (sequences.Count == 0) throw new BioForgeException("no sequences");
        var lengths = sequences.Select(s => (double)s.Length).Order().ToArray();
        double mean = lengths.Average();
        double sd = lengths.Length > 1 ? Math.Sqrt(lengths.Sum(l => (l - mean) * (l - mean)) / (lengths.Length - 1)) : 0;
        return new LengthSummary(lengths.Length, mean, sd, Quantile.OfSorted(lengths, 0.5), Quantile.OfSorted(lengths, 0.1), Quantile.OfSorted(lengths, 0.9), (int)lengths[0], (int)lengths[^1]);
    }

    /// <summary>Two-sample Kolmogorov–Smirnov statistic D of the length distributions.</summary>
    public static double LengthKolmogorovSmirnov(IReadOnlyList<string> a, IReadOnlyList<string> b)
    {
        var x = a.Select(s => s.Length).Order().ToArray();
        var y = b.Select(s => s.Length).Order().ToArray();
        int i = 0, j = 0;
        double d = 0;
        while (i < x.Length && j < y.Length)
        {
            int v = Math.Min(x[i], y[j]);
            while (i < x.Length && x[i] == v) i++;
            while (j < y.Length && y[j] == v) j++;
            d = Math.Max(d, Math.Abs((double)i / x.Length - (double)j / y.Length));
        }
        return d;
    }

    /// <summary>
    /// Lowest Shannon entropy (bits) of the residues in any window of <see cref="ComplexityWindow"/> (the whole sequence
    /// when shorter); <see cref="LowComplexityBits"/> or less is SEG's low-complexity trigger.
    /// </summary>
    public static double MinimumWindowEntropy(string sequence)
    {
        if (sequence.Length == 0) return 0;
        int window = Math.Min(ComplexityWindow, sequence.Length);
        double min = double.PositiveInfinity;
        for (int start = 0; start + window <= sequence.Length; start++)
        {
            double entropy = 0;
            foreach (var group in sequence.Substring(start, window).ToUpperInvariant().GroupBy(c => c))
            {
                double p = (double)group.Count() / window;
                entropy -= p * Math.Log2(p);
            }
            min = Math.Min(min, entropy);
        }
        return min;
    }

    /// <summary>
    /// SEG's trigger in some full window; a sequence shorter than one window is not assessed (false): its entropy is at
    /// most log2 of its length, 2 bits for four residues all different, under the threshold however varied it is.
    /// </summary>
    public static bool IsLowComplexity(string sequence) => sequence.Length >= ComplexityWindow && MinimumWindowEntropy(sequence) <= LowComplexityBits;

    /// <summary>
    /// Length of the longest exact periodic stretch with a period of 1–<see cref="MaxRepeatPeriod"/> residues
    /// (a homopolymer run, or a short unit repeated in tandem: "QQQQ…", "GSGSGS…").
    /// </summary>
    public static int LongestPeriodicStretch(string sequence)
    {
        string s = sequence.ToUpperInvariant();
        int best = Math.Min(1, s.Length);
        for (int period = 1; period <= MaxRepeatPeriod; period++)
        {
            int run = 0;
            for (int j = 0; j + period < s.Length; j++)
            {
                run = s[j] == s[j + period] ? run + 1 : 0;
                if (run > 0) best = Math.Max(best, run + period);
            }
        }
        return best;
    }

    public static bool IsRepetitive(string sequence) => LongestPeriodicStretch(sequence) >= RepeatSpan;

    /// <summary>Each sequence's residues in a random order of its own (seeded Fisher–Yates): same composition, no order.</summary>
    public static List<string> Shuffled(IReadOnlyList<string> sequences, ulong seed) =>
        [.. sequences.Select((s, n) =>
        {
            var letters = s.ToCharArray();
            for (int i = letters.Length - 1; i > 0; i--)
            {
                int j = (int)(StatelessRandom.Hash(seed, n, i) % (ulong)(i + 1));
                (letters[i], letters[j]) = (letters[j], letters[i]);
            }
            return new string(letters);
        })];

    /// <summary>
    /// Mean negative log-likelihood (nats per token) of the sequences under a causal protein model, every token after
    /// <c>&lt;cls&gt;</c> predicted, <c>&lt;eos&gt;</c> included; a sequence longer than the model's context is scored on
    /// its first tokens. Perplexity is its exponential. Returns (nats per token, tokens scored).
    /// </summary>
    public static (double Nats, long Tokens) CausalNegativeLogLikelihood(LlamaCheckpoint model, IReadOnlyList<string> sequences, int batchTokens = 8192)
    {
        if (!model.IsProtein) throw new BioForgeException("perplexity needs a protein language model (vocab.txt)");
        int context = model.Config.MaxPositionEmbeddings;
        var encoded = sequences.Select(s => model.Residues!.Encode(s, unknownAsUnk: true)).Select(t => t.Length > context ? t[..context] : t)
            .OrderBy(t => t.Length).ToList();
        double sum = 0;
        long scored = 0;
        using var _ = no_grad();
        model.Model.eval();
        for (int start = 0; start < encoded.Count;)
        {
            int end = start;
            // Sorted by length, so the last sequence taken sets the padded width.
            while (end < encoded.Count && (end - start + 1) * encoded[end].Length <= Math.Max(batchTokens, encoded[end].Length)) end++;
            var examples = encoded.Skip(start).Take(Math.Max(1, end - start)).Select(CausalLanguageModeling.Apply).ToList();
            start += examples.Count;
            using var scope = NewDisposeScope();
            var batch = MicroBatches.Collate(examples, model.Config.PadTokenId, model.Device);
            var logits = model.Model.Forward(batch.Inputs, batch.AttentionMask).Logits;
            sum += MicroBatches.CrossEntropySum(logits, batch.Labels).item<float>();
            scored += batch.ScoredTokens;
        }
        return (sum / scored, scored);
    }

    /// <summary>
    /// ESM-2 pseudo-log-likelihood per residue (Salazar et al. 2020; as used to rank protein designs): each scored
    /// residue masked in turn, log p(true residue | rest) under the masked-LM head, averaged over the residue's sequence,
    /// then over sequences. Sequences are cropped to their first <paramref name="maxResidues"/> residues; a residue of a
    /// sequence longer than 1,022 residues is scored in the 1,024-token window centred on it (<see cref="ResidueWindows"/>); at most
    /// <paramref name="positions"/> positions per sequence are scored, a seeded random choice when there
    /// are more (the mean is then an unbiased estimate). Only the 20 canonical amino acids are scored: an X, a
    /// selenocysteine or an alignment gap is context, not a residue to predict (so generated and natural sets, and
    /// <c>protein pll</c> and <c>protein gen-eval</c>, score the same kind of site).
    /// </summary>
    /// <param name="progress">Sequences finished; <paramref name="siteProgress"/>: residues scored, batch by batch (a long protein is thousands of passes).</param>
    public static PseudoLikelihoods PseudoLogLikelihood(EsmCheckpoint model, IReadOnlyList<string> sequences, int positions, int maxResidues,
        ulong seed, int batchTokens = 16384, IProgress<int>? progress = null, IProgress<int>? siteProgress = null)
    {
        if (positions < 1) throw new BioForgeException($"--pll-positions must be positive (got {positions})");
        int limit = maxResidues, maxTokens = model.Config.MaxPositionEmbeddings;
        var tokenizer = model.Tokenizer;
        var result = new double[sequences.Count];
        var scored = new int[sequences.Count];
        var scorable = new int[sequences.Count];
        using var _ = no_grad();
        model.Model.eval();
        for (int n = 0; n < sequences.Count; n++)
        {
            string s = sequences[n].Length > limit ? sequences[n][..limit] : sequences[n];
            var tokens = tokenizer.Encode(s, unknownAsUnk: true);
            // Residue positions 1..L in token coordinates; <unk> is not scored (it has no true residue).
            var sites = Enumerable.Range(1, s.Length).Where(i => tokens[i] != tokenizer.UnkId && IsCanonical(s[i - 1])).ToArray();
            if (sites.Length == 0) throw new BioForgeException($"sequence {n + 1} has no residue ESM-2 can score");
            scorable[n] = sites.Length;
            if (sites.Length > positions)
                sites = [.. sites.OrderBy(i => StatelessRandom.Hash(seed, n, i)).Take(positions).Order()];
            double total = 0;
            int length = ResidueWindows.ReadWidth(tokens.Length, maxTokens); // every masked copy's
            int perBatch = Math.Max(1, batchTokens / length);
            for (int first = 0; first < sites.Length; first += perBatch)
            {
                var chunk = sites.Skip(first).Take(perBatch).ToArray();
                var copies = chunk.Select(site => ResidueWindows.MaskedSite(tokens, site, maxTokens, tokenizer.MaskId)).ToArray();
                using var scope = NewDisposeScope();
                var ids = copies.SelectMany(c => c.Tokens.Select(t => (long)t)).ToArray();
                var input = tensor(ids, [chunk.Length, length]).to(model.Device);
                var logits = model.Model.Forward(input, ones_like(input), new EsmForwardOptions { Logits = true }).Logits!;
                var rows = ScalarArithmetic.Range(0, chunk.Length, model.Device);
                var at = tensor(copies.Select(c => (long)c.At).ToArray()).to(model.Device);
                var truth = tensor(chunk.Select(i => (long)tokens[i]).ToArray()).to(model.Device);
                var logProbs = F.log_softmax(logits.index(rows, at).to(ScalarType.Float32), -1);
                total += logProbs.gather(1, truth.unsqueeze(1)).sum().item<float>();
                siteProgress?.Report(chunk.Length);
            }
            result[n] = total / sites.Length;
            scored[n] = sites.Length;
            progress?.Report(1);
        }
        return new PseudoLikelihoods(result, scored, scorable);
    }
}

/// <summary>
/// Per sequence: the mean log-probability of its scored residues, how many were scored, and how many could have been
/// (the sum over all of them is estimated as mean × scorable when a sample was scored).
/// </summary>
public sealed record PseudoLikelihoods(double[] PerResidue, int[] Scored, int[] Scorable)
{
    public double Mean => PerResidue.Average();
}
