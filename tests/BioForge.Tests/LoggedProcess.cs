using System.Collections.Concurrent;
using System.Diagnostics;

namespace BioForge.Tests;

/// <summary>A process whose output and error lines are collected as they come, with a wait for a line that starts a certain way.</summary>
internal sealed class LoggedProcess : IDisposable
{
    private readonly ConcurrentQueue<string> lines = new();
    private readonly string awaited;

    public Process Process { get; }

    private LoggedProcess(ProcessStartInfo start, string awaitedPrefix)
    {
        awaited = awaitedPrefix;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        Process = Process.Start(start)!;
        Process.OutputDataReceived += (_, e) => Add(e.Data);
        Process.ErrorDataReceived += (_, e) => Add(e.Data);
        Process.BeginOutputReadLine();
        Process.BeginErrorReadLine();
    }

    /// <summary>Starts <paramref name="start"/>; <see cref="WaitForLine"/> waits for a line starting with <paramref name="awaitedPrefix"/>.</summary>
    public static LoggedProcess Start(ProcessStartInfo start, string awaitedPrefix) => new(start, awaitedPrefix);

    private void Add(string? line)
    {
        if (line is null) return;
        lines.Enqueue(line);
    }

    /// <summary>
    /// Fails the test with the log so far when no line starting with <paramref name="prefix"/> (by default the one
    /// given to <see cref="Start"/>) has come in time (a hang guard, not a speed check).
    /// </summary>
    public void WaitForLine(TimeSpan timeout, string? prefix = null)
    {
        prefix ??= awaited;
        bool seen = SpinWait.SpinUntil(() => lines.Any(line => line.StartsWith(prefix, StringComparison.Ordinal)), timeout);
        Assert.True(seen, $"no line starting '{prefix}' (the process hangs or failed):\n{Log}");
    }

    /// <summary>Sends SIGTERM to <paramref name="pid"/> (this process by default).</summary>
    public void Terminate(int? pid = null)
    {
        using var kill = Process.Start("kill", ["-TERM", (pid ?? Process.Id).ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>Waits for the exit and for the redirected streams to drain; false when it did not exit in time.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (!Process.WaitForExit(timeout)) return false;
        Process.WaitForExit();
        return true;
    }

    public string Log => string.Join("\n", lines);

    public void Dispose()
    {
        if (!Process.HasExited) Process.Kill(entireProcessTree: true);
        Process.Dispose();
    }
}
