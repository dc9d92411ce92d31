using System.Globalization;
using System.Text.Json;
using BioForge.Chem;
using BioForge.FineTuning;
using BioForge.IO;
using BioForge.Runtime;
using BioForge.Statistics;

namespace BioForge.Discovery;

/// <summary>How a QSAR model was made and how it did on molecules held out from its fitting.</summary>
public sealed record QsarManifest
{
    public string Activity { get; init; } = "";
    public string Source { get; init; } = "";
    public int Molecules { get; init; }
    public int Radius { get; init; } = 2;
    public int Bits { get; init; } = 2048;
    /// <summary>The ridge penalty chosen by cross-validation on the fitting part.</summary>
    public double Lambda { get; init; }
    /// <summary>How the penalty was cross-validated ("5 folds by scaffold"), and the R² of that penalty's held-out predictions there (against each fold's training mean).</summary>
    public string CrossValidation { get; init; } = "";
    public double CrossValidatedR2 { get; init; }
    /// <summary>How the test molecules were held out (scaffold or random), and their share.</summary>
    public string Split { get; init; } = "scaffold";
    public double TestFraction { get; init; }
    public int TestMolecules { get; init; }
    public Dictionary<string, double> TestMetrics { get; init; } = [];
    /// <summary>The test RMSE of predicting the fitting part's mean for every molecule.</summary>
    public double BaselineRmse { get; init; }
    public double Bias { get; init; }
    public float[] Weights { get; init; } = [];
}

/// <summary>
/// A ligand-based activity model a chemist fits on their own measurements (pIC50, pKi, solubility…): ridge regression
/// on Morgan count fingerprints (radius 2, folded to 2,048, log(1 + count)), the penalty chosen by 5-fold
/// cross-validation (folds by scaffold under a scaffold split). It is the usual first QSAR baseline, and it is a
/// scoring component (<c>type = "qsar"</c>), so generation can be steered by a target's own data where no affinity model knows the target. Molecules are read as
/// screening reads them (a salt as its parent, protonation states neutralized). Honest about its reach: the test
/// metrics come from molecules held out by scaffold (by default), and are recorded with the model.
/// </summary>
public sealed class QsarModel
{
    public const string FileName = "qsar_model.json";

    /// <summary>The ridge penalties cross-validation chooses from: 0.01 to 10,000 in quarter decades.</summary>
    public static IReadOnlyList<double> Penalties { get; } = [.. Enumerable.Range(0, 25).Select(k => Math.Pow(10, -2 + k / 4.0))];
    private const int Folds = 5;
    private const int Radius = 2, Bits = 2048;

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    public QsarManifest Manifest { get; }

    private QsarModel(QsarManifest manifest) => Manifest = manifest;

    public sealed record TrainOptions
    {
        public string Split { get; init; } = "scaffold";
        public double TestFraction { get; init; } = 0.2;
        public ulong Seed { get; init; }
    }

    private const double MaxActivity = 1e15;

    /// <summary>Fits on <paramref name="rows"/> (SMILES and a numeric label); every row must read, named by its line otherwise.</summary>
    public static QsarModel Train(IReadOnlyList<LabelledRow> rows, string activity, TrainOptions options)
    {
        if (options.Split is not ("scaffold" or "scaffold_balanced" or "random"))
            throw new BioForgeException($"--split must be scaffold, scaffold_balanced or random (got '{options.Split}')");
        bool byScaffold = options.Split != "random";
        if (options.TestFraction is <= 0 or >= 0.5) throw new BioForgeException($"--test-fraction must be in (0, 0.5) (got {options.TestFraction})");
        if (rows.Count < 20)
            throw new BioForgeException($"{(rows.Count > 0 ? rows[0].Source + ": " : "")}{rows.Count} molecules: a QSAR model needs at least 20 measured molecules");
        var y = rows.Select(r => double.TryParse(r.Label, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v)
            ? Math.Abs(v) <= MaxActivity ? v
                : throw new BioForgeException($"{r.Where}: {activity} {r.Label} is out of range (at most ±{MaxActivity:0e0}: larger numbers overflow the fit's sums of squares or are a unit mistake; activities are usually in log units, pIC50 = 9 − log10 IC50 in nM)")
            : throw new BioForgeException($"{r.Where}: '{r.Label}' is not a number{Csv.DecimalCommaNote(r.Label)}")).ToArray();
        var x = rows.Select(r => Features(r)).ToArray();
        var split = byScaffold ? LabelledData.Scaffold(rows, 0, options.TestFraction, options.Split == "scaffold_balanced" ? options.Seed : null)
            : LabelledData.Random(rows, 0, options.TestFraction, options.Seed);
        var index = rows.Select((r, i) => (r, i)).ToDictionary(p => p.r, p => p.i); // rows differ by their line
        int[] fit = [.. split.Train.Select(r => index[r])], test = [.. split.Test.Select(r => index[r])];
        // A scaffold split of one dominant series (a chemist's own, or acyclic molecules' empty scaffold) holds out far more
        // than asked, or leaves nothing to fit: refused rather than measured on the wrong part.
        if (fit.Length < 10 || test.Length > 2 * options.TestFraction * rows.Count + 1)
            throw new BioForgeException($"{rows[0].Source}: the {options.Split} split holds out {test.Length} of {rows.Count} molecules (asked: {options.TestFraction:P0}): one scaffold dominates the set; use --split random");
        if (test.Length < 2 || test.Select(i => y[i]).Distinct().Count() < 2)
            throw new BioForgeException($"{rows[0].Source}: the {test.Length} held-out molecules do not measure a ranking (fewer than 2, or all the same value); use more molecules or a larger --test-fraction");

        var folds = byScaffold ? ScaffoldFolds(rows, fit) : RandomFolds(rows, fit, options.Seed);
        string crossValidation = $"{folds.Distinct().Count()} folds{(byScaffold ? " by scaffold" : "")}";
        if (folds.GroupBy(f => f).Max(g => g.Count()) * 2 > fit.Length)
        {
            // One series is most of the fitting part: holding it out would predict it from a few others, so the folds are random.
            folds = RandomFolds(rows, fit, options.Seed);
            crossValidation = $"{folds.Distinct().Count()} random folds (one scaffold series is most of the fitting part)";
        }
        var (lambda, crossValidatedR2) = ChooseLambda(x, y, fit, folds);
        var (weights, bias) = Fit(x, y, fit).Solve(lambda);
        double[] truth = [.. test.Select(i => y[i])], predicted = [.. test.Select(i => Predict(x[i], weights, bias))];
        double mean = fit.Average(i => y[i]), truthMean = truth.Average();
        var metrics = new Dictionary<string, double>
        {
            ["rmse"] = Rmse(truth, predicted),
            ["r2"] = 1 - truth.Zip(predicted).Sum(p => (p.First - p.Second) * (p.First - p.Second)) / truth.Sum(t => (t - truthMean) * (t - truthMean)),
            ["spearman"] = Correlation.Spearman(truth, predicted),
            ["pearson"] = Correlation.Pearson(truth, predicted),
        };
        // The saved model learns from every measurement; the metrics above are those of the same recipe on the held-out part.
        var (allWeights, allBias) = Fit(x, y, [.. Enumerable.Range(0, rows.Count)]).Solve(lambda);
        return new QsarModel(new QsarManifest
        {
            Activity = activity,
            Source = rows[0].Source,
            Molecules = rows.Count,
            Radius = Radius,
            Bits = Bits,
            Lambda = lambda,
            CrossValidation = crossValidation,
            CrossValidatedR2 = Math.Round(crossValidatedR2, 4),
            Split = options.Split,
            TestFraction = options.TestFraction,
            TestMolecules = test.Length,
            TestMetrics = metrics.ToDictionary(kv => kv.Key, kv => Math.Round(kv.Value, 4)),
            BaselineRmse = Math.Round(Rmse(truth, [.. truth.Select(_ => mean)]), 4),
            Bias = allBias,
            Weights = [.. allWeights.Select(w => (float)w)],
        });
    }

    public void Save(string directory) =>
        Training.RunDirectory.WriteWhole(directory, "--out", run => IO.AtomicFile.WriteText(Path.Combine(run.Path, FileName), JsonSerializer.Serialize(Manifest, Json) + "\n"));

    public static QsarModel Load(string directory)
    {
        string path = Path.Combine(directory, FileName);
        if (!File.Exists(path)) throw new BioForgeException($"{directory}: not a QSAR model (no {FileName}; make one with `bioforge qsar train`)");
        QsarManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<QsarManifest>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new BioForgeException($"{path}: {e.Message}");
        }
        if (manifest?.Weights is null || manifest.Weights.Length != manifest.Bits || manifest.Bits <= 0 || manifest.Radius is < 0 or > 6)
            throw new BioForgeException($"{path}: {manifest?.Weights?.Length ?? 0} weights for {manifest?.Bits ?? 0} fingerprint bits of radius {manifest?.Radius}: not a model `bioforge qsar train` wrote");
        return new QsarModel(manifest);
    }

    /// <summary>
    /// The predicted activity of a molecule, read as the model's training molecules were. A molecule without carbon
    /// (water, an inorganic salt's parent) is refused: a ridge model predicts a number for it, which a screen or an
    /// optimization would then rank.
    /// </summary>
    public double Predict(Molecule molecule)
    {
        var features = Standardized(molecule, m => m.HasCarbon() ? Fold(m, Manifest.Radius, Manifest.Bits)
            : throw new BioForgeException("it has no carbon atom (water or an inorganic salt): an activity model scores organic molecules"));
        double sum = Manifest.Bias;
        foreach (var (bit, value) in features) sum += Manifest.Weights[bit] * value;
        return sum;
    }

    private static Dictionary<int, double> Features(LabelledRow row)
    {
        if (!Molecule.TryFromSmiles(row.Sequence, out var molecule, out string? error)) throw new BioForgeException($"{row.Where}: '{row.Sequence}' is not a valid SMILES: {error}");
        using (molecule) return Standardized(molecule!, m => Fold(m, Radius, Bits));
    }

    /// <summary><paramref name="read"/> of the molecule's parent, neutralized, as <see cref="VirtualScreen"/> reads a library.</summary>
    private static T Standardized<T>(Molecule molecule, Func<Molecule, T> read)
    {
        Molecule? standardized;
        try
        {
            standardized = molecule.Standardized();
        }
        catch (BioForgeException e)
        {
            throw new BioForgeException($"cannot standardize it (salt parent, neutral form): {e.Message}");
        }
        using (standardized) return read(standardized ?? molecule);
    }

    private static Dictionary<int, double> Fold(Molecule m, int radius, int bits)
    {
        var folded = new Dictionary<int, double>();
        foreach (var (environment, count) in Fingerprints.MorganCounts(m, radius))
        {
            int bit = (int)(environment % (uint)bits);
            folded[bit] = folded.GetValueOrDefault(bit) + count;
        }
        foreach (int bit in folded.Keys.ToList()) folded[bit] = Math.Log(1 + folded[bit]);
        return folded;
    }

    /// <summary>
    /// Folds for choosing the penalty under a scaffold split: a scaffold's molecules share a fold (the largest series
    /// first, each to the emptiest fold), so the penalty is chosen for new series, not for neighbours of the training
    /// molecules. Acyclic molecules (an empty scaffold) form no series and are spread compound by compound (copies of
    /// one together) — unlike the test split, which holds them as one group (the largest, so usually fitted). Fewer series
    /// than folds give fewer folds; a series that is most of the fitting part makes the caller fall back to random folds.
    /// </summary>
    internal static int[] ScaffoldFolds(IReadOnlyList<LabelledRow> rows, int[] fit)
    {
        var groups = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        for (int k = 0; k < fit.Length; k++)
        {
            var (identity, scaffold) = LabelledData.Keys(rows[fit[k]]); // every row was read by Features already
            string key = scaffold is { Length: > 0 } ? scaffold : $"#acyclic {identity}";
            if (!groups.TryGetValue(key, out var members)) groups[key] = members = [];
            members.Add(k);
        }
        var fold = new int[fit.Length];
        var sizes = new int[Folds];
        foreach (var members in groups.Values.OrderByDescending(g => g.Count).ThenBy(g => g[0]))
        {
            int emptiest = Array.IndexOf(sizes, sizes.Min());
            foreach (int k in members) fold[k] = emptiest;
            sizes[emptiest] += members.Count;
        }
        return fold;
    }

    /// <summary>Folds drawn per compound (copies of one share a fold: <see cref="LabelledData.Keys"/>), by its first row.</summary>
    private static int[] RandomFolds(IReadOnlyList<LabelledRow> rows, int[] fit, ulong seed)
    {
        var first = new Dictionary<string, int>(StringComparer.Ordinal);
        return [.. fit.Select(i =>
        {
            string identity = LabelledData.Keys(rows[i]).Identity;
            int representative = first.TryGetValue(identity, out int earlier) ? earlier : first[identity] = i;
            return (int)(StatelessRandom.Hash(seed, representative, 0x51a2) % Folds);
        })];
    }

    /// <summary>
    /// The penalty of <see cref="Penalties"/> with the least cross-validated squared error over <paramref name="folds"/>,
    /// and its cross-validated R² (against predicting each fold's training mean).
    /// </summary>
    private static (double Lambda, double R2) ChooseLambda(Dictionary<int, double>[] x, double[] y, int[] fit, int[] folds)
    {
        var squared = new double[Penalties.Count];
        double meanSquared = 0;
        int scored = 0;
        foreach (int f in folds.Distinct())
        {
            int[] train = [.. fit.Where((_, k) => folds[k] != f)], held = [.. fit.Where((_, k) => folds[k] == f)];
            if (held.Length == 0 || train.Length == 0) continue;
            scored++;
            var path = Fit(x, y, train);
            double trainMean = train.Average(i => y[i]);
            meanSquared += held.Sum(i => Math.Pow(y[i] - trainMean, 2));
            for (int p = 0; p < Penalties.Count; p++)
            {
                var (w, b) = path.Solve(Penalties[p]);
                squared[p] += held.Sum(i => Math.Pow(Predict(x[i], w, b) - y[i], 2));
            }
        }
        if (scored < 2) throw new InvalidOperationException($"{scored} cross-validation folds had molecules to fit and to hold out");
        int best = Array.IndexOf(squared, squared.Min());
        return (Penalties[best], meanSquared > 0 ? 1 - squared[best] / meanSquared : 0);
    }

    /// <summary>The ridge path of the fingerprints of <paramref name="rows"/> (dense rows × 2,048).</summary>
    private static RidgePath Fit(Dictionary<int, double>[] x, double[] y, int[] rows)
    {
        const int d = Bits;
        var dense = new double[(long)rows.Length * d];
        for (int r = 0; r < rows.Length; r++)
            foreach (var (bit, value) in x[rows[r]]) dense[(long)r * d + bit] = value;
        return new RidgePath(dense, d, [.. rows.Select(i => y[i])]);
    }

    private static double Predict(Dictionary<int, double> features, double[] weights, double bias)
    {
        double sum = bias;
        foreach (var (bit, value) in features) sum += weights[bit] * value;
        return sum;
    }

    private static double Rmse(double[] truth, double[] predicted) => Math.Sqrt(truth.Zip(predicted).Average(p => (p.First - p.Second) * (p.First - p.Second)));
}
