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

/// <summary>Structural alerts from RDKit's FilterCatalog; each match reads "CATALOG:rule description".</summary>
public sealed class StructuralFilters : IDisposable
{
    private readonly FilterHandle handle;

    public StructuralFilters(FilterCatalogs catalogs)
    {
        int status = RDKitNative.bf_filter_new((int)catalogs, out handle);
        if (status != RDKitNative.Ok)
        {
            handle.Dispose();
            throw new BioForgeException($"filter catalog: {RDKitNative.LastError()}");
        }
    }

    public IReadOnlyList<string> Matches(Molecule molecule)
    {
        RDKitNative.Check(RDKitNative.bf_filter_matches(handle, molecule.Handle, out IntPtr text), "structural filters");
        string lines = RDKitNative.TakeString(text);
        return lines.Length == 0 ? [] : lines.Split('\n');
    }

    public void Dispose() => handle.Dispose();
}
