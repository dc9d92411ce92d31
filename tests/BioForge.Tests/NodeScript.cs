using System.Diagnostics;

namespace BioForge.Tests;

/// <summary>Runs a script of tests/browser (Hugging Face's JavaScript libraries, the official clients) under node.</summary>
internal static class NodeScript
{
    /// <summary>The lines the script printed; its failure or a minute without finishing fails the test.</summary>
    public static List<string> Lines(string script, string[] arguments)
    {
        var info = new ProcessStartInfo("node", [Path.Combine(Repository.Root, "tests", "browser", script), .. arguments])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var node = Process.Start(info)!;
        var output = node.StandardOutput.ReadToEndAsync();
        string error = node.StandardError.ReadToEnd();
        Assert.True(node.WaitForExit(TimeSpan.FromMinutes(1)), $"{script} did not finish within a minute");
        Assert.True(node.ExitCode == 0, $"{script}: {error}");
        return [.. output.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries)];
    }
}
