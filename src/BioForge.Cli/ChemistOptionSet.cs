using System.CommandLine;
using BioForge.Chem;
using BioForge.Discovery;

namespace BioForge.Cli;

/// <summary>What a chemist brings to a screen or a design run: property limits, alert rules that do not apply, known actives.</summary>
internal sealed class ChemistOptionSet
{
    public Option<string[]> Limits { get; } = new("--limit")
    {
        Description = $"a property limit, repeatable: 'mw<=500', 'logp>=1', '2<=logp<=4', or a preset ({string.Join(", ", PropertyLimit.Presets.Keys)}); properties: {string.Join(", ", PropertyLimit.Properties)}",
    };

    public Option<string[]> AllowAlerts { get; } = new("--allow-alert")
    {
        Description = "a PAINS/Brenk rule that does not count, repeatable (Michael_acceptor_1 for covalent acrylamides; `bioforge chem alerts` lists them)",
    };

    public Option<string?> Actives { get; } = new("--actives")
    {
        Description = "known binders of the target (.smi, .csv/.tsv or .sdf): each hit's nearest known binder is among them",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Limits);
        command.Options.Add(AllowAlerts);
        command.Options.Add(Actives);
    }

    public IReadOnlyList<PropertyLimit> LimitsOf(ParseResult result) => PropertyLimit.ParseAll(result.GetValue(Limits) ?? []);

    /// <summary>The alert rules allowed; a name that is no rule is refused here, where the option can be named.</summary>
    public string[] AllowedOf(ParseResult result)
    {
        string[] names = result.GetValue(AllowAlerts) ?? [];
        if (names.Length == 0) return names;
        try
        {
            using var _ = new StructuralFilters(FilterCatalogs.Pains | FilterCatalogs.Brenk, names);
        }
        catch (BioForgeException e) when (!e.MissingDependency)
        {
            throw new BioForgeException($"--allow-alert: {e.Message}");
        }
        return names;
    }

    public IReadOnlyList<KnownActive> ActivesOf(ParseResult result) =>
        result.GetValue(Actives) is { } path ? VirtualScreen.ReadActives(path) : [];
}
