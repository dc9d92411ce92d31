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
        string folder = Path.Combine(TestData.TempDirectory(), "libtorch-from-env");
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
    public void OpenMpThreadsSleepInsteadOfSpinningUnlessTheEnvironmentSaysOtherwise()
    {
        // Spinning OpenMP workers made `generate` 4-6 times slower on a busy 2-core machine (docs/benchmarks.md, "Threads").
        var (code, output, error) = Exec("dotnet", [CliDll, "env"], new() { ["OMP_WAIT_POLICY"] = "" });
        Assert.True(code == 0, error);
        Assert.Contains("OpenMP waits: PASSIVE", output);
        var active = Exec("dotnet", [CliDll, "env"], new() { ["OMP_WAIT_POLICY"] = "ACTIVE" });
        Assert.Contains("OpenMP waits: ACTIVE", active.Out);
    }

    [Fact]
    public void CuDnnAttentionComesAfterTheFusedKernelsUnlessTheEnvironmentSaysOtherwise()
    {
        // cuDNN plans each attention shape once: decoding on the H200 ran 9x slower until every shape had been seen.
        var (code, output, error) = Exec("dotnet", [CliDll, "env"], new() { [TorchRuntime.CuDnnAttentionVariable] = "" });
        Assert.True(code == 0, error);
        Assert.Contains($"attention:  {TorchRuntime.CuDnnAttentionVariable}=1 ", output);
        var restored = Exec("dotnet", [CliDll, "env"], new() { [TorchRuntime.CuDnnAttentionVariable] = "0" });
        Assert.Contains($"attention:  {TorchRuntime.CuDnnAttentionVariable}=0 ", restored.Out);
    }

    [Fact]
    public void MissingLibTorchFolderIsOneClearError()
    {
        var env = new Dictionary<string, string> { [TorchRuntime.LibTorchEnvironmentVariable] = "/no/such/torch/lib" };
        var (code, _, error) = Exec("dotnet", [CliDll, "env"], env);
        Assert.Equal(2, code);
        Assert.Equal("error: BIOFORGE_LIBTORCH=/no/such/torch/lib: no such directory", error.Trim());
    }

    /// <summary>
    /// A copy of the application folder without the files <paramref name="leaveOut"/> names. Managed files are copied
    /// (the host resolves links to the application's real folder); the large native libraries are linked.
    /// </summary>
    private static string ApplicationCopy(Func<string, bool> leaveOut)
    {
        string folder = Path.Combine(TestData.TempDirectory(), "app");
        Directory.CreateDirectory(folder);
        foreach (string file in Directory.GetFiles(AppContext.BaseDirectory))
        {
            string name = Path.GetFileName(file), target = Path.Combine(folder, name);
            if (leaveOut(name)) continue;
            if (name.Contains(".so", StringComparison.Ordinal)) File.CreateSymbolicLink(target, file);
            else File.Copy(file, target);
        }
        return folder;
    }

    private static bool IsLibTorch(string name) =>
        name.StartsWith("libtorch", StringComparison.Ordinal) || name.StartsWith("libc10", StringComparison.Ordinal) || name.StartsWith("libgomp", StringComparison.Ordinal);

    /// <summary>
    /// The NuGet LibTorch copied (real files, as a PyTorch install's are: links would resolve to the bundled files,
    /// which the loader then counts once) into a folder of its own, once per test run.
    /// </summary>
    private static readonly Lazy<string> LibTorchCopy = new(() =>
    {
        string folder = Path.Combine(TestData.TempDirectory(), "torch-lib");
        Directory.CreateDirectory(folder);
        foreach (string file in Directory.GetFiles(AppContext.BaseDirectory))
        {
            string name = Path.GetFileName(file);
            if (name is "libc10.so" or "libtorch_cpu.so" or "libtorch.so" || name.StartsWith("libgomp", StringComparison.Ordinal))
                File.Copy(file, Path.Combine(folder, name));
        }
        return folder;
    });

    [Fact]
    public void AnExternalLibTorchIsTheOnlyOneMapped()
    {
        string app = ApplicationCopy(IsLibTorch), folder = LibTorchCopy.Value;
        var env = new Dictionary<string, string> { [TorchRuntime.LibTorchEnvironmentVariable] = folder, ["LD_LIBRARY_PATH"] = folder };
        var (code, output, error) = Exec("dotnet", [Path.Combine(app, "BioForge.Cli.dll"), "env"], env);
        Assert.True(code == 0, error);
        string mapped = output.Split('\n').Single(l => l.StartsWith("mapped:", StringComparison.Ordinal))["mapped:".Length..].Trim();
        Assert.Equal(Path.Combine(folder, "libtorch_cpu.so"), mapped);
    }

    [Fact]
    public void AnExternalLibTorchBesideTheBundledOneIsOneClearError()
    {
        // The test binaries' folder holds the NuGet LibTorch, as artifacts/cli does: TorchSharp would map both.
        string folder = LibTorchCopy.Value;
        var env = new Dictionary<string, string> { [TorchRuntime.LibTorchEnvironmentVariable] = folder, ["LD_LIBRARY_PATH"] = folder };
        var (code, _, error) = Exec("dotnet", [CliDll, "env"], env);
        Assert.Equal(2, code);
        Assert.StartsWith($"error: BIOFORGE_LIBTORCH={folder}, but the application folder", error);
        Assert.Contains("holds its own libtorch_cpu.so", error);
        Assert.Single(error.Trim().Split('\n'));
    }

    [Fact]
    public void TheCudaRuntimePyTorchMappedComesBeforeAToolkitsLink()
    {
        const string pytorchs = "/opt/torch/lib/python3.12/site-packages/nvidia/cu13/lib/libcudart.so.13";
        var names = Distributed.CudaRuntime.Candidates(null, [pytorchs]);
        Assert.Equal(pytorchs, names[0]);
        Assert.Equal("libcudart.so", names[^1]);
        Assert.True(names.ToList().IndexOf("libcudart.so.13") < names.ToList().IndexOf("libcudart.so"));
        Assert.Equal(["/x/libcudart.so.12"], Distributed.CudaRuntime.Candidates("/x/libcudart.so.12", [pytorchs]));
    }

    [Fact]
    public void DeviceLabelsNameTheResolvedIndex()
    {
        _ = TestData.Cpu;
        Assert.Equal("cuda:0", ComputeOptions.DeviceLabel(new TorchSharp.torch.Device(TorchSharp.DeviceType.CUDA, -1)));
        Assert.Equal("cuda:3", ComputeOptions.DeviceLabel(new TorchSharp.torch.Device(TorchSharp.DeviceType.CUDA, 3)));
        Assert.Equal("cpu", ComputeOptions.DeviceLabel(TorchSharp.torch.CPU));
    }

    [Fact]
    public void MissingRDKitShimIsOneClearErrorNamingThePackages()
    {
        string folder = ApplicationCopy(name => name == "libbioforge_rdkit.so");
        var (code, _, error) = Exec("dotnet", [Path.Combine(folder, "BioForge.Cli.dll"), "chem", "depict", "--smiles", "CCO", "--out", Path.Combine(folder, "m.svg")]);
        Assert.Equal(2, code);
        Assert.StartsWith("error: the RDKit shim", error);
        Assert.Contains("apt-get install cmake g++ librdkit-dev", error);
        Assert.Single(error.Trim().Split('\n'));
    }

    /// <summary>A decoder's key/value budget on a CUDA card is read from <c>nvidia-smi</c> for the card CUDA calls cuda:N.</summary>
    [Fact]
    public void TheCardOfACudaOrdinalFollowsCudaVisibleDevices()
    {
        Assert.Equal("1", DeviceMemory.CardId(null, 1));
        Assert.Equal("3", DeviceMemory.CardId("2, 3", 1));
        Assert.Equal("GPU-8d1c", DeviceMemory.CardId("GPU-8d1c", 0));
        Assert.Contains("cuda:2 is not among CUDA_VISIBLE_DEVICES=0,1", Assert.Throws<BioForgeException>(() => DeviceMemory.CardId("0,1", 2)).Message);
        Assert.Equal(143156, DeviceMemory.FreeMiB("143156\n"));
        Assert.Null(DeviceMemory.FreeMiB("[N/A]"));
        Assert.Null(DeviceMemory.FreeMiB("1\n2\n"));
        Assert.True(DeviceMemory.AvailableBytes(TorchSharp.torch.CPU) > 0);
    }

    /// <summary>A query program that answers, fails, is missing or hangs: the hanging one is killed at the timeout.</summary>
    [Fact]
    public void AFreeMemoryQueryThatHangsIsKilledAtItsTimeout()
    {
        // Programs that answer get time a loaded machine needs; the hanging one, a short timeout.
        var generous = TimeSpan.FromSeconds(30);
        Assert.Equal(143156L << 20, DeviceMemory.QueryFreeBytes("sh", ["-c", "echo 143156"], generous));
        Assert.Null(DeviceMemory.QueryFreeBytes("sh", ["-c", "echo 5; exit 1"], generous));
        Assert.Null(DeviceMemory.QueryFreeBytes("no-such-program-here", [], generous));
        // Left to finish, the program would answer 1 MiB: null means it was stopped at the timeout.
        Assert.Null(DeviceMemory.QueryFreeBytes("sh", ["-c", "sleep 60; echo 1"], TimeSpan.FromSeconds(1)));
    }
}

/// <summary>
/// Seeding and drawing from LibTorch's default generator, which every test in this process shares: run apart from the
/// tests that initialise weights or sample at the same time (one of those drew between the seed and the draw once).
/// </summary>
[Collection(nameof(TrainerTests))]
public sealed class SeedTests
{
    [Fact]
    public void EverySeedAlsoSeedsTheGpu()
    {
        // torch.manual_seed seeds only the CPU generator in TorchSharp 0.107; TorchRuntime.Seed seeds every device.
        var direct = Directory.EnumerateFiles(Path.Combine(Repository.Root, "src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Where(f => Path.GetFileName(f) != "TorchRuntime.cs" && File.ReadAllText(f).Contains("manual_seed(", StringComparison.Ordinal))
            .Select(f => Path.GetRelativePath(Repository.Root, f));
        Assert.Empty(direct);
        _ = TestData.Cpu;
        // On a machine with a GPU, its generator is the one checked (the CPU's otherwise).
        var device = TorchRuntime.CudaAvailable ? TorchSharp.torch.CUDA : TorchSharp.torch.CPU;
        float Draw(long seed)
        {
            TorchRuntime.Seed(seed);
            using var x = TorchSharp.torch.rand(1, device: device);
            return x.item<float>();
        }
        Assert.Equal(Draw(41), Draw(41));
        Assert.NotEqual(Draw(41), Draw(42));
    }
}
