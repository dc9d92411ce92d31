using System.Text.RegularExpressions;
using static BioForge.Chem.Oracles.ScoreModifiers;

namespace BioForge.Chem.Oracles;

/// <summary>
/// GuacaMol's IsomerScoringFunction: how close a molecule's element counts are to a molecular formula — the geometric
/// mean of Gaussian(count; n, 1) per element of the formula (hydrogens counted explicitly, as after RDKit's AddHs) and
/// Gaussian(all atoms with hydrogens; N, 2). 1 for an exact isomer.
/// </summary>
internal sealed partial class IsomerScore
{
    private static readonly string[] Elements =
    [
        "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar", "K", "Ca",
        "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y",
        "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I", "Xe",
    ];

    private readonly (int AtomicNumber, int Count)[] elements;
    private readonly int total;

    /// <summary>Reads <paramref name="formula"/> (element symbols each with an optional count: <c>C9H10N2O2PF2Cl</c>).</summary>
    public IsomerScore(string formula)
    {
        if (!FormulaSyntax().IsMatch(formula)) throw new BioForgeException($"formula '{formula}': not a molecular formula (element symbols, each with an optional count, e.g. C7H8N2O2)");
        // A condensed formula names an element more than once (CH3COOH): its counts add up, as C2H4O2's (GuacaMol's parser
        // gave each mention a term of its own, so acetic acid scored 0.37 against its own formula).
        elements = [.. ElementTerm().Matches(formula)
            .Select(m => (Number: AtomicNumber(m.Groups[1].Value, formula), Count: m.Groups[2].Value.Length > 0 ? int.Parse(m.Groups[2].Value) : 1))
            .GroupBy(e => e.Number).Select(g => (g.Key, g.Sum(e => e.Count)))];
        total = elements.Sum(e => e.Count);
    }

    public double Score(Molecule molecule)
    {
        using var withHydrogens = molecule.WithHydrogens();
        var atoms = withHydrogens.Atoms();
        return Score(n => atoms.Count(a => a.AtomicNumber == n), atoms.Count);
    }

    /// <summary>The score from the molecule's element counts (hydrogens included) and its atom count with hydrogens.</summary>
    public double Score(Func<int, int> elementCount, int atomsWithHydrogens)
    {
        var parts = new double[elements.Length + 1];
        for (int i = 0; i < elements.Length; i++) parts[i] = Gaussian(elementCount(elements[i].AtomicNumber), elements[i].Count, 1);
        parts[^1] = Gaussian(atomsWithHydrogens, total, 2);
        return GeometricMean(parts);
    }

    /// <summary>Atoms of the element <paramref name="symbol"/>, hydrogens counted explicitly.</summary>
    public static int ElementCount(Molecule molecule, string symbol)
    {
        int number = AtomicNumber(symbol, symbol);
        using var withHydrogens = molecule.WithHydrogens();
        return withHydrogens.Atoms().Count(a => a.AtomicNumber == number);
    }

    public static bool IsElement(string symbol) => Array.IndexOf(Elements, symbol) >= 0;

    private static int AtomicNumber(string symbol, string formula)
    {
        int index = Array.IndexOf(Elements, symbol);
        return index >= 0 ? index + 1 : throw new BioForgeException($"formula '{formula}': unknown element '{symbol}'");
    }

    [GeneratedRegex("^([A-Z][a-z]?[0-9]*)+$")]
    private static partial Regex FormulaSyntax();

    [GeneratedRegex("([A-Z][a-z]?)([0-9]*)")]
    private static partial Regex ElementTerm();
}
