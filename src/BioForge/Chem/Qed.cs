using System.Text.Json;

namespace BioForge.Chem;

/// <summary>The eight molecular properties QED desirability is computed from.</summary>
public sealed record QedProperties(double MolWt, double ALogP, int Acceptors, int Donors, double Psa, int RotatableBonds, int AromaticRings, int Alerts)
{
    internal double[] AsArray() => [MolWt, ALogP, Acceptors, Donors, Psa, RotatableBonds, AromaticRings, Alerts];
}

/// <summary>
/// Quantitative estimate of drug-likeness (Bickerton et al. 2012) exactly as RDKit's <c>rdkit.Chem.QED.qed</c>:
/// asymmetric double sigmoid desirability of each property, weighted geometric mean with the "mean" weights. The
/// SMARTS patterns and parameters come from RDKit (Chem/Data/qed.json, made by tools/extract_qed_data.py).
/// </summary>
public sealed class Qed : IDisposable
{
    private sealed record Ads(double A, double B, double C, double D, double E, double F, double DMAX);

    private readonly SmartsQuery aliphaticRings;
    private readonly SmartsQuery[] acceptors;
    private readonly SmartsQuery[] alerts;
    private readonly Ads[] parameters;
    private readonly double[] weights;

    public Qed()
    {
        using var stream = typeof(Qed).Assembly.GetManifestResourceStream("BioForge.Chem.qed.json")
            ?? throw new InvalidOperationException("embedded QED data is missing");
        using var json = JsonDocument.Parse(stream);
        var root = json.RootElement;
        aliphaticRings = new SmartsQuery(root.GetProperty("aliphatic_rings").GetString()!);
        acceptors = root.GetProperty("acceptors").EnumerateArray().Select(e => new SmartsQuery(e.GetString()!)).ToArray();
        alerts = root.GetProperty("structural_alerts").EnumerateArray().Select(e => new SmartsQuery(e.GetString()!)).ToArray();
        var ads = root.GetProperty("ads");
        parameters = root.GetProperty("properties").EnumerateArray()
            .Select(name => ads.GetProperty(name.GetString()!).Deserialize<Ads>()!).ToArray();
        weights = root.GetProperty("weights_mean").EnumerateArray().Select(e => e.GetDouble()).ToArray();
    }

    public QedProperties Properties(Molecule molecule)
    {
        using var heavy = molecule.WithoutHydrogens();
        var d = heavy.Descriptors();
        using var withoutAliphaticRings = heavy.DeleteSubstructures(aliphaticRings);
        return new QedProperties(
            d.MolWt,
            d.LogP,
            acceptors.Sum(heavy.CountMatches),
            d.HBondDonors,
            d.Tpsa,
            d.RotatableBondsStrict,
            withoutAliphaticRings.RingCount(),
            alerts.Count(heavy.HasMatch));
    }

    public double Score(Molecule molecule) => Score(Properties(molecule));

    public double Score(QedProperties properties)
    {
        double[] x = properties.AsArray();
        double sum = 0;
        for (int i = 0; i < x.Length; i++) sum += weights[i] * Math.Log(Desirability(x[i], parameters[i]));
        return Math.Exp(sum / weights.Sum());
    }

    private static double Desirability(double x, Ads p)
    {
        double exp1 = 1 + Math.Exp(-1 * (x - p.C + p.D / 2) / p.E);
        double exp2 = 1 + Math.Exp(-1 * (x - p.C - p.D / 2) / p.F);
        double dx = p.A + p.B / exp1 * (1 - 1 / exp2);
        return dx / p.DMAX;
    }

    public void Dispose()
    {
        aliphaticRings.Dispose();
        foreach (var q in acceptors) q.Dispose();
        foreach (var q in alerts) q.Dispose();
    }
}
