using System.Numerics;

namespace BioForge.Chem;

/// <summary>Morgan (ECFP-like) fingerprints and Tanimoto similarity on 64-bit words.</summary>
public static class Fingerprints
{
    /// <summary>Folded Morgan bits as <paramref name="bits"/>/64 words (bit i is bit i%64 of word i/64).</summary>
    public static unsafe ulong[] Morgan(Molecule molecule, int radius = 2, int bits = 2048, bool chirality = false)
    {
        if (bits <= 0 || bits % 64 != 0) throw new BioForgeException($"fingerprint size {bits}: must be a positive multiple of 64");
        if (radius < 0) throw new BioForgeException($"fingerprint radius {radius}: must be non-negative");
        var words = new ulong[bits / 64];
        fixed (ulong* p = words)
            RDKitNative.Check(RDKitNative.bf_mol_morgan_bits(molecule.Handle, radius, bits, chirality ? 1 : 0, p), "Morgan fingerprint");
        return words;
    }

    /// <summary>Unfolded Morgan count fingerprint: environment id → count.</summary>
    public static unsafe Dictionary<uint, uint> MorganCounts(Molecule molecule, int radius = 2, bool chirality = false)
    {
        int capacity = 256;
        while (true)
        {
            var ids = new uint[capacity];
            var counts = new uint[capacity];
            int n;
            fixed (uint* pi = ids, pc = counts)
                RDKitNative.Check(RDKitNative.bf_mol_morgan_counts(molecule.Handle, radius, chirality ? 1 : 0, pi, pc, capacity, out n), "Morgan counts");
            if (n <= capacity)
            {
                var result = new Dictionary<uint, uint>(n);
                for (int i = 0; i < n; i++) result[ids[i]] = counts[i];
                return result;
            }
            capacity = n;
        }
    }

    public static int PopCount(ReadOnlySpan<ulong> words)
    {
        int n = 0;
        foreach (ulong w in words) n += BitOperations.PopCount(w);
        return n;
    }

    /// <summary>|a ∧ b| / |a ∨ b|; <paramref name="bothEmpty"/> when both are empty (0 in RDKit, 1 in MOSES).</summary>
    public static double Tanimoto(ReadOnlySpan<ulong> a, ReadOnlySpan<ulong> b, double bothEmpty = 0)
    {
        if (a.Length != b.Length) throw new ArgumentException("fingerprints differ in length");
        int both = 0, either = 0;
        for (int i = 0; i < a.Length; i++)
        {
            both += BitOperations.PopCount(a[i] & b[i]);
            either += BitOperations.PopCount(a[i] | b[i]);
        }
        return either == 0 ? bothEmpty : (double)both / either;
    }
}
