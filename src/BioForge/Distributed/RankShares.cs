using BioForge.IO;

namespace BioForge.Distributed;

/// <summary>
/// Batch jobs under <c>mpirun</c>/<c>srun</c>: each rank takes a contiguous share of the inputs and writes its own file
/// next to the requested one (<c>out.csv</c> → <c>out.rank3.csv</c>); rank 0 then merges the shares, in input order,
/// into the requested file. Without a launcher the single process writes the requested file directly.
/// </summary>
public static class RankShares
{
    public static (long First, long Count) Of(long total, Communicator world)
    {
        long first = total * world.Rank / world.Size;
        return (first, total * (world.Rank + 1) / world.Size - first);
    }

    /// <summary>Where this rank writes: the target itself in a world of one.</summary>
    public static string PartPath(string target, Communicator world) => world.Size == 1 ? target : PartPath(target, world.Rank);

    public static string PartPath(string target, int rank) =>
        Path.Combine(Path.GetDirectoryName(target) ?? "", $"{Path.GetFileNameWithoutExtension(target)}.rank{rank}{Path.GetExtension(target)}");

    /// <summary>
    /// After every rank wrote its part: rank 0 merges them (in rank order) and gets true; other ranks get false. The
    /// barrier has no time limit because shares take different times; a rank that dies is reported by the launcher.
    /// </summary>
    public static bool Merge(Communicator world, string target, Action<IReadOnlyList<string>> merge)
    {
        if (world.Size == 1) return true;
        world.Barrier(Timeout.InfiniteTimeSpan);
        if (world.Rank != 0) return false;
        merge([.. Enumerable.Range(0, world.Size).Select(r => PartPath(target, r))]);
        return true;
    }

    /// <summary>Text files with one header line: the first part whole, the others without their header.</summary>
    public static void ConcatenateWithHeader(IReadOnlyList<string> parts, string target) => AtomicFile.Write(target, stream =>
    {
        using var writer = new StreamWriter(stream, leaveOpen: true);
        for (int i = 0; i < parts.Count; i++)
            foreach (string line in File.ReadLines(parts[i]).Skip(i == 0 ? 0 : 1)) writer.Write(line + "\n");
    });
}
