using BioForge.Runtime;

namespace BioForge.Tests;

internal static class TestData
{
    public static string Path(params string[] parts) => System.IO.Path.Combine([AppContext.BaseDirectory, "data", .. parts]);

    public static string EsmTiny => Path("hf", "esm_tiny");

    /// <summary>A fresh empty directory under the system temp folder, in a folder of this test process's that the next
    /// run removes once this process is gone (checkpoints and models made by tests filled 66 GB of a development machine).</summary>
    public static string TempDirectory()
    {
        string dir = System.IO.Path.Combine(RunFolder.Value, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static readonly Lazy<string> RunFolder = new(() =>
    {
        string root = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "bioforge-tests");
        Directory.CreateDirectory(root);
        // Earlier runs' folders whose process is gone (the test host is ended by its runner, so it cannot clean up
        // after itself), and older folders of no run, once a day old.
        foreach (var earlier in new DirectoryInfo(root).EnumerateDirectories())
            if (Owner(earlier.Name) is { } pid ? !Alive(pid) : earlier.LastWriteTimeUtc < DateTime.UtcNow.AddDays(-1))
                TryDelete(earlier.FullName);
        string folder = System.IO.Path.Combine(root, $"run-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        return folder;
    });

    private static int? Owner(string name) =>
        name.Split('-') is ["run", var pid, _] && int.TryParse(pid, out int id) ? id : null;

    private static bool Alive(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false; // no such process
        }
    }

    private static void TryDelete(string folder)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Still in use by a child process, or gone already: left for the next run's sweep.
        }
    }

    /// <summary>LibTorch on the CPU in float32 with two threads, loaded once.</summary>
    public static ComputeOptions Cpu { get; } = ComputeOptions.Resolve("cpu", "fp32", 2);
}

/// <summary>The repository checkout the test binaries were built in (for the shipped models, data and scripts).</summary>
internal static class Repository
{
    public static string Root
    {
        get
        {
            for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
                if (File.Exists(Path.Combine(directory.FullName, "BioForge.sln"))) return directory.FullName;
            throw new InvalidOperationException("the repository root (BioForge.sln) is not above the test binaries");
        }
    }
}
