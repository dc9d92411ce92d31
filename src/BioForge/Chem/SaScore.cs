using System.Globalization;
using System.IO.Compression;

namespace BioForge.Chem;

/// <summary>
/// Synthetic accessibility score (Ertl &amp; Schuffenhauer 2009) as RDKit's Contrib <c>sascorer.calculateScore</c>:
/// mean fragment contribution of the Morgan radius-2 count bits (Chem/Data/fpscores.tsv.gz, RDKit Contrib,
/// BSD-3-Clause), minus size, stereo, spiro, bridgehead and macrocycle penalties, plus a fingerprint-density
/// correction, scaled to 1 (easy) … 10 (hard).
/// </summary>
internal sealed class SaScore
{
    private const double MissingFragmentScore = -4;
    private readonly Dictionary<uint, double> fragmentScores;

    public SaScore()
    {
        using var stream = typeof(SaScore).Assembly.GetManifestResourceStream("BioForge.Chem.fpscores.tsv.gz")
            ?? throw new InvalidOperationException("embedded SA-score fragment table is missing");
        using var reader = new StreamReader(new GZipStream(stream, CompressionMode.Decompress));
        fragmentScores = new Dictionary<uint, double>(710_000);
        string? line;
        while ((line = reader.ReadLine()) != null)
        {
            if (line.StartsWith('#') || line.Length == 0) continue;
            int tab = line.IndexOf('\t');
            fragmentScores[uint.Parse(line.AsSpan(0, tab), CultureInfo.InvariantCulture)] = double.Parse(line.AsSpan(tab + 1), CultureInfo.InvariantCulture);
        }
    }

    public double Score(Molecule molecule)
    {
        var counts = Fingerprints.MorganCounts(molecule, radius: 2);
        double fragments = 0;
        long bits = 0;
        foreach (var (id, count) in counts)
        {
            bits += count;
            fragments += fragmentScores.GetValueOrDefault(id, MissingFragmentScore) * count;
        }
        fragments /= bits;

        var d = molecule.Descriptors();
        int atoms = d.Atoms;
        double sizePenalty = Math.Pow(atoms, 1.005) - atoms;
        double stereoPenalty = Math.Log10(d.ChiralCentres + 1);
        double spiroPenalty = Math.Log10(d.SpiroAtoms + 1);
        double bridgePenalty = Math.Log10(d.BridgeheadAtoms + 1);
        double macrocyclePenalty = d.Macrocycles > 0 ? Math.Log10(2) : 0;
        double complexity = 0 - sizePenalty - stereoPenalty - spiroPenalty - bridgePenalty - macrocyclePenalty;
        double density = atoms > counts.Count ? Math.Log((double)atoms / counts.Count) * 0.5 : 0;

        double raw = fragments + complexity + density;
        const double min = -4.0, max = 2.5;
        double score = 11 - (raw - min + 1) / (max - min) * 9;
        if (score > 8) score = 8 + Math.Log(score + 1 - 9); // smooth the hard end
        return Math.Clamp(score, 1, 10);
    }
}
