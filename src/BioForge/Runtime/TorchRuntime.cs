using System.Runtime.InteropServices;
using TorchSharp;

namespace BioForge.Runtime;

/// <summary>
/// Loads LibTorch and TorchSharp's native bridge once per process, with errors a user can act on.
/// </summary>
/// <remarks>
/// By default the CPU LibTorch shipped next to the executable is used. <c>BIOFORGE_LIBTORCH=&lt;dir&gt;</c> points at
/// another LibTorch (for example a PyTorch CUDA install's <c>site-packages/torch/lib</c>): its libraries are loaded by
/// full path first, so the dynamic loader binds TorchSharp's bridge to them instead of the bundled CPU build. The
/// application folder must then hold no LibTorch of its own: TorchSharp loads <c>torch_cpu</c> by name from its own
/// folder first (a plain <c>NativeLibrary.TryLoad</c>, which no DLL import resolver intercepts), and a second
/// <c>libtorch_cpu.so</c> beside the external <c>libc10.so</c> aborts at start-up or, across versions, misbehaves.
/// </remarks>
public static partial class TorchRuntime
{
    public const string LibTorchEnvironmentVariable = "BIOFORGE_LIBTORCH";
    private const string BridgeLibrary = "libLibTorchSharp.so";
    private static readonly string[] CoreLibraries = ["libc10.so", "libtorch_cpu.so"];
    private static readonly string[] CudaLibraries = ["libc10_cuda.so", "libtorch_cuda.so"];
    private static readonly Lock InitLock = new();
    private static bool initialized;

    /// <summary>The OpenMP wait policy BioForge sets when the environment names none.</summary>
    public const string OpenMpWaitPolicy = "PASSIVE";

    /// <summary>The variable that moves cuDNN's attention behind the flash and memory-efficient kernels in PyTorch's order.</summary>
    public const string CuDnnAttentionVariable = "TORCH_CUDNN_SDPA_DEPRIORITIZED";

    /// <summary>Where LibTorch was loaded from, after <see cref="EnsureLoaded"/>.</summary>
    public static string? LibTorchDirectory { get; private set; }

    /// <summary>True when the loaded LibTorch has CUDA support and a device is visible.</summary>
    public static bool CudaAvailable { get; private set; }

    public static void EnsureLoaded()
    {
        lock (InitLock)
        {
            if (initialized) return;
            PassiveOpenMpWaits();
            DeprioritizeCuDnnAttention();
            string? custom = Environment.GetEnvironmentVariable(LibTorchEnvironmentVariable);
            bool hasCuda = false;
            if (!string.IsNullOrWhiteSpace(custom))
            {
                hasCuda = LoadExternalLibTorch(custom);
                LibTorchDirectory = Path.GetFullPath(custom);
            }
            else
            {
                LibTorchDirectory = AppContext.BaseDirectory;
            }
            LoadBridge();
            try
            {
                torch.InitializeDeviceType(DeviceType.CPU);
                if (hasCuda) CudaAvailable = torch.TryInitializeDeviceType(DeviceType.CUDA) && torch.cuda.is_available();
            }
            catch (Exception e) when (e is not BioForgeException)
            {
                throw new BioForgeException($"TorchSharp could not start LibTorch from {LibTorchDirectory}: {e.Message}", e);
            }
            initialized = true;
        }
    }

    /// <summary>
    /// Seeds LibTorch's default generators on every device: TorchSharp's <c>torch.manual_seed</c> seeds only the CPU
    /// generator, so dropout on a GPU would otherwise draw from an unseeded CUDA generator.
    /// </summary>
    public static void Seed(long seed)
    {
        torch.manual_seed(seed).Dispose(); // a new handle on the default generator, not the generator itself
        if (CudaAvailable) torch.cuda.manual_seed_all(seed);
    }

    /// <summary>
    /// The files mapped into this process whose names start with <paramref name="fileNamePrefix"/> (e.g.
    /// <c>libtorch_cpu.so</c>), read from <c>/proc/self/maps</c>: which copies of a library the loader really holds.
    /// </summary>
    public static IReadOnlyList<string> MappedLibraries(string fileNamePrefix) =>
        File.ReadLines("/proc/self/maps")
            .Select(line => line.IndexOf('/', StringComparison.Ordinal) is int at and >= 0 ? line[at..].Trim() : null)
            .OfType<string>()
            .Where(path => Path.GetFileName(path).StartsWith(fileNamePrefix, StringComparison.Ordinal))
            .Distinct(StringComparer.Ordinal)
            .ToList();

    private static bool LoadExternalLibTorch(string directory)
    {
        if (!Directory.Exists(directory))
            throw new BioForgeException($"{LibTorchEnvironmentVariable}={directory}: no such directory");
        RefuseSecondLibTorch(directory);
        bool cuda = CudaLibraries.All(name => File.Exists(Path.Combine(directory, name)));
        string[] names = cuda ? [.. CoreLibraries, .. CudaLibraries, "libtorch.so"] : [.. CoreLibraries, "libtorch.so"];
        foreach (string name in names) Load(Path.Combine(directory, name));
        return cuda;
    }

    /// <summary>Refuses an application folder whose own libtorch_cpu.so is another file than the external one (a link to it is the same library).</summary>
    private static void RefuseSecondLibTorch(string directory)
    {
        const string library = "libtorch_cpu.so";
        string bundled = Path.Combine(AppContext.BaseDirectory, library), external = Path.Combine(directory, library);
        if (!File.Exists(bundled) || !File.Exists(external)) return;
        static string Real(string path) => File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? Path.GetFullPath(path);
        if (Real(bundled) == Real(external)) return;
        throw new BioForgeException($"{LibTorchEnvironmentVariable}={directory}, but the application folder {AppContext.BaseDirectory} holds its own {library}, "
            + "which TorchSharp would load beside the external one (two LibTorch versions in one process); run ./bioforge, which runs "
            + "a copy without LibTorch when the variable is set, or a publish without LibTorch (scripts/gpu-bundle.sh)");
    }

    private static void LoadBridge()
    {
        string bridge = Path.Combine(AppContext.BaseDirectory, BridgeLibrary);
        if (!File.Exists(bridge))
            throw new BioForgeException($"{BridgeLibrary} is missing from {AppContext.BaseDirectory}: rebuild BioForge (./bioforge rebuilds when needed)");
        Load(bridge);
    }

    private static void Load(string path)
    {
        if (!File.Exists(path)) throw new BioForgeException($"cannot load LibTorch: {path} does not exist");
        try
        {
            NativeLibrary.Load(path);
        }
        catch (DllNotFoundException e)
        {
            string hint = e.Message.Contains("GLIBCXX", StringComparison.Ordinal)
                ? " The C++ runtime (libstdc++) is older than this library needs; BioForge's build rewrites this for libLibTorchSharp.so, so rebuild with ./bioforge, or install a newer libstdc++6."
                : "";
            throw new BioForgeException($"cannot load native library {path}: {LoaderReason(e.Message)}.{hint}", e);
        }
    }

    /// <summary>
    /// .NET wraps the dynamic loader's own words (e.g. "version `GLIBCXX_3.4.32' not found") in generic advice;
    /// keep only the loader's words, on one line.
    /// </summary>
    private static string LoaderReason(string message)
    {
        const string marker = "environment variable:";
        int at = message.IndexOf(marker, StringComparison.Ordinal);
        string reason = at >= 0 ? message[(at + marker.Length)..] : message;
        reason = string.Join(" ", reason.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        return reason.Length > 0 ? reason.TrimEnd('.') : message.Trim();
    }

    /// <summary>
    /// LibTorch's OpenMP (libgomp) workers spin between parallel regions by default. On a machine whose cores other
    /// processes also use, the spinning threads take the CPU the working ones need, and every parallel region waits
    /// for its slowest thread: measured on 2 busy cores, <c>generate</c> took 85 s (median of 3) with 2 spinning
    /// threads, 18 s with 1, 13 s with 2 sleeping ones (docs/benchmarks.md, "Threads"). So waits sleep (<c>OMP_WAIT_POLICY=PASSIVE</c>)
    /// unless the environment says otherwise. libgomp reads the variable when it is loaded.
    /// </summary>
    private static void PassiveOpenMpWaits() => SetUnlessNamed("OMP_WAIT_POLICY", OpenMpWaitPolicy);

    /// <summary>
    /// PyTorch's CUDA LibTorch (2.11 with cuDNN 9.15 or newer, on Hopper and Blackwell) tries cuDNN's attention first.
    /// cuDNN builds and caches an execution plan per attention shape, and decoding changes shape at every step (rows
    /// and cached length): on the H200 a fresh process decoded at 41 ms per step until every shape had been seen once,
    /// then at 4.6 ms (docs/benchmarks.md, "GPU"), and a server meets more shapes than the plan cache keeps. So
    /// cuDNN attention comes after the flash and memory-efficient kernels unless the environment says otherwise
    /// (<c>TORCH_CUDNN_SDPA_DEPRIORITIZED=0</c> restores PyTorch's order). PyTorch reads the variable once, from the C
    /// environment, at the first attention call on a GPU.
    /// </summary>
    private static void DeprioritizeCuDnnAttention() => SetUnlessNamed(CuDnnAttentionVariable, "1");

    /// <summary>The C environment's value of <paramref name="name"/> (what native libraries read; null when unset or off Linux).</summary>
    public static string? NativeEnvironment(string name) => OperatingSystem.IsLinux() ? Marshal.PtrToStringUTF8(GetEnvironment(name)) : null;

    /// <summary>
    /// Sets a variable in the C environment unless the user named it: native libraries read that environment, which
    /// <see cref="Environment.SetEnvironmentVariable(string, string)"/> does not change on Linux.
    /// </summary>
    private static void SetUnlessNamed(string name, string value)
    {
        if (!OperatingSystem.IsLinux() || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(name))) return;
        _ = SetEnvironment(name, value, 1);
    }

    /// <summary>The OMP_WAIT_POLICY of the C environment, which LibTorch's OpenMP read when it loaded (null: libgomp's spinning default).</summary>
    public static string? OpenMpWaits => NativeEnvironment("OMP_WAIT_POLICY");

    /// <summary>
    /// Gives memory the C allocator holds free back to the system (glibc's <c>malloc_trim</c>; a no-op elsewhere).
    /// LibTorch's CPU tensors come from malloc: after a burst of large activations glibc keeps the freed blocks in its
    /// arenas, so a server's resident memory stays at its peak although nothing uses it. Call when idle: it walks the heap.
    /// </summary>
    public static void ReleaseFreedMemory()
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            _ = MallocTrim(0);
        }
        catch (EntryPointNotFoundException)
        {
            // A C library without glibc's malloc_trim (musl): nothing to release this way, and no reason to stop a worker.
        }
    }

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnvironment(string name, string value, int overwrite);

    [LibraryImport("libc", EntryPoint = "getenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr GetEnvironment(string name);
}
