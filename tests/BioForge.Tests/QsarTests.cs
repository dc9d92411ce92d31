using System.Globalization;
using BioForge.Chem;
using BioForge.Discovery;
using BioForge.FineTuning;

namespace BioForge.Tests;

/// <summary>A chemist's own activity model: fitted, measured on held-out scaffolds, saved, and used as a scoring component.</summary>
public sealed class QsarTests
{
    /// <summary>
    /// Crippen logP is a sum over atom environments, so a ridge on Morgan counts must learn it from 300 ZINC molecules
    /// well enough to rank 60 held-out ones (and far better than predicting the mean).
    /// </summary>
    [Fact]
    public void AModelLearnsAnAdditivePropertyAndScoresAsItPredicts()
    {
        _ = TestData.Cpu;
        var smiles = MoleculeSource.Read(Path.Combine(Repository.Root, "data", "zinc250k", "test.smi.gz")).Take(300).Select(r => r.Text).ToList();
        string csv = Path.Combine(TestData.TempDirectory(), "logp.csv");
        File.WriteAllLines(csv, ["smiles,logp", .. smiles.Select(s =>
        {
            using var m = Molecule.FromSmiles(s);
            return $"{s},{m.Descriptors().LogP.ToString("R", CultureInfo.InvariantCulture)}";
        })]);
        var model = QsarModel.Train(LabelledData.Read(csv, "smiles", "logp"), "logp", new QsarModel.TrainOptions());
        var m = model.Manifest;
        Assert.Equal((300, 60, "scaffold"), (m.Molecules, m.TestMolecules, m.Split));
        Assert.True(m.TestMetrics["spearman"] > 0.8, $"spearman {m.TestMetrics["spearman"]}");
        Assert.True(m.TestMetrics["rmse"] < 0.6 * m.BaselineRmse, $"rmse {m.TestMetrics["rmse"]} against the mean's {m.BaselineRmse}");
        // Chemprop's balanced scaffold split holds out series drawn by the seed, not the smallest ones.
        var balanced = QsarModel.Train(LabelledData.Read(csv, "smiles", "logp"), "logp", new QsarModel.TrainOptions { Split = "scaffold_balanced", Seed = 1 }).Manifest;
        Assert.Equal("scaffold_balanced", balanced.Split);
        Assert.InRange(balanced.TestMolecules, 55, 60);
        Assert.True(balanced.TestMetrics["spearman"] > 0.7, $"spearman {balanced.TestMetrics["spearman"]}");

        string directory = Path.Combine(TestData.TempDirectory(), "qsar");
        model.Save(directory);
        var loaded = QsarModel.Load(directory);

        // predict names each molecule as the file does (an SDF title too) and writes an unreadable one as a row with its reason.
        string library = Path.Combine(TestData.TempDirectory(), "lib.smi"), predictions = Path.Combine(TestData.TempDirectory(), "p.csv");
        File.WriteAllLines(library, ["CCO ethanol", "C1CC(", "NCC", "O water", "[Na+].[Cl-] brine"]);
        var error = new StringWriter();
        Assert.True(Cli.Cli.Run(["qsar", "predict", "--model", directory, "--in", library, "--out", predictions], new StringWriter(), error) == 0, error.ToString());
        var lines = File.ReadAllLines(predictions);
        Assert.Equal("id,smiles,predicted_logp,error", lines[0]);
        Assert.StartsWith("ethanol,CCO,", lines[1]);
        Assert.StartsWith("line 2,C1CC(,,", lines[2]);
        Assert.StartsWith("line 3,NCC,", lines[3]); // as written (not RDKit's CCN), so the rows join back to the user's table
        // No carbon, no prediction (a ridge model gave water 0.05): a row with the reason, as an unreadable line.
        Assert.Equal("water,O,,it has no carbon atom (water or an inorganic salt): an activity model scores organic molecules", lines[4]);
        Assert.StartsWith("brine,[Na+].[Cl-],,it has no carbon atom", lines[5]);
        // Nothing readable: refused, not a table of reasons only.
        File.WriteAllLines(library, ["C1CC(", "xyz"]);
        string none = Path.Combine(TestData.TempDirectory(), "none.csv");
        error = new StringWriter();
        Assert.Equal(2, Cli.Cli.Run(["qsar", "predict", "--model", directory, "--in", library, "--out", none], new StringWriter(), error));
        Assert.Contains("none of its 2 molecule(s) could be read (the first, line 1:", error.ToString());
        Assert.False(File.Exists(none));
        using var ethanol = Molecule.FromSmiles("CCO");
        using var salt = Molecule.FromSmiles("CC[NH3+].[Cl-]");
        using var amine = Molecule.FromSmiles("CCN");
        Assert.Equal(model.Predict(ethanol), loaded.Predict(ethanol), 5); // weights stored as float32
        Assert.Equal(loaded.Predict(amine), loaded.Predict(salt), 12); // read as screening reads it: the parent, neutral

        using var scoring = new ScoringFunction([new ComponentSettings { Type = "qsar", Model = directory, Transform = new TransformSettings { Kind = "sigmoid", Low = 0, High = 5 } }],
            "arithmetic", TestData.Cpu.Device);
        var scored = scoring.Score(["CCO"])[0];
        Assert.Equal(loaded.Predict(ethanol), scored.Raw[0], 12);
        Assert.Equal(new TransformSettings { Kind = "sigmoid", Low = 0, High = 5 }.Apply(scored.Raw[0]), scored.Score, 12);
    }

    [Fact]
    public void BadMeasurementsAreRefusedWithTheirLine()
    {
        string dir = TestData.TempDirectory();
        string Write(string name, params string[] lines)
        {
            string path = Path.Combine(dir, name);
            File.WriteAllLines(path, lines);
            return path;
        }
        var rows = Enumerable.Range(0, 25).Select(i => $"{new string('C', i + 1)}O,{i}").ToArray();
        var e = Assert.Throws<BioForgeException>(() => QsarModel.Train(LabelledData.Read(Write("nan.csv", ["smiles,pic50", .. rows, "CCN,>10"]), "smiles", "pic50"), "pic50", new()));
        Assert.EndsWith("nan.csv:27: '>10' is not a number", e.Message);
        // Finite but past what the fit can sum (its statistics overflowed into an error from the JSON writer).
        e = Assert.Throws<BioForgeException>(() => QsarModel.Train(LabelledData.Read(Write("huge.csv", ["smiles,pic50", .. rows, "CCN,1e160"]), "smiles", "pic50"), "pic50", new()));
        Assert.Contains("huge.csv:27: pic50 1e160 is out of range", e.Message);
        e = Assert.Throws<BioForgeException>(() => QsarModel.Train(LabelledData.Read(Write("bad.csv", ["smiles,pic50", .. rows, "C1CC(,5"]), "smiles", "pic50"), "pic50", new()));
        Assert.Contains("bad.csv:27: 'C1CC(' is not a valid SMILES", e.Message);
        e = Assert.Throws<BioForgeException>(() => QsarModel.Train(LabelledData.Read(Write("few.csv", ["smiles,pic50", .. rows[..5]]), "smiles", "pic50"), "pic50", new()));
        Assert.Contains("few.csv: 5 molecules: a QSAR model needs at least 20", e.Message);
        Assert.Contains("not a QSAR model (no qsar_model.json", Assert.Throws<BioForgeException>(() => QsarModel.Load(dir)).Message);
        // Acyclic molecules share one (empty) scaffold: a scaffold split would hold out all of them.
        e = Assert.Throws<BioForgeException>(() => QsarModel.Train(LabelledData.Read(Write("series.csv", ["smiles,pic50", .. rows]), "smiles", "pic50"), "pic50", new()));
        Assert.Contains("series.csv: the scaffold split holds out 25 of 25 molecules (asked: 20", e.Message);
        Assert.Contains("use --split random", e.Message);
        e = Assert.Throws<BioForgeException>(() => QsarModel.Train(LabelledData.Read(Write("flat.csv", ["smiles,pic50", .. rows.Select(r => r.Split(',')[0] + ",4")]), "smiles", "pic50"),
            "pic50", new() { Split = "random" }));
        Assert.Contains("do not measure a ranking", e.Message);
        var error = new StringWriter();
        Assert.Equal(2, Cli.Cli.Run(["qsar", "train", "--in", Write("ok.csv", ["smiles,pic50", .. rows]), "--activity-column", "pKi", "--out", Path.Combine(dir, "m")], new StringWriter(), error));
        Assert.Contains("no column 'pKi' (--activity-column); the header has: smiles, pic50", error.ToString());
        // Another case of one header is that column (SMILES, pIC50); two spellings of it are a question.
        Assert.Equal(25, LabelledData.Read(Write("cased.csv", ["SMILES,pIC50", .. rows]), "smiles", "pic50").Count);
        Assert.Contains("names column 'smiles' (data.sequence_column) in 2 spellings",
            Assert.Throws<BioForgeException>(() => LabelledData.Read(Write("twice.csv", ["SMILES,Smiles,pic50", .. rows.Select(r => r.Split(',')[0] + "," + r)]), "smiles", "pic50")).Message);
    }
    /// <summary>The ridge path's weights for any penalty are the closed-form solve's, (XᵀX + λI)⁻¹ Xᵀy on centred data, with more rows than columns and fewer.</summary>
    [Theory]
    [InlineData(30, 10)]
    [InlineData(8, 20)]
    public void TheRidgePathSolvesEachPenaltyExactly(int rows, int columns)
    {
        _ = TestData.Cpu;
        var x = Enumerable.Range(0, rows * columns).Select(i => Runtime.StatelessRandom.Unit(7, i) * 2 - 1).ToArray();
        var y = Enumerable.Range(0, rows).Select(r => Enumerable.Range(0, columns).Sum(c => x[r * columns + c] * (c % 3 - 1)) + Runtime.StatelessRandom.Unit(8, r)).ToArray();
        var path = new Statistics.RidgePath(x, columns, y);
        foreach (double lambda in new[] { 0.01, 1, 100 })
        {
            var (weights, bias) = path.Solve(lambda);
            // The normal equations by Gaussian elimination, on features and labels centred by hand.
            var mean = Enumerable.Range(0, columns).Select(c => Enumerable.Range(0, rows).Average(r => x[r * columns + c])).ToArray();
            double labelMean = y.Average();
            var a = new double[columns, columns + 1];
            for (int i = 0; i < columns; i++)
            {
                for (int j = 0; j < columns; j++)
                    a[i, j] = Enumerable.Range(0, rows).Sum(r => (x[r * columns + i] - mean[i]) * (x[r * columns + j] - mean[j])) + (i == j ? lambda : 0);
                a[i, columns] = Enumerable.Range(0, rows).Sum(r => (x[r * columns + i] - mean[i]) * (y[r] - labelMean));
            }
            for (int p = 0; p < columns; p++)
                for (int i = 0; i < columns; i++)
                {
                    if (i == p) continue;
                    double factor = a[i, p] / a[p, p];
                    for (int j = p; j <= columns; j++) a[i, j] -= factor * a[p, j];
                }
            for (int c = 0; c < columns; c++) Assert.Equal(a[c, columns] / a[c, c], weights[c], 8);
            Assert.Equal(labelMean - Enumerable.Range(0, columns).Sum(c => mean[c] * weights[c]), bias, 8);
        }
    }

    /// <summary>Under a scaffold split the penalty is chosen on folds that keep a series together; acyclic molecules are spread one by one.</summary>
    [Fact]
    public void CrossValidationFoldsKeepASeriesTogether()
    {
        string[] smiles = [.. Enumerable.Range(0, 12).Select(i => $"c1ccccc1{new string('C', i + 1)}"), .. Enumerable.Range(0, 6).Select(i => $"C1CCNCC1{new string('C', i + 1)}"),
            .. Enumerable.Range(0, 10).Select(i => $"{new string('C', i + 1)}O")];
        var rows = smiles.Select((s, i) => new LabelledRow("t.csv", i + 2, s, "0")).ToList();
        var folds = QsarModel.ScaffoldFolds(rows, [.. Enumerable.Range(0, rows.Count)]);
        Assert.Single(folds[..12].Distinct());
        Assert.Single(folds[12..18].Distinct());
        Assert.NotEqual(folds[0], folds[12]);
        Assert.Equal(3, folds[18..].Distinct().Count()); // 10 acyclic molecules, one by one to the emptiest folds: the three the series left
        Assert.Equal([12, 6, 4, 3, 3], [.. folds.GroupBy(f => f).Select(g => g.Count()).OrderDescending()]);
    }

    /// <summary>Labels the fingerprints cannot predict: cross-validation takes the largest penalty, and `qsar train` says what that means.</summary>
    [Fact]
    public void NoiseIsFittedWithTheLargestPenaltyAndAWarning()
    {
        _ = TestData.Cpu;
        var smiles = MoleculeSource.Read(Path.Combine(Repository.Root, "data", "zinc250k", "test.smi.gz")).Take(120).Select(r => r.Text).ToList();
        string dir = TestData.TempDirectory(), csv = Path.Combine(dir, "noise.csv");
        File.WriteAllLines(csv, ["smiles,noise", .. smiles.Select((s, i) => $"{s},{Runtime.StatelessRandom.Unit(11, i).ToString("R", CultureInfo.InvariantCulture)}")]);
        var (output, error) = (new StringWriter(), new StringWriter());
        Assert.True(Cli.Cli.Run(["qsar", "train", "--in", csv, "--activity-column", "noise", "--out", Path.Combine(dir, "m")], output, error) == 0, error.ToString());
        Assert.Contains("ridge penalty 1E+04 by cross-validation (5 folds by scaffold; R² ", output.ToString());
        Assert.Contains("warning: in cross-validation the fingerprints barely predict noise beyond its mean (R² ", error.ToString());
    }

    /// <summary>
    /// Two series, the smaller held out as the test part: the fitting part is one series, no fold can hold a series out,
    /// and the folds are random (said so) — not five empty folds that leave the smallest penalty chosen by default.
    /// </summary>
    [Fact]
    public void OneSeriesToFitIsCrossValidatedOnRandomFolds()
    {
        _ = TestData.Cpu;
        string[] smiles = [.. Enumerable.Range(0, 24).Select(i => $"c1ccccc1{new string('C', i % 8 + 1)}{(i >= 8 ? "O" : "")}{(i >= 16 ? "N" : "")}"),
            .. Enumerable.Range(0, 6).Select(i => $"c1ccncc1{new string('C', i + 1)}")];
        var rows = smiles.Select((s, i) => new LabelledRow("t.csv", i + 2, s, (s.Length * 0.3 + (i % 3)).ToString(CultureInfo.InvariantCulture))).ToList();
        var m = QsarModel.Train(rows, "act", new QsarModel.TrainOptions()).Manifest;
        Assert.Equal(6, m.TestMolecules); // the pyridines held out
        Assert.Equal("5 random folds (one scaffold series is most of the fitting part)", m.CrossValidation);
        Assert.NotEqual(QsarModel.Penalties[0], m.Lambda);
        // Two acyclic molecules beside the one series make three groups, still not folds to hold a series out with.
        var withAcyclic = rows.Concat([new LabelledRow("t.csv", 40, "CCCCO", "1.5"), new LabelledRow("t.csv", 41, "CCCCCN", "2.5")]).ToList();
        m = QsarModel.Train(withAcyclic, "act", new QsarModel.TrainOptions { TestFraction = 0.15 }).Manifest;
        Assert.Equal(6, m.TestMolecules);
        Assert.Equal("5 random folds (one scaffold series is most of the fitting part)", m.CrossValidation);
    }
}
