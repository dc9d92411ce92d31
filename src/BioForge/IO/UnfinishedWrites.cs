using System.Collections.Concurrent;

namespace BioForge.IO;

/// <summary>
/// The writes this process has begun and not finished: a hidden temporary file or folder each, and the topmost folder
/// made for it. Process-wide because what ends such writes early is: a signal ends the whole process, with no
/// unwinding to run their own cleanup.
/// </summary>
public static class UnfinishedWrites
{
    private static readonly ConcurrentDictionary<object, (string Temp, string? Created)> Writes = new();

    /// <summary>Orders finishing a write against abandoning them all: a write is renamed into place whole, or never.</summary>
    private static readonly Lock Gate = new();

    private static bool abandoned;

    /// <summary>
    /// Registers <paramref name="write"/>, whose temporary <paramref name="temp"/> lies inside <paramref name="created"/>
    /// when not null. Once the writes are abandoned the calling thread waits for the end of the process instead.
    /// </summary>
    internal static void Add(object write, string temp, string? created)
    {
        lock (Gate)
            if (!abandoned)
            {
                Writes[write] = (temp, created);
                return;
            }
        Thread.Sleep(Timeout.Infinite);
    }

    /// <summary>
    /// Finishes <paramref name="write"/> by <paramref name="rename"/> (its temporary into place), unless the writes are
    /// being abandoned: then the calling thread waits for the end of the process, and the write never appears.
    /// </summary>
    internal static void Finish(object write, Action rename)
    {
        lock (Gate)
            if (!abandoned)
            {
                rename();
                Writes.TryRemove(write, out _);
                return;
            }
        Thread.Sleep(Timeout.Infinite);
    }

    internal static void Remove(object write) => Writes.TryRemove(write, out _);

    /// <summary>
    /// Removes every unfinished write's temporary file or folder, then the folders made for them while empty: for a
    /// handler of Ctrl+C or SIGTERM about to end the process. What they were writing is abandoned, and from now on no
    /// write of this process begins or finishes (their threads wait for the end).
    /// </summary>
    public static void Abandon()
    {
        List<(string Temp, string? Created)> writes;
        lock (Gate)
        {
            abandoned = true;
            writes = [.. Writes.Values];
        }
        // Every temporary first: a folder goes only when empty, and the write that made it may share it with others.
        foreach (var (temp, _) in writes)
            Try(() =>
            {
                if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
                else File.Delete(temp);
            });
        foreach (var (temp, created) in writes)
            if (created is not null) Try(() => RemoveEmptyFolders(Path.GetDirectoryName(temp)!, created));
    }

    /// <summary><paramref name="innermost"/> and its parents up to <paramref name="topmost"/>, innermost first, each while empty.</summary>
    internal static void RemoveEmptyFolders(string innermost, string topmost)
    {
        for (string? d = innermost; d is not null && d.Length >= topmost.Length; d = Path.GetDirectoryName(d))
        {
            if (!Directory.Exists(d) || Directory.EnumerateFileSystemEntries(d).Any()) return;
            Directory.Delete(d);
        }
    }

    private static void Try(Action remove)
    {
        try
        {
            remove();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left as debris for the next write of that name, as a killed process leaves it.
        }
    }
}
