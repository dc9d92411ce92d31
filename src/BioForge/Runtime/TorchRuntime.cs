using System.Runtime.InteropServices;
using TorchSharp;

namespace BioForge.Runtime;

/// <summary>
/// Loads LibTorch and TorchSharp's native bridge once per process, with errors a user can act on.
/// </summary>
/// <remarks>
/// By default the CPU LibTorch shipped next to the executable is used. <c>BIOFORGE_LIBTORCH=&lt;dir&gt;</c> points at
/// another LibTorch (for example a PyTorch CUDA install's <c>site-packages/torch/lib</c>): its libraries are loaded by
/// full path first, so the dynamic loader binds TorchSharp's bridge to them instead of the bundled CPU build.
/// </remarks>
public static class TorchRuntime
{
    public const string LibTorchEnvironmentVariable = "BIOFORGE_LIBTORCH";
    private const string BridgeLibrary = "libLibTorchSharp.so";
    private static readonly string[] CoreLibraries = ["libc10.so", "libtorch_cpu.so"];
    private static readonly string[] CudaLibraries = ["libc10_cuda.so", "libtorch_cuda.so"];
    private static readonly Lock InitLock = new();
    private static bool initialized;

    /// <summary>Where LibTorch was loaded from, after <see cref="EnsureLoaded"/>.</summary>
    public static string? LibTorchDirectory { get; private set; }

    /// <summary>True when the loaded LibTorch has CUDA support and a device is visible.</summary>
    public static bool CudaAvailable { get; private set; }

    public static void EnsureLoaded()
    {
        lock (InitLock)
        {
            if (initialized) return;
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

    private static bool LoadExternalLibTorch(string directory)
    {
        if (!Directory.Exists(directory))
            throw new BioForgeException($"{LibTorchEnvironmentVariable}={directory}: no such directory");
        foreach (string name in CoreLibraries)
            Load(Path.Combine(directory, name), required: true);
        bool cuda = CudaLibraries.All(name => File.Exists(Path.Combine(directory, name)));
        if (cuda)
            foreach (string name in CudaLibraries) Load(Path.Combine(directory, name), required: true);
        Load(Path.Combine(directory, "libtorch.so"), required: true);
        return cuda;
    }

    private static void LoadBridge()
    {
        string bridge = Path.Combine(AppContext.BaseDirectory, BridgeLibrary);
        if (!File.Exists(bridge))
            throw new BioForgeException($"{BridgeLibrary} is missing from {AppContext.BaseDirectory}: rebuild BioForge (./bioforge rebuilds when needed)");
        Load(bridge, required: true);
    }

    private static void Load(string path, bool required)
    {
        if (!File.Exists(path))
        {
            if (required) throw new BioForgeException($"cannot load LibTorch: {path} does not exist");
            return;
        }
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
}
