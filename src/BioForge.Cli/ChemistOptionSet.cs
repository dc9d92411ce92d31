using System.CommandLine;
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

    public string[] AllowedOf(ParseResult result) => result.GetValue(AllowAlerts) ?? [];

    public IReadOnlyList<KnownActive> ActivesOf(ParseResult result) =>
        result.GetValue(Actives) is { } path ? VirtualScreen.ReadActives(path) : [];
}
