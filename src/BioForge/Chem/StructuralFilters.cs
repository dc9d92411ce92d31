namespace BioForge.Chem;

[Flags]
public enum FilterCatalogs
{
    PainsA = 1,
    PainsB = 2,
    PainsC = 4,
    Pains = PainsA | PainsB | PainsC,
    Brenk = 8,
    Nih = 16,
}

/// <summary>
/// Structural alerts from RDKit's FilterCatalog; each match reads "CATALOG:rule description". Rules named in
/// <c>allowed</c> never match: a covalent inhibitor's warhead (Brenk's <c>Michael_acceptor_1</c> for an acrylamide) is
/// the point of the design, not a liability.
/// </summary>
public sealed class StructuralFilters : IDisposable
{
    private readonly FilterHandle handle;
    private readonly HashSet<string> allowed;

    /// <param name="allowed">Rules to ignore, each as its description (<c>Michael_acceptor_1</c>) or as matches name it
    /// (<c>BRENK:Michael_acceptor_1</c>), in any case; a name no rule of the catalogues has is refused.</param>
    public StructuralFilters(FilterCatalogs catalogs, IReadOnlyCollection<string>? allowed = null)
    {
        int status = RDKitNative.bf_filter_new((int)catalogs, out handle);
        if (status != RDKitNative.Ok)
        {
            handle.Dispose();
            throw new BioForgeException($"filter catalog: {RDKitNative.LastError()}") { ServerFault = true };
        }
        try
        {
            this.allowed = Allowed(Rules(), allowed ?? []);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Every rule of the catalogues, named as <see cref="Matches"/> names them.</summary>
    public IReadOnlyList<string> Rules()
    {
        RDKitNative.Check(RDKitNative.bf_filter_entries(handle, out IntPtr text), "structural filters");
        return Lines(RDKitNative.TakeString(text));
    }

    /// <summary>The rules the molecule matches, less the allowed ones.</summary>
    public IReadOnlyList<string> Matches(Molecule molecule)
    {
        RDKitNative.Check(RDKitNative.bf_filter_matches(handle, molecule.Handle, out IntPtr text), "structural filters");
        var matches = Lines(RDKitNative.TakeString(text));
        return allowed.Count == 0 ? matches : [.. matches.Where(m => !allowed.Contains(m))];
    }

    private static string[] Lines(string text) => text.Length == 0 ? [] : text.Split('\n');

    private static HashSet<string> Allowed(IReadOnlyList<string> rules, IReadOnlyCollection<string> names)
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        foreach (string name in names)
        {
            var same = rules.Where(r => r.Equals(name, StringComparison.OrdinalIgnoreCase)
                || r[(r.IndexOf(':') + 1)..].Equals(name, StringComparison.OrdinalIgnoreCase)).ToList();
            if (same.Count == 0)
            {
                string? nearest = Spelling.Nearest(name, rules.Select(r => r[(r.IndexOf(':') + 1)..]), ignoreCase: true);
                throw new BioForgeException($"alert '{name}' is not a rule of the {Catalogues(rules)} filters{(nearest is null ? "" : $" (did you mean {nearest}?)")}");
            }
            result.UnionWith(same);
        }
        return result;
    }

    private static string Catalogues(IReadOnlyList<string> rules) =>
        string.Join(", ", rules.Select(r => r[..r.IndexOf(':')]).Distinct());

    public void Dispose() => handle.Dispose();
}
