namespace BioForge.Chem;

/// <summary>RDKit descriptors of one molecule (names as in <c>rdkit.Chem.Descriptors</c>).</summary>
public sealed record MolecularDescriptors
{
    public double MolWt { get; init; }
    public double ExactMolWt { get; init; }
    public int HeavyAtoms { get; init; }
    /// <summary>Wildman–Crippen logP.</summary>
    public double LogP { get; init; }
    /// <summary>Wildman–Crippen molar refractivity.</summary>
    public double MolarRefractivity { get; init; }
    public double Tpsa { get; init; }
    public int HBondDonors { get; init; }
    public int HBondAcceptors { get; init; }
    public int RotatableBonds { get; init; }
    public int RotatableBondsStrict { get; init; }
    public int Rings { get; init; }
    public int AromaticRings { get; init; }
    public double FractionCsp3 { get; init; }
    public int FormalCharge { get; init; }
    public int StereoCentres { get; init; }
    /// <summary>Atoms in the graph, explicit hydrogens included.</summary>
    public int Atoms { get; init; }
    public int SpiroAtoms { get; init; }
    public int BridgeheadAtoms { get; init; }
    /// <summary>Assigned or possible chiral centres (<c>FindMolChiralCenters(includeUnassigned=True)</c>).</summary>
    public int ChiralCentres { get; init; }
    /// <summary>Rings of more than 8 atoms.</summary>
    public int Macrocycles { get; init; }

    internal unsafe MolecularDescriptors(double* v)
    {
        MolWt = v[0];
        ExactMolWt = v[1];
        HeavyAtoms = (int)v[2];
        LogP = v[3];
        MolarRefractivity = v[4];
        Tpsa = v[5];
        HBondDonors = (int)v[6];
        HBondAcceptors = (int)v[7];
        RotatableBonds = (int)v[8];
        Rings = (int)v[9];
        AromaticRings = (int)v[10];
        FractionCsp3 = v[11];
        FormalCharge = (int)v[12];
        StereoCentres = (int)v[13];
        RotatableBondsStrict = (int)v[14];
        Atoms = (int)v[15];
        SpiroAtoms = (int)v[16];
        BridgeheadAtoms = (int)v[17];
        ChiralCentres = (int)v[18];
        Macrocycles = (int)v[19];
    }
}
