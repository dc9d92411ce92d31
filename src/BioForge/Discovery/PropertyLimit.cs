using System.Globalization;
using System.Text.RegularExpressions;
using BioForge.Chem;

namespace BioForge.Discovery;

/// <summary>
/// A chemist's bound on a molecular property, written as they would say it: <c>mw&lt;=500</c>, <c>logp&gt;=1</c>,
/// <c>2&lt;=logp&lt;=4</c>, <c>qed&gt;=0.5</c>. Screening leaves a molecule outside a limit out; optimization scores it 0
/// (a <c>step</c> penalty, so the molecules within it keep their score).
/// </summary>
public sealed partial record PropertyLimit(string Property, double Low, double High, string Text)
{
    /// <summary>The properties a limit can bound: the scoring components that are one number of the molecule.</summary>
    public static readonly IReadOnlyList<string> Properties = ["mw", "logp", "tpsa", "hbd", "hba", "rotatable_bonds", "rings", "aromatic_rings", "qed", "sa"];

    /// <summary>The names <c>chem props</c> and the service's hits give two of them (their columns), read as the same property.</summary>
    private static readonly IReadOnlyDictionary<string, string> Aliases = new Dictionary<string, string> { ["molwt"] = "mw", ["rotb"] = "rotatable_bonds" };

    /// <summary>Shorthands for common sets: Lipinski's rule of five (all four, not "at most one broken") and Veber's rules.</summary>
    public static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> Presets = new Dictionary<string, IReadOnlyList<string>>(StringComparer.OrdinalIgnoreCase)
    {
        ["ro5"] = ["mw<=500", "logp<=5", "hbd<=5", "hba<=10"],
        ["veber"] = ["rotatable_bonds<=10", "tpsa<=140"],
    };

    /// <summary>Parses each text (a limit or a preset) into its limits; <paramref name="where"/> names the input in errors.</summary>
    public static IReadOnlyList<PropertyLimit> ParseAll(IEnumerable<string> texts, string where = "--limit") =>
        [.. texts.SelectMany(t => Presets.TryGetValue(t.Trim(), out var preset) ? preset.Select(p => Parse(p, where)) : [Parse(t, where)])];

    public static PropertyLimit Parse(string text, string where = "--limit")
    {
        string compact = Whitespace().Replace(text, "");
        var match = Pattern().Match(compact);
        if (!match.Success)
        {
            string hint = compact.Contains('≤') || compact.Contains('≥') ? "; write ≤ as <= and ≥ as >="
                : compact.Contains("<=", StringComparison.Ordinal) || compact.Contains(">=", StringComparison.Ordinal) || !(compact.Contains('<') || compact.Contains('>')) ? ""
                : "; only <= and >= (a limit includes its bound)";
            throw new BioForgeException($"{where} '{text}': not a limit such as mw<=500, logp>=1 or 2<=logp<=4{hint}; or a preset ({string.Join(", ", Presets.Keys)})");
        }
        string property = match.Groups["name"].Value.ToLowerInvariant();
        property = Aliases.GetValueOrDefault(property, property);
        if (!Properties.Contains(property))
        {
            string? nearest = Spelling.Nearest(property, Properties);
            throw new BioForgeException($"{where} '{text}': '{match.Groups["name"].Value}' is not a property a limit can bound{(nearest is null ? "" : $" (did you mean {nearest}?)")}; one of {string.Join(", ", Properties)}");
        }
        double Number(string group) => double.Parse(match.Groups[group].Value, NumberStyles.Float, CultureInfo.InvariantCulture);
        double low = double.MinValue, high = double.MaxValue;
        if (match.Groups["low"].Success) low = Number("low");
        if (match.Groups["op"].Success)
        {
            if (match.Groups["op"].Value == "<=") high = Number("bound");
            else if (match.Groups["low"].Success) throw new BioForgeException($"{where} '{text}': a range reads low<=name<=high");
            else low = Number("bound");
        }
        if (low > high)
            throw new BioForgeException(string.Create(CultureInfo.InvariantCulture, $"{where} '{text}': the lower bound {low} is above the upper {high}; no molecule can meet it"));
        return new PropertyLimit(property, low, high, compact.ToLowerInvariant().Replace(match.Groups["name"].Value.ToLowerInvariant(), property, StringComparison.Ordinal));
    }

    public bool Holds(double value) => value >= Low && value <= High;

    /// <summary>The limit as a scoring component: a step penalty that is 1 within the limit and 0 outside.</summary>
    public ComponentSettings AsPenalty() => new()
    {
        Type = Property,
        Name = Text,
        Penalty = true,
        Transform = new TransformSettings { Kind = "step", Low = Low, High = High },
    };

    /// <summary>
    /// The value of one of <see cref="Properties"/> (or another plain descriptor the scoring function names the same way);
    /// <paramref name="descriptors"/> gives the molecule's RDKit descriptors when a caller measures several (computed once).
    /// </summary>
    internal static double Measure(string property, Molecule m, Lazy<Qed> qed, Lazy<SaScore> sa, Func<MolecularDescriptors>? descriptors = null)
    {
        MolecularDescriptors D() => descriptors is null ? m.Descriptors() : descriptors();
        return property switch
        {
            "qed" => qed.Value.Score(m),
            "sa" => sa.Value.Score(m),
            "logp" => D().LogP,
            "mw" => D().MolWt,
            "tpsa" => D().Tpsa,
            "hbd" => D().HBondDonors,
            "hba" => D().HBondAcceptors,
            "rotatable_bonds" => D().RotatableBonds,
            "rings" => D().Rings,
            "aromatic_rings" => D().AromaticRings,
            _ => throw new ArgumentException($"'{property}' is not a limit property", nameof(property)),
        };
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    // name<=x, name>=x or low<=name<=high; numbers as C# reads them invariantly (1e3, -0.5).
    [GeneratedRegex(@"^(?:(?<low>[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)<=)?(?<name>[A-Za-z_]+)(?<op><=|>=)(?<bound>[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)$")]
    private static partial Regex Pattern();
}

/// <summary>A set of limits checked on molecules from many threads (QED and SA are made once, where a limit needs them).</summary>
public sealed class PropertyLimits : IDisposable
{
    private readonly Lazy<Qed> qed = new(() => new Qed());
    private readonly Lazy<SaScore> sa = new(() => new SaScore());

    public IReadOnlyList<PropertyLimit> Limits { get; }

    public PropertyLimits(IReadOnlyList<PropertyLimit> limits) => Limits = limits;

    /// <summary>The first limit the molecule is outside, or null when it meets them all.</summary>
    public PropertyLimit? FirstBroken(Molecule m)
    {
        MolecularDescriptors? computed = null; // one RDKit call for all of ro5's four limits
        MolecularDescriptors Descriptors() => computed ??= m.Descriptors();
        return Limits.FirstOrDefault(l => !l.Holds(PropertyLimit.Measure(l.Property, m, qed, sa, Descriptors)));
    }

    public void Dispose()
    {
        if (qed.IsValueCreated) qed.Value.Dispose();
    }
}
