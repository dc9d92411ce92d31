using System.Globalization;

namespace BioForge.Chem;

/// <summary>Topological descriptors that RDKit computes only in its Python layer (<c>rdkit.Chem.GraphDescriptors</c>).</summary>
internal static class GraphDescriptors
{
    /// <summary>
    /// Bertz's complexity index CT (J. Am. Chem. Soc. 103, 3599, 1981) as RDKit's <c>BertzCT(mol)</c> (version 2.0.0):
    /// the information content of the atom types plus that of the "connections" (pairs of bonds sharing an atom,
    /// weighted by bond orders, aromatic 1.5), with atoms of equal bond-order-weighted distance profiles (rounded to
    /// 4 decimals, first <paramref name="cutoff"/> sorted distances) treated as one symmetry class.
    /// </summary>
    public static double BertzCT(Molecule molecule, int cutoff = 100)
    {
        var atoms = molecule.Atoms();
        int n = atoms.Count;
        if (n < 2) return 0;

        var order = new Dictionary<(int, int), double>();
        var neighbours = new SortedSet<int>[n];
        for (int i = 0; i < n; i++) neighbours[i] = [];
        foreach (var bond in molecule.Bonds())
        {
            int a = Math.Min(bond.Begin, bond.End), b = Math.Max(bond.Begin, bond.End);
            order[(a, b)] = bond.Aromatic ? 1.5 : bond.Type;
            neighbours[a].Add(b);
            neighbours[b].Add(a);
        }

        int[] classes = SymmetryClasses(molecule.DistanceMatrix(bondOrder: true), n, cutoff);

        // RDKit sums both dictionaries in insertion order; keeping that order keeps the last bits of the sums equal.
        var atomTypes = new Dictionary<int, double>();
        var connections = new Dictionary<(int, int, int), double>();
        var connectionOrder = new List<(int, int, int)>();
        void Connect((int, int, int) key, double count)
        {
            if (!connections.TryGetValue(key, out double sum)) connectionOrder.Add(key);
            connections[key] = sum + count;
        }
        var atomTypeOrder = new List<int>();
        for (int atom = 0; atom < n; atom++)
        {
            int element = atoms[atom].AtomicNumber;
            if (!atomTypes.TryGetValue(element, out double seen)) atomTypeOrder.Add(element);
            atomTypes[element] = seen + 1;

            int hinge = classes[atom];
            int[] around = [.. neighbours[atom]];
            for (int i = 0; i < around.Length; i++)
            {
                int ni = around[i];
                double orderI = order[(Math.Min(atom, ni), Math.Max(atom, ni))];
                // A multiple bond is a connection with itself: order·(order − 1)/2 of them, counted from its lower atom.
                // Two-class keys carry 0 as third element, which no class number (from 1) can be.
                if (orderI > 1 && ni > atom) Connect((Math.Min(hinge, classes[ni]), Math.Max(hinge, classes[ni]), 0), orderI * (orderI - 1) / 2);
                for (int j = i + 1; j < around.Length; j++)
                {
                    int nj = around[j];
                    double orderJ = order[(Math.Min(atom, nj), Math.Max(atom, nj))];
                    Connect((Math.Min(classes[ni], classes[nj]), hinge, Math.Max(classes[ni], classes[nj])), orderI * orderJ);
                }
            }
        }

        double[] connectionCounts = connectionOrder.Count == 0 ? [1] : [.. connectionOrder.Select(k => connections[k])];
        double total = connectionCounts.Sum();
        double connectionInformation = total * (InfoEntropy(connectionCounts) + Math.Log(total) / Math.Log(2));
        double atomTypeInformation = n * InfoEntropy([.. atomTypeOrder.Select(e => atomTypes[e])]);
        return atomTypeInformation + connectionInformation;
    }

    // Atoms whose sorted rows of the bond-order distance matrix print alike to 4 decimals share a class (numbered from 1
    // in order of first appearance), as RDKit's _AssignSymmetryClasses.
    private static int[] SymmetryClasses(double[,] distances, int n, int cutoff)
    {
        var seen = new Dictionary<string, int>();
        var classes = new int[n];
        var row = new double[n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++) row[j] = distances[i, j];
            Array.Sort(row);
            string key = string.Join(" ", row.Take(cutoff).Select(x => x.ToString("F4", CultureInfo.InvariantCulture)));
            if (!seen.TryGetValue(key, out int index)) seen[key] = index = seen.Count;
            classes[i] = index + 1;
        }
        return classes;
    }

    /// <summary>Shannon entropy in bits of the distribution proportional to <paramref name="counts"/> (RDKit's InfoEntropy).</summary>
    private static double InfoEntropy(double[] counts)
    {
        double total = counts.Sum();
        if (total == 0) return 0;
        double accumulated = 0;
        foreach (double count in counts)
        {
            double p = count / total;
            if (p != 0) accumulated += -p * Math.Log(p);
        }
        return accumulated / Math.Log(2);
    }
}
