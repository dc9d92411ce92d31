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
        return QueryFreeBytes("nvidia-smi", ["--query-gpu=memory.free", "--format=csv,noheader,nounits", $"--id={card}"], TimeSpan.FromSeconds(10));
    }

    /// <summary>
    /// Runs <paramref name="program"/> and reads its answer in MiB; null when it is missing, fails, says something else
    /// or does not answer within <paramref name="timeout"/> (a wedged driver can hang <c>nvidia-smi</c>: it is then
    /// killed, and the caller falls back to asking for <c>--kv-cache-mb</c>).
    /// </summary>
    internal static long? QueryFreeBytes(string program, IEnumerable<string> arguments, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(program, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // not installed
        }
        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync(); // drained, so a chatty program cannot block on a full pipe
            if (!process.WaitForExit(timeout))
            {
                process.Kill(entireProcessTree: true);
                return null;
            }
            return process.ExitCode == 0 && FreeMiB(output.GetAwaiter().GetResult()) is { } mib ? mib << 20 : null;
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
