using System.Diagnostics;
using BioForge.Runtime;

namespace BioForge.Tests;

/// <summary>The LibTorch bridge in the build output loads on this machine's C++ runtime, and overrides are honoured.</summary>
public sealed class NativeRuntimeTests
{
    private static (int Code, string Out, string Err) Exec(string file, string[] args, Dictionary<string, string>? env = null)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? []) start.Environment[k] = v;
        using var process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd(), error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output, error);
    }

    [Fact]
    public void PatchedBridgeResolvesEveryVersionAndSymbol()
    {
        string bridge = Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so");
        var (code, output, error) = Exec("ldd", ["-r", bridge]);
        Assert.Equal(0, code);
        Assert.DoesNotContain("not found", output + error);
        Assert.DoesNotContain("undefined symbol", output + error);
        // The stock library needs GLIBCXX_3.4.32 (GCC 13); the build's copy must need nothing newer than GCC 12's 3.4.30.
        var needed = ElfVersionNeeds.Read(bridge);
        Assert.Contains("GLIBCXX_3.4", needed);
        Assert.DoesNotContain(needed, v => v.StartsWith("GLIBCXX_3.4.3", StringComparison.Ordinal) && v != "GLIBCXX_3.4.30");
    }

    [Fact]
    public void TensorsComputeAfterLoading()
    {
        _ = TestData.Cpu;
        using var x = TorchSharp.torch.ones(2, 3);
        Assert.Equal(6.0f, x.sum().item<float>());
        Assert.NotNull(TorchRuntime.LibTorchDirectory);
    }

    private static string CliDll => Path.Combine(AppContext.BaseDirectory, "BioForge.Cli.dll");

    [Fact]
    public void LibTorchFolderFromEnvironmentIsLoaded()
    {
        // The CPU LibTorch package's own folder stands in for a PyTorch install's torch/lib.
        string folder = Path.Combine(AppContext.BaseDirectory, "libtorch-from-env");
        Directory.CreateDirectory(folder);
        foreach (string lib in Directory.GetFiles(AppContext.BaseDirectory, "lib*.so*"))
        {
            if (lib.Contains("LibTorchSharp", StringComparison.Ordinal)) continue;
            string link = Path.Combine(folder, Path.GetFileName(lib));
            if (!File.Exists(link)) File.CreateSymbolicLink(link, lib);
        }
        var env = new Dictionary<string, string> { [TorchRuntime.LibTorchEnvironmentVariable] = folder, ["LD_LIBRARY_PATH"] = folder };
        var (code, output, error) = Exec("dotnet", [CliDll, "env"], env);
        Assert.True(code == 0, error);
        Assert.Contains($"libtorch:   {folder}", output);
    }

    [Fact]
    public void ThreadCountComesFromTheEnvironment()
    {
        var (code, output, error) = Exec("dotnet", [CliDll, "env"], new() { ["BIOFORGE_THREADS"] = "1" });
        Assert.True(code == 0, error);
        Assert.Contains("threads:    1 ", output);
        var bad = Exec("dotnet", [CliDll, "env"], new() { ["BIOFORGE_THREADS"] = "many" });
        Assert.Equal(2, bad.Code);
        Assert.Contains("BIOFORGE_THREADS=many: expected a positive whole number", bad.Err);
    }

    [Fact]
    public void MissingLibTorchFolderIsOneClearError()
    {
        var env = new Dictionary<string, string> { [TorchRuntime.LibTorchEnvironmentVariable] = "/no/such/torch/lib" };
        var (code, _, error) = Exec("dotnet", [CliDll, "env"], env);
        Assert.Equal(2, code);
        Assert.Equal("error: BIOFORGE_LIBTORCH=/no/such/torch/lib: no such directory", error.Trim());
    }

    [Fact]
    public void MissingRDKitShimIsOneClearErrorNamingThePackages()
    {
        // A copy of the application folder without the shim. Managed files are copied (the host resolves links to
        // the application's real folder); the large native libraries are linked.
        string folder = Path.Combine(TestData.TempDirectory(), "app");
        Directory.CreateDirectory(folder);
        foreach (string file in Directory.GetFiles(AppContext.BaseDirectory))
        {
            string name = Path.GetFileName(file), target = Path.Combine(folder, name);
            if (name == "libbioforge_rdkit.so") continue;
            if (name.Contains(".so", StringComparison.Ordinal)) File.CreateSymbolicLink(target, file);
            else File.Copy(file, target);
        }
        var (code, _, error) = Exec("dotnet", [Path.Combine(folder, "BioForge.Cli.dll"), "chem", "depict", "--smiles", "CCO", "--out", Path.Combine(folder, "m.svg")]);
        Assert.Equal(2, code);
        Assert.StartsWith("error: the RDKit shim", error);
        Assert.Contains("apt-get install cmake g++ librdkit-dev", error);
        Assert.Single(error.Trim().Split('\n'));
    }
}
