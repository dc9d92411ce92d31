using System.Diagnostics;

namespace BioForge.Tests;

/// <summary>Properties of the repository itself that a change can break without touching code.</summary>
public sealed class RepositoryTests
{
    /// <summary>
    /// A GPU session carries the working tree to the device machine, 64 MiB in all with the CLI bundle (~39 MiB), after
    /// <c>scripts/gpu-tree.sh aside</c> has moved out what the GPU script does not read: what stays must fit beside the
    /// bundle. And a clone stays small: shipped weights stored compactly, no data kept twice.
    /// </summary>
    [Fact]
    public void TheTrackedTreeStaysSmallAndWhatTravelsToAGpuFitsBesideTheBundle()
    {
        const long limit = 60_000_000, travelLimit = 24L << 20; // 64 MiB less 40 for the bundle
        var info = new ProcessStartInfo("git", ["-C", Repository.Root, "ls-files", "-z"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var git = Process.Start(info)!;
        string listing = git.StandardOutput.ReadToEnd();
        git.WaitForExit();
        Assert.True(git.ExitCode == 0, $"git ls-files: {git.StandardError.ReadToEnd()}");
        var sizes = listing.Split('\0', StringSplitOptions.RemoveEmptyEntries)
            .Where(f => File.Exists(Path.Combine(Repository.Root, f)))
            .Select(f => (File: f, Bytes: new FileInfo(Path.Combine(Repository.Root, f)).Length)).ToList();
        string Largest(IEnumerable<(string File, long Bytes)> files) =>
            string.Join(", ", files.OrderByDescending(s => s.Bytes).Take(5).Select(s => $"{s.File} {s.Bytes:N0}"));
        long total = sizes.Sum(s => s.Bytes);
        Assert.True(total <= limit, $"tracked files take {total:N0} bytes, over {limit:N0}; largest: {Largest(sizes)}");

        var script = File.ReadAllText(Path.Combine(Repository.Root, "scripts", "gpu-tree.sh"));
        var list = System.Text.RegularExpressions.Regex.Match(script, @"^paths=\(([^)]*)\)", System.Text.RegularExpressions.RegexOptions.Multiline);
        Assert.True(list.Success, "scripts/gpu-tree.sh: no paths=(…) list of what is set aside");
        var aside = list.Groups[1].Value.Split((char[])[' ', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries);
        var travelling = sizes.Where(s => !aside.Any(a => s.File == a || s.File.StartsWith(a + "/", StringComparison.Ordinal))).ToList();
        long travel = travelling.Sum(s => s.Bytes);
        Assert.True(travel <= travelLimit, $"{travel:N0} bytes of tracked files travel to a GPU machine, over {travelLimit:N0}; largest: {Largest(travelling)}");
    }
}
