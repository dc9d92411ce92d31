using System.Numerics;

namespace BioForge.Chem;

/// <summary>Morgan (ECFP/FCFP-like) and atom-pair fingerprints, and Tanimoto similarity on bits, counts and sets.</summary>
public static class Fingerprints
{
    /// <summary>Folded Morgan bits as <paramref name="bits"/>/64 words (bit i is bit i%64 of word i/64).</summary>
    public static unsafe ulong[] Morgan(Molecule molecule, int radius = 2, int bits = 2048, bool chirality = false)
    {
        CheckMorgan(radius, bits);
        var words = new ulong[bits / 64];
        fixed (ulong* p = words)
            RDKitNative.Check(RDKitNative.bf_mol_morgan_bits(molecule.Handle, radius, bits, chirality ? 1 : 0, p), "Morgan fingerprint");
        return words;
    }

    /// <summary>Beyond any fingerprint in use (RDKit's defaults are 2048 bits, radius 2): memory grows with the bits of every molecule indexed.</summary>
    public const int MaxMorganBits = 65536, MaxMorganRadius = 10;

    /// <summary>Refuses a fingerprint shape <see cref="Morgan"/> cannot make; call it before fingerprinting in parallel,
    /// so the message comes once and plain, not once per molecule inside an <see cref="AggregateException"/>.</summary>
    public static void CheckMorgan(int radius, int bits, string radiusName = "fingerprint radius", string bitsName = "fingerprint size")
    {
        if (bits <= 0 || bits % 64 != 0 || bits > MaxMorganBits) throw new BioForgeException($"{bitsName} {bits}: must be a multiple of 64 from 64 to {MaxMorganBits}");
        if (radius is < 0 or > MaxMorganRadius) throw new BioForgeException($"{radiusName} {radius}: must be 0 to {MaxMorganRadius}");
    }

    /// <summary>Unfolded Morgan count fingerprint: environment id → count.</summary>
    public static unsafe Dictionary<uint, uint> MorganCounts(Molecule molecule, int radius = 2, bool chirality = false) =>
        ReadCounts("Morgan counts", (ids, counts, capacity, out n) =>
            RDKitNative.bf_mol_morgan_counts(molecule.Handle, radius, chirality ? 1 : 0, ids, counts, capacity, out n));

    /// <summary>
    /// Unfolded Morgan counts over feature invariants (FCFP), no chirality: RDKit's
    /// <c>GetMorganFingerprint(mol, radius, useFeatures=True)</c>.
    /// </summary>
    public static unsafe Dictionary<uint, uint> FeatureMorganCounts(Molecule molecule, int radius = 2)
    {
        if (radius < 0) throw new BioForgeException($"fingerprint radius {radius}: must be non-negative");
        return ReadCounts("feature Morgan counts", (ids, counts, capacity, out n) =>
            RDKitNative.bf_mol_feature_morgan_counts(molecule.Handle, radius, ids, counts, capacity, out n));
    }

    /// <summary>
    /// Unhashed atom-pair counts over pairs <paramref name="minLength"/>..<paramref name="maxLength"/> bonds apart:
    /// RDKit's <c>rdMolDescriptors.GetAtomPairFingerprint(mol, minLength, maxLength)</c>.
    /// </summary>
    public static unsafe Dictionary<uint, uint> AtomPairCounts(Molecule molecule, int maxLength = 30, int minLength = 1)
    {
        if (minLength < 1 || maxLength < minLength) throw new BioForgeException($"atom pairs: need 1 <= min length ({minLength}) <= max length ({maxLength})");
        return ReadCounts("atom-pair counts", (ids, counts, capacity, out n) =>
            RDKitNative.bf_mol_atom_pair_counts(molecule.Handle, minLength, maxLength, ids, counts, capacity, out n));
    }

    private unsafe delegate int CountsCall(uint* ids, uint* counts, int capacity, out int n);

    private static unsafe Dictionary<uint, uint> ReadCounts(string what, CountsCall call)
    {
        int capacity = 256;
        while (true)
        {
            var ids = new uint[capacity];
            var counts = new uint[capacity];
            int n;
            fixed (uint* pi = ids, pc = counts)
                RDKitNative.Check(call(pi, pc, capacity, out n), what);
            if (n <= capacity)
            {
                var result = new Dictionary<uint, uint>(n);
                for (int i = 0; i < n; i++) result[ids[i]] = counts[i];
                return result;
            }
            capacity = n;
        }
    }

    /// <summary>
    /// Tanimoto on count vectors, Σmin(a, b) / (Σa + Σb − Σmin(a, b)), as RDKit's <c>TanimotoSimilarity</c> on
    /// SparseIntVects (0 when both are empty).
    /// </summary>
    public static double Tanimoto(IReadOnlyDictionary<uint, uint> a, IReadOnlyDictionary<uint, uint> b)
    {
        if (a.Count > b.Count) (a, b) = (b, a);
        double sumA = 0, sumB = 0, both = 0;
        foreach (var (id, count) in a)
        {
            sumA += count;
            if (b.TryGetValue(id, out uint other)) both += Math.Min(count, other);
        }
        foreach (uint count in b.Values) sumB += count;
        double denominator = sumA + sumB - both;
        return Math.Abs(denominator) < 1e-6 ? 0 : both / denominator;
    }

    /// <summary>|a ∩ b| / |a ∪ b| of two sets of set bits (1 when both are empty), as RDKit's on sparse bit vectors.</summary>
    public static double Tanimoto<T>(IReadOnlySet<T> a, IReadOnlySet<T> b)
    {
        if (a.Count > b.Count) (a, b) = (b, a);
        int both = a.Count(b.Contains);
        int either = a.Count + b.Count - both;
        return either == 0 ? 1 : (double)both / either;
    }

    public static int PopCount(ReadOnlySpan<ulong> words)
    {
        int n = 0;
        foreach (ulong w in words) n += BitOperations.PopCount(w);
        return n;
    }

    /// <summary>|a ∧ b| / |a ∨ b|, 1 when both are empty (as RDKit's TanimotoSimilarity on bit vectors, and MOSES).</summary>
    public static double Tanimoto(ReadOnlySpan<ulong> a, ReadOnlySpan<ulong> b)
    {
        if (a.Length != b.Length) throw new ArgumentException("fingerprints differ in length");
        int both = 0, either = 0;
        for (int i = 0; i < a.Length; i++)
        {
            both += BitOperations.PopCount(a[i] & b[i]);
            either += BitOperations.PopCount(a[i] | b[i]);
        }
        return either == 0 ? 1 : (double)both / either;
    }
}
