using BioForge.Chem;

namespace BioForge.Tests;

public sealed class MosesMetricsTests
{
    [Fact]
    public void SmallSetMatchesHandComputedValues()
    {
        string[] generated = ["CCO", "OCC", "c1ccccc1", "C1CC", "CC(=O)Oc1ccccc1C(=O)O", "C[N+](C)(C)C"];
        using var metrics = new MosesMetrics();
        var report = metrics.Compute(generated, train: ["CCO"], reference: ["c1ccc2ccccc2c1", "CCO"], threads: 2);

        Assert.Equal(6, report.Generated);
        Assert.Equal(5.0 / 6, report.Validity, 12);
        Assert.Null(report.Unique1k); // fewer than 1,000 valid molecules
        Assert.Equal(3.0 / 4, report.Novelty!.Value, 12); // {CCO, c1ccccc1, aspirin, NMe4+} minus the training CCO
        Assert.Equal(4.0 / 5, report.Filters!.Value, 12); // the quaternary ammonium is charged

        // IntDiv over the five valid molecules, from pairwise Tanimoto of 1,024-bit Morgan fingerprints.
        var valid = generated.Where(s => s != "C1CC").Select(Molecule.FromSmiles).ToList();
        var fps = valid.Select(m => Fingerprints.Morgan(m, 2, 1024)).ToList();
        double mean = fps.SelectMany(a => fps.Select(b => Fingerprints.Tanimoto(a, b))).Average();
        Assert.Equal(1 - mean, report.IntDiv1!.Value, 12);
        double p2 = fps.Select(a => Math.Sqrt(fps.Select(b => Math.Pow(Fingerprints.Tanimoto(a, b), 2)).Average())).Average();
        Assert.Equal(1 - p2, report.IntDiv2!.Value, 12);

        // SNN: ethanol twice finds itself (1.0); the others find their best reference neighbour.
        using var naphthalene = Molecule.FromSmiles("c1ccc2ccccc2c1");
        using var ethanol = Molecule.FromSmiles("CCO");
        var refs = new[] { Fingerprints.Morgan(naphthalene, 2, 1024), Fingerprints.Morgan(ethanol, 2, 1024) };
        double snn = fps.Select(a => refs.Max(r => Fingerprints.Tanimoto(a, r))).Average();
        Assert.Equal(snn, report.Snn!.Value, 12);
        // Frag: cosine of the BRICS fragment counts (each set's fragments, counted with repeats), as MOSES computes it.
        static Dictionary<string, int> Counts(IEnumerable<string> fragments) => fragments.GroupBy(f => f).ToDictionary(g => g.Key, g => g.Count());
        var generatedFragments = Counts(valid.SelectMany(m => m.BricsFragments()));
        var referenceFragments = Counts(new[] { naphthalene, ethanol }.SelectMany(m => m.BricsFragments()));
        double dot = generatedFragments.Sum(kv => kv.Value * (double)referenceFragments.GetValueOrDefault(kv.Key));
        double Norm(Dictionary<string, int> c) => Math.Sqrt(c.Values.Sum(v => (double)v * v));
        Assert.Equal(dot / (Norm(generatedFragments) * Norm(referenceFragments)), report.Frag!.Value, 12);
        Assert.True(report.Frag.Value is > 0 and < 1, $"Frag {report.Frag.Value}: ethanol's fragment is shared, the others are not");
        Assert.Null(report.Scaf); // benzene-only scaffolds have fewer than two rings and are not counted: MOSES's NaN, not 0
        Assert.Equal(1.0, metrics.Compute(["c1ccc2ccccc2c1", "CCO"], reference: ["c1ccc2ccccc2c1"]).Scaf!.Value, 12);
        // A training set of nothing valid would make every sample novel; a reference set of nothing has no neighbours.
        Assert.Equal("--train t.smi has no valid molecule: novelty against it would be 1 for any sample",
            Assert.Throws<BioForgeException>(() => metrics.Compute(["CCO"], train: ["C1CC"], trainName: "--train t.smi")).Message);
        Assert.Equal("the reference set has no valid molecule", Assert.Throws<BioForgeException>(() => metrics.Compute(["CCO"], reference: ["xyz"])).Message);
        // Nothing valid: no diversity or filter pass rate (0 read as "all identical").
        var invalid = metrics.Compute(["C1CC", "xyz"]);
        Assert.Equal(0, invalid.Validity);
        Assert.Null(invalid.IntDiv1);
        Assert.Null(invalid.Filters);
        foreach (var m in valid) m.Dispose();
    }

    [Fact]
    public void FiltersFollowMosesRules()
    {
        using var metrics = new MosesMetrics();
        bool Passes(string smiles)
        {
            using var m = Molecule.FromSmiles(smiles);
            return metrics.PassesFilters(m);
        }
        Assert.True(Passes("CC(=O)Nc1ccc(O)cc1"));
        Assert.False(Passes("C1CCCCCCC1"));           // ring of 8 atoms
        Assert.False(Passes("CC[N+](C)(C)C"));        // charged
        Assert.False(Passes("CCP(C)C"));              // phosphorus is not an allowed element
        Assert.False(Passes("CC=O"));                 // MCF: aldehyde
        Assert.False(Passes("O=C1C=CC(=O)C=C1"));     // quinone (reactive Michael acceptor alerts)
    }
}
