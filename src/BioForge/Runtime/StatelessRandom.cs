namespace BioForge.Runtime;

/// <summary>Counter-based random numbers: every draw is a pure function of its coordinates, so runs resume exactly.</summary>
public static class StatelessRandom
{
    /// <summary>SplitMix64 finaliser over a combination of the coordinates.</summary>
    public static ulong Hash(ulong seed, long a, long b = 0, long c = 0)
    {
        ulong z = seed;
        foreach (long x in (ReadOnlySpan<long>)[a, b, c]) z = Mix(z + 0x9E3779B97F4A7C15UL * ((ulong)x + 1));
        return z;
    }

    /// <summary>A double in [0, 1).</summary>
    public static double Unit(ulong seed, long a, long b = 0, long c = 0) => (Hash(seed, a, b, c) >> 11) * (1.0 / (1UL << 53));

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
