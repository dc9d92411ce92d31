using System.Diagnostics;

namespace BioForge.Tests;

/// <summary>Properties of the repository itself that a change can break without touching code.</summary>
public sealed class RepositoryTests
{
    /// <summary>
    /// A GPU session carries the working tree to the device machine, 64 MiB in all with the CLI bundle: the tracked files
    /// stay under 56 MB (shipped weights stored compactly, no data kept twice).
    /// </summary>
    [Fact]
    public void TheTrackedTreeStaysUnder56Megabytes()
    {
        const long limit = 56_000_000;
        var info = new ProcessStartInfo("git", ["-C", Repository.Root, "ls-files", "-z"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var git = Process.Start(info)!;
        string listing = git.StandardOutput.ReadToEnd();
        git.WaitForExit();
        Assert.True(git.ExitCode == 0, $"git ls-files: {git.StandardError.ReadToEnd()}");
        var sizes = listing.Split('\0', StringSplitOptions.RemoveEmptyEntries)
            .Select(f => Path.Combine(Repository.Root, f)).Where(File.Exists)
            .Select(f => (File: f, Bytes: new FileInfo(f).Length)).ToList();
        long total = sizes.Sum(s => s.Bytes);
        Assert.True(total <= limit, $"tracked files take {total:N0} bytes, over {limit:N0}; largest: "
            + string.Join(", ", sizes.OrderByDescending(s => s.Bytes).Take(5).Select(s => $"{Path.GetRelativePath(Repository.Root, s.File)} {s.Bytes:N0}")));
    }
}
