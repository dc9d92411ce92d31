using System.Security.Cryptography;

namespace BioForge.Server;

/// <summary>The seed of a request that gave none (each call its own draws), sent back in the answer to repeat it.</summary>
internal static class RequestSeed
{
    /// <summary>Random, below 2⁵³: the answer's seed must survive JavaScript's numbers (JSON.parse rounds larger ones) to be sent back.</summary>
    public static long Fresh() => (long)(BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)) >> 11);
}
