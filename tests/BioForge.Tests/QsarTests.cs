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

        string directory = Path.Combine(TestData.TempDirectory(), "qsar");
        model.Save(directory);
        var loaded = QsarModel.Load(directory);

        // predict names each molecule as the file does (an SDF title too) and writes an unreadable one as a row with its reason.
        string library = Path.Combine(TestData.TempDirectory(), "lib.smi"), predictions = Path.Combine(TestData.TempDirectory(), "p.csv");
        File.WriteAllLines(library, ["CCO ethanol", "C1CC(", "CCN"]);
        var error = new StringWriter();
        Assert.True(Cli.Cli.Run(["qsar", "predict", "--model", directory, "--in", library, "--out", predictions], new StringWriter(), error) == 0, error.ToString());
        var lines = File.ReadAllLines(predictions);
        Assert.Equal("id,smiles,predicted_logp,error", lines[0]);
        Assert.StartsWith("ethanol,CCO,", lines[1]);
        Assert.StartsWith("line 2,C1CC(,,", lines[2]);
        Assert.StartsWith("line 3,CCN,", lines[3]);
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
        e = Assert.Throws<BioForgeException>(() => QsarModel.Train(LabelledData.Read(Write("bad.csv", ["smiles,pic50", .. rows, "C1CC(,5"]), "smiles", "pic50"), "pic50", new()));
        Assert.Contains("bad.csv:27: 'C1CC(' is not a valid SMILES", e.Message);
        e = Assert.Throws<BioForgeException>(() => QsarModel.Train(LabelledData.Read(Write("few.csv", ["smiles,pic50", .. rows[..5]]), "smiles", "pic50"), "pic50", new()));
        Assert.Contains("5 molecules: a QSAR model needs at least 20", e.Message);
        Assert.Contains("not a QSAR model (no qsar_model.json", Assert.Throws<BioForgeException>(() => QsarModel.Load(dir)).Message);
        // Acyclic molecules share one (empty) scaffold: a scaffold split would hold out all of them.
        e = Assert.Throws<BioForgeException>(() => QsarModel.Train(LabelledData.Read(Write("series.csv", ["smiles,pic50", .. rows]), "smiles", "pic50"), "pic50", new()));
        Assert.Contains("the scaffold split holds out 25 of 25 molecules (asked: 20", e.Message);
        Assert.Contains("use --split random", e.Message);
        e = Assert.Throws<BioForgeException>(() => QsarModel.Train(LabelledData.Read(Write("flat.csv", ["smiles,pic50", .. rows.Select(r => r.Split(',')[0] + ",4")]), "smiles", "pic50"),
            "pic50", new() { Split = "random" }));
        Assert.Contains("do not measure a ranking", e.Message);
        var error = new StringWriter();
        Assert.Equal(2, Cli.Cli.Run(["qsar", "train", "--in", Write("ok.csv", ["smiles,pic50", .. rows]), "--activity-column", "pIC50", "--out", Path.Combine(dir, "m")], new StringWriter(), error));
        Assert.Contains("no column 'pIC50' (--activity-column); the header has: smiles, pic50", error.ToString());
    }
}
