using BioForge.Runtime;

namespace BioForge.Tests;

internal static class TestData
{
    public static string Path(params string[] parts) => System.IO.Path.Combine([AppContext.BaseDirectory, "data", .. parts]);

    public static string EsmTiny => Path("hf", "esm_tiny");

    /// <summary>A fresh empty directory under the system temp folder, removed with the rest of this run's when the test
    /// process exits (checkpoints and models made by tests filled 66 GB of a development machine over a few weeks).</summary>
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
        // What a killed run left behind (its exit handler never ran), once it is a day old: no live run is that old.
        foreach (var stale in new DirectoryInfo(root).EnumerateDirectories().Where(d => d.LastWriteTimeUtc < DateTime.UtcNow.AddDays(-1)))
            TryDelete(stale.FullName);
        string folder = System.IO.Path.Combine(root, $"run-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => TryDelete(folder);
        return folder;
    });

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
