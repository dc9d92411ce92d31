namespace BioForge.Chem;

/// <summary>A reaction written as reaction SMARTS (RDKit's <c>ReactionFromSmarts</c>): a graph edit applied wherever its templates match.</summary>
internal sealed class Reaction : IDisposable
{
    private readonly ReactionHandle handle;

    public string Smarts { get; }

    public Reaction(string smarts)
    {
        if (string.IsNullOrWhiteSpace(smarts)) throw new BioForgeException($"invalid reaction SMARTS '{smarts}'");
        smarts = smarts.Trim(); // a stray space around it; one inside is refused below
        if ((Molecule.NonPrintableAscii(smarts) ?? Molecule.Whitespace(smarts, "reaction SMARTS")) is { } reason) throw new BioForgeException($"invalid reaction SMARTS '{smarts}': {reason}");
        int status = RDKitNative.bf_reaction_from_smarts(smarts, out handle);
        if (status != RDKitNative.Ok)
        {
            handle.Dispose();
            throw new BioForgeException($"invalid reaction SMARTS '{smarts}': {RDKitNative.LastError()}");
        }
        Smarts = smarts;
    }

    /// <summary>
    /// Canonical SMILES of the first product of every way the templates match the reactants (kekulized copies, so
    /// single and double bond patterns reach into aromatic rings), repeats kept; products that cannot be sanitized are
    /// left out.
    /// </summary>
    public unsafe IReadOnlyList<string> Run(params Molecule[] reactants)
    {
        var references = new bool[reactants.Length];
        var pointers = new IntPtr[reactants.Length];
        try
        {
            for (int i = 0; i < reactants.Length; i++)
            {
                reactants[i].Handle.DangerousAddRef(ref references[i]);
                pointers[i] = reactants[i].Handle.DangerousGetHandle();
            }
            IntPtr text;
            fixed (IntPtr* p = pointers)
                RDKitNative.Check(RDKitNative.bf_reaction_run(handle, p, reactants.Length, out text), $"reaction {Smarts}");
            return RDKitNative.TakeString(text).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        }
        finally
        {
            for (int i = 0; i < reactants.Length; i++)
                if (references[i]) reactants[i].Handle.DangerousRelease();
        }
    }

    public void Dispose() => handle.Dispose();
}
