using System.Collections.Frozen;

namespace BioForge.Tokenizers;

/// <summary>
/// The aromatic atoms of a SMILES prefix and whether their rings can still be kekulized: RDKit gives every aromatic atom
/// that lacks a bond (a <c>c</c>, a pyridine <c>n</c>, an <c>[nH+]</c>) exactly one double bond along its aromatic
/// bonds, and refuses the molecule when no such assignment exists (<c>c1cccc1</c>, <c>c1ccnc1</c>). An atom that can
/// take no more bonds — neither the current atom, nor a branch point on the stack, nor an atom with a ring label open —
/// is sealed: if a sealed atom needs a double bond, some neighbour must still be able to give it one. A prefix whose
/// sealed atoms cannot all be paired can never become a valid molecule, whatever follows; one whose atoms can be is never
/// refused (flexible atoms are free to pair or not), so no valid SMILES is refused.
/// </summary>
internal sealed class AromaticSystems
{
    public enum BondSymbol : byte { Implicit, Single, Aromatic, Double, Triple, Quadruple }

    /// <summary>A token's atom: aromatic or not, element, charge, and its bracket hydrogens (−1: unbracketed, implicit).</summary>
    public readonly record struct AtomFacts(bool Aromatic, int AtomicNumber, int Charge, int Hydrogens);

    private readonly List<AtomFacts> atoms = [];
    private readonly List<int> aromaticBonds = []; // per atom
    private readonly List<int> otherBondOrders = []; // per atom: the summed orders of its non-aromatic bonds
    private readonly List<int> otherBonds = []; // per atom: how many non-aromatic bonds
    private readonly List<List<int>> aromaticNeighbours = [];
    private int aromaticCount;

    public bool Any => aromaticCount > 0;
    public bool IsAromatic(int atom) => atoms[atom].Aromatic;

    public void AddAtom(AtomFacts facts)
    {
        atoms.Add(facts);
        aromaticBonds.Add(0);
        otherBondOrders.Add(0);
        otherBonds.Add(0);
        aromaticNeighbours.Add([]);
        if (facts.Aromatic) aromaticCount++;
    }

    public void RemoveLastAtom()
    {
        if (atoms[^1].Aromatic) aromaticCount--;
        atoms.RemoveAt(atoms.Count - 1);
        aromaticBonds.RemoveAt(aromaticBonds.Count - 1);
        otherBondOrders.RemoveAt(otherBondOrders.Count - 1);
        otherBonds.RemoveAt(otherBonds.Count - 1);
        aromaticNeighbours.RemoveAt(aromaticNeighbours.Count - 1);
    }

    /// <summary>The bond a symbol makes between two atoms: unwritten, it is aromatic between aromatic atoms and single otherwise.</summary>
    public bool IsAromaticBond(int a, int b, BondSymbol symbol) =>
        symbol == BondSymbol.Aromatic || (symbol == BondSymbol.Implicit && atoms[a].Aromatic && atoms[b].Aromatic);

    public void AddBond(int a, int b, BondSymbol symbol) => ChangeBond(a, b, symbol, +1);

    public void RemoveBond(int a, int b, BondSymbol symbol) => ChangeBond(a, b, symbol, -1);

    private void ChangeBond(int a, int b, BondSymbol symbol, int sign)
    {
        if (IsAromaticBond(a, b, symbol))
        {
            aromaticBonds[a] += sign;
            aromaticBonds[b] += sign;
            if (sign > 0)
            {
                aromaticNeighbours[a].Add(b);
                aromaticNeighbours[b].Add(a);
            }
            else
            {
                aromaticNeighbours[a].RemoveAt(aromaticNeighbours[a].LastIndexOf(b));
                aromaticNeighbours[b].RemoveAt(aromaticNeighbours[b].LastIndexOf(a));
            }
            return;
        }
        int order = symbol switch { BondSymbol.Double => 2, BondSymbol.Triple => 3, BondSymbol.Quadruple => 4, _ => 1 };
        otherBondOrders[a] += sign * order;
        otherBondOrders[b] += sign * order;
        otherBonds[a] += sign;
        otherBonds[b] += sign;
    }

    private enum Need : byte { No, Yes, Unknown }

    /// <summary>
    /// Whether the atom, with the bonds it has now, lacks the double bond RDKit's kekulization would give it: its bonds
    /// (aromatic ones counted as single) plus hydrogens fall short of its valence. Elements and charges outside what is
    /// modelled here are Unknown, which never refuses anything. Bonds added later only lower the need; the extra
    /// aromatic and single bonds ask what the need would be with them.
    /// </summary>
    private Need NeedsDoubleBond(int atom, int extraAromatic = 0, int extraSingle = 0)
    {
        var facts = atoms[atom];
        int aromaticBondCount = aromaticBonds[atom] + extraAromatic;
        int otherOrders = otherBondOrders[atom] + extraSingle;
        if (facts.Charge is < -1 or > 1 || !Valences.TryGetValue(facts.AtomicNumber, out int[]? valences)) return Need.Unknown;
        int charge = facts.Charge;
        if (facts.AtomicNumber == 5 || (facts.AtomicNumber == 6 && charge > 0)) charge = -charge; // RDKit's rule for early atoms and carbocations
        int defaultValence = valences[0];
        int halfUnits = 3 * aromaticBondCount + 2 * otherOrders; // aromatic bonds count 1.5 in RDKit's explicit valence
        int hydrogens;
        int explicitValence;
        if (facts.Hydrogens < 0)
        {
            // An unbracketed atom has no charge; its implicit hydrogens fill the default valence.
            explicitValence = ExplicitValence(halfUnits, valences, 0);
            hydrogens = explicitValence <= defaultValence ? defaultValence - explicitValence : 0;
        }
        else
        {
            hydrogens = facts.Hydrogens;
            explicitValence = ExplicitValence(halfUnits + 2 * hydrogens, valences, charge);
        }
        int totalValence = explicitValence + (facts.Hydrogens < 0 ? hydrogens : 0);
        int target = defaultValence + charge;
        for (int i = 1; totalValence > target && i < valences.Length; i++) target = valences[i] + charge;
        int satisfied = aromaticBondCount + otherOrders + hydrogens;
        return satisfied < target ? Need.Yes : Need.No;
    }

    /// <summary>RDKit's explicit valence of an aromatic atom: a sum above the allowed valence is taken down to it when within 1.5.</summary>
    private static int ExplicitValence(int halfUnits, int[] valences, int charge)
    {
        if (halfUnits > 2 * (valences[0] + charge))
        {
            int allowed = valences[0] + charge;
            foreach (int v in valences)
            {
                if (2 * (v + charge) > halfUnits) break;
                allowed = v + charge;
            }
            if (halfUnits - 2 * allowed <= 3) return allowed;
        }
        return (halfUnits + 1) / 2; // x.5 rounds up, as RDKit's round(accum + 0.1)
    }

    /// <summary>RDKit's valence lists (default first) for the aromatic elements modelled.</summary>
    private static readonly FrozenDictionary<int, int[]> Valences = new Dictionary<int, int[]>()
    {
        [5] = [3],
        [6] = [4],
        [7] = [3],
        [8] = [2],
        [15] = [3, 5],
        [16] = [2, 4, 6],
        [34] = [2, 4, 6],
    }.ToFrozenDictionary();

    private const int SearchBudget = 4096;

    /// <summary>
    /// Whether every sealed aromatic atom that needs a double bond can be paired with a distinct aromatic neighbour that
    /// could still take one (flexible atoms may or may not pair), and no sealed aromatic atom has fewer than the two
    /// bonds a ring atom has. A search that runs past its budget answers yes.
    /// </summary>
    public bool CanKekulize(Func<int, bool> isFlexible)
    {
        if (aromaticCount == 0) return true;
        var needed = new List<int>();
        var partner = new bool[atoms.Count];
        for (int atom = 0; atom < atoms.Count; atom++)
        {
            if (!atoms[atom].Aromatic) continue;
            bool flexible = isFlexible(atom);
            int missing = 2 - aromaticBonds[atom] - otherBonds[atom];
            if (!flexible && missing > 0) return false;
            var need = NeedsDoubleBond(atom);
            partner[atom] = need != Need.No && (!flexible || missing <= 0 || CouldStillNeed(atom, missing));
            if (need == Need.Yes && !flexible) needed.Add(atom);
        }
        if (needed.Count == 0) return true;
        var pairedWith = new int[atoms.Count];
        Array.Fill(pairedWith, -1);
        int budget = SearchBudget;
        return Pair(needed, 0, partner, pairedWith, ref budget);
    }

    /// <summary>
    /// <see cref="CanKekulize"/> of a finished molecule (every atom sealed), its aromatic bonds on no ring (given as pairs,
    /// lower atom first) read as single, as RDKit reads them.
    /// </summary>
    public bool CanKekulizeFinished(IReadOnlySet<(int, int)> notOnRing)
    {
        var single = notOnRing.Where(bond => aromaticNeighbours[bond.Item1].Contains(bond.Item2)).ToList();
        foreach (var (a, b) in single)
        {
            ChangeBond(a, b, BondSymbol.Aromatic, -1);
            ChangeBond(a, b, BondSymbol.Single, +1);
        }
        bool ok = CanKekulize(_ => false);
        foreach (var (a, b) in single)
        {
            ChangeBond(a, b, BondSymbol.Single, -1);
            ChangeBond(a, b, BondSymbol.Aromatic, +1);
        }
        return ok;
    }

    /// <summary>Whether a flexible aromatic atom, once it has the ring bonds it lacks (aromatic or single), could still need a double bond.</summary>
    private bool CouldStillNeed(int atom, int missing)
    {
        for (int aromatic = 0; aromatic <= missing; aromatic++)
            if (NeedsDoubleBond(atom, aromatic, missing - aromatic) != Need.No) return true;
        return false;
    }

    private bool Pair(List<int> needed, int index, bool[] partner, int[] pairedWith, ref int budget)
    {
        while (index < needed.Count && pairedWith[needed[index]] >= 0) index++;
        if (index == needed.Count) return true;
        if (--budget < 0) return true;
        int atom = needed[index];
        foreach (int neighbour in aromaticNeighbours[atom])
        {
            if (!partner[neighbour] || pairedWith[neighbour] >= 0) continue;
            pairedWith[atom] = neighbour;
            pairedWith[neighbour] = atom;
            if (Pair(needed, index + 1, partner, pairedWith, ref budget)) return true;
            pairedWith[atom] = -1;
            pairedWith[neighbour] = -1;
        }
        return false;
    }
}
