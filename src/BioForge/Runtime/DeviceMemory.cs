using System.Diagnostics;
using System.Globalization;
using TorchSharp;

namespace BioForge.Runtime;

/// <summary>
/// Memory a device has for budgets set from what is there (the decoders' key/value caches): on the CPU what the
/// process may use; on a CUDA card its free memory, as <c>nvidia-smi</c> reports it (LibTorch's C API, which TorchSharp
/// wraps, has no memory query).
/// </summary>
public static class DeviceMemory
{
    /// <summary>Bytes available on <paramref name="device"/>; null when a CUDA card's cannot be read (no <c>nvidia-smi</c>).</summary>
    public static long? AvailableBytes(torch.Device device)
    {
        if (device.type != DeviceType.CUDA) return GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        string card = CardId(Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES"), Math.Max(0, device.index));
        try
        {
            var start = new ProcessStartInfo("nvidia-smi", ["--query-gpu=memory.free", "--format=csv,noheader,nounits", $"--id={card}"])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            using var process = Process.Start(start)!;
            string output = process.StandardOutput.ReadToEnd();
            if (!process.WaitForExit(10_000) || process.ExitCode != 0) return null;
            return FreeMiB(output) is { } mib ? mib << 20 : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // not installed
        }
    }

    /// <summary>
    /// The card that CUDA's device <paramref name="ordinal"/> is, as <c>nvidia-smi --id</c> takes it: the ordinal-th
    /// entry of <c>CUDA_VISIBLE_DEVICES</c> (an index or a UUID) when it is set, else the ordinal itself.
    /// </summary>
    public static string CardId(string? visibleDevices, int ordinal)
    {
        if (string.IsNullOrWhiteSpace(visibleDevices)) return ordinal.ToString(CultureInfo.InvariantCulture);
        var cards = visibleDevices.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        return ordinal < cards.Length ? cards[ordinal] : throw new BioForgeException($"cuda:{ordinal} is not among CUDA_VISIBLE_DEVICES={visibleDevices}");
    }

    /// <summary><c>nvidia-smi</c>'s one-line answer in MiB ("143156"), or null for anything else.</summary>
    public static long? FreeMiB(string output) =>
        long.TryParse(output.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long mib) ? mib : null;
}
