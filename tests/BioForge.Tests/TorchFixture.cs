using BioForge.Runtime;

namespace BioForge.Tests;

internal static class TestData
{
    public static string Path(params string[] parts) => System.IO.Path.Combine([AppContext.BaseDirectory, "data", .. parts]);

    public static string EsmTiny => Path("hf", "esm_tiny");

    /// <summary>A fresh empty directory under the system temp folder.</summary>
    public static string TempDirectory()
    {
        string dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "bioforge-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
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
