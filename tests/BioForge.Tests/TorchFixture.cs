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
