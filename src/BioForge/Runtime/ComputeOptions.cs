using TorchSharp;

namespace BioForge.Runtime;

/// <summary>Where and how tensors are computed: device, number type, CPU threads.</summary>
public sealed record ComputeOptions(torch.Device Device, torch.ScalarType DType, int Threads)
{
    /// <summary>
    /// Resolves <c>--device</c> (cpu | cuda | cuda:N | auto), <c>--dtype</c> (fp32 | bf16 | fp16 | auto) and
    /// <c>--threads</c> (0 = <c>BIOFORGE_THREADS</c>, then <c>OMP_NUM_THREADS</c>, then the number of cores).
    /// Loads LibTorch and applies the thread count. <paramref name="deviceSetting"/> names where the device was given
    /// (<c>train.device</c> in a run file), for messages.
    /// </summary>
    public static ComputeOptions Resolve(string device, string dtype, int threads, string deviceSetting = "--device")
    {
        TorchRuntime.EnsureLoaded();
        var dev = ParseDevice(device, deviceSetting);
        var type = ParseDType(dtype, dev);
        int n = CpuThreads(threads);
        torch.set_num_threads(n);
        return new ComputeOptions(dev, type, n);
    }

    /// <summary>
    /// "cpu" or "cuda:N" with the index the device resolves to: a bare <c>cuda</c> (index −1 in TorchSharp) is the
    /// current device, which BioForge never changes from 0 in a single-device process.
    /// </summary>
    public static string DeviceLabel(torch.Device device) =>
        device.type == DeviceType.CUDA ? $"cuda:{Math.Max(0, device.index)}" : device.type.ToString().ToLowerInvariant();

    private static torch.Device ParseDevice(string text, string setting)
    {
        string Given(string value) => setting.StartsWith("--", StringComparison.Ordinal) ? $"{setting} {value}" : $"{setting}={value}";
        string s = text.Trim().ToLowerInvariant();
        if (s == "auto") return TorchRuntime.CudaAvailable ? torch.CUDA : torch.CPU;
        if (s == "cpu") return torch.CPU;
        if (s == "cuda" || s.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!TorchRuntime.CudaAvailable)
                throw new BioForgeException($"{Given(text)}: no CUDA device is available to the loaded LibTorch ({TorchRuntime.LibTorchDirectory}); set {TorchRuntime.LibTorchEnvironmentVariable} to a CUDA LibTorch folder, or use {Given("cpu")}");
            if (s == "cuda") return torch.CUDA;
            if (!int.TryParse(s.AsSpan(5), out int index) || index < 0)
                throw new BioForgeException($"{Given(text)}: expected cuda:N with N a device index");
            int count = (int)torch.cuda.device_count();
            if (index >= count)
                throw new BioForgeException($"{Given(text)}: only {count} CUDA device(s) are visible");
            return new torch.Device(DeviceType.CUDA, index);
        }
        throw new BioForgeException($"{Given(text)}: expected cpu, cuda, cuda:N or auto");
    }

    private static torch.ScalarType ParseDType(string text, torch.Device device) => text.Trim().ToLowerInvariant() switch
    {
        "auto" => device.type == DeviceType.CUDA ? torch.ScalarType.BFloat16 : torch.ScalarType.Float32,
        "fp32" or "float32" => torch.ScalarType.Float32,
        "bf16" or "bfloat16" => torch.ScalarType.BFloat16,
        "fp16" or "float16" => torch.ScalarType.Float16,
        _ => throw new BioForgeException($"--dtype {text}: expected fp32, bf16, fp16 or auto"),
    };

    /// <summary>The CPU threads <c>--threads</c> asks for: itself when positive, else <c>BIOFORGE_THREADS</c>, then <c>OMP_NUM_THREADS</c>, then the number of cores.</summary>
    public static int CpuThreads(int requested) => requested > 0 ? requested : ThreadsFromEnvironment();

    private static int ThreadsFromEnvironment()
    {
        foreach (string name in new[] { "BIOFORGE_THREADS", "OMP_NUM_THREADS" })
        {
            string? value = Environment.GetEnvironmentVariable(name);
            if (string.IsNullOrWhiteSpace(value)) continue;
            if (int.TryParse(value, out int n) && n > 0) return n;
            throw new BioForgeException($"{name}={value}: expected a positive whole number of threads");
        }
        return Environment.ProcessorCount;
    }
}
