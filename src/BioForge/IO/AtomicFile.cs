namespace BioForge.IO;

/// <summary>Writes a file so that it appears under its final name complete or not at all.</summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        using var pending = Begin(path);
        write(pending.Stream);
        pending.Commit();
    }

    public static void WriteText(string path, string text) =>
        Write(path, stream => { using var w = new StreamWriter(stream, leaveOpen: true); w.Write(text); });

    /// <summary>Opens a temporary file next to <paramref name="path"/>; <see cref="Pending.Commit"/> renames it into place.</summary>
    public static Pending Begin(string path) => new(path);

    public sealed class Pending : IDisposable
    {
        private readonly string full;
        private readonly string temp;
        private bool committed;

        public FileStream Stream { get; }

        /// <summary>The topmost directory this write created, removed again when it ends without a commit.</summary>
        private readonly string? created;

        internal Pending(string path)
        {
            full = Path.GetFullPath(path);
            string directory = Path.GetDirectoryName(full) ?? ".";
            created = FirstMissing(directory);
            temp = Path.Combine(directory, $".{Path.GetFileName(full)}.{Owner}.tmp");
            // Registered before anything exists: a signal from here on finds it to remove, and once the process
            // abandons its writes, none begins (not even by making again a folder the abandoning removed).
            UnfinishedWrites.Add(this, temp, created);
            try
            {
                Directory.CreateDirectory(directory);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                UnfinishedWrites.Remove(this);
                throw new BioForgeException($"{path}: cannot create output directory {directory} ({Reason(e, directory)})");
            }
            RemoveAbandoned(directory, Path.GetFileName(full));
            try
            {
                Stream = new FileStream(temp, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 16);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                RemoveCreated();
                UnfinishedWrites.Remove(this);
                throw new BioForgeException($"{path}: cannot write here ({Reason(e, temp)})");
            }
        }

        public void Commit()
        {
            Stream.Flush(flushToDisk: true);
            Stream.Dispose();
            UnfinishedWrites.Finish(this, () => File.Move(temp, full, overwrite: true));
            committed = true;
        }

        public void Dispose()
        {
            if (committed) return;
            try
            {
                Stream.Dispose(); // flushes its buffer: on a full disk that throws again
            }
            catch (IOException)
            {
                // The write already failed and its exception is on its way; this file is abandoned either way.
            }
            finally
            {
                File.Delete(temp);
                RemoveCreated();
                UnfinishedWrites.Remove(this);
            }
        }

        /// <summary>
        /// The temporary files of earlier writes of this file whose process is gone (killed mid-write: SIGKILL leaves no
        /// chance to delete them, and the next write is the first to know they are debris). Another live process's are
        /// its own.
        /// </summary>
        private static void RemoveAbandoned(string directory, string name)
        {
            try
            {
                foreach (string file in Directory.EnumerateFiles(directory, $".{name}.*.tmp"))
                {
                    string owner = Path.GetFileName(file)[(name.Length + 2)..^".tmp".Length];
                    int dash = owner.LastIndexOf('-');
                    // Another machine's process (a folder shared between cluster nodes) cannot be looked up from here; a
                    // name with no host is from a version that wrote only the process id, taken as this machine's.
                    if (dash >= 0 && owner[..dash] != Environment.MachineName) continue;
                    if (int.TryParse(owner[(dash + 1)..], out int pid) && pid != Environment.ProcessId && !Running(pid)) File.Delete(file);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Debris it cannot list or remove stays; the write itself goes on.
            }
        }

        /// <summary>
        /// Who writes a temporary file: host and process, as ranks on several nodes of a cluster share output folders and
        /// their process ids repeat between nodes.
        /// </summary>
        internal static string Owner => $"{Environment.MachineName}-{Environment.ProcessId}";

        private static bool Running(int pid)
        {
            try
            {
                using var process = System.Diagnostics.Process.GetProcessById(pid);
                return !process.HasExited;
            }
            catch (ArgumentException)
            {
                return false;
            }
        }

        /// <summary>The folders this write made, innermost first and only while empty: a failed run leaves no empty output folders behind.</summary>
        private void RemoveCreated()
        {
            if (created is not null) UnfinishedWrites.RemoveEmptyFolders(Path.GetDirectoryName(full)!, created);
        }
    }

    /// <summary>
    /// Why <paramref name="path"/> cannot be written, or null: probes the nearest existing folder on the way with a
    /// file created and deleted at once (permissions alone do not tell; /proc refuses even root), creating nothing.
    /// </summary>
    public static string? WhyNotWritable(string path)
    {
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full) && !full.EndsWith('/')) return null; // a directory output (a run, a checkpoint): its writer checks
        string? directory = Path.GetDirectoryName(full);
        while (directory is not null && !Directory.Exists(directory))
        {
            if (File.Exists(directory)) return $"{directory} is a file, not a folder";
            directory = Path.GetDirectoryName(directory);
        }
        if (directory is null) return null;
        // Unique per call, not per process: threads of one process probe one folder at once (bench pmo --parallel opens
        // its runs side by side), and a probe file is opened exclusively.
        string probe = Path.Combine(directory, $".bioforge-write-probe.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (File.Create(probe, 1, FileOptions.DeleteOnClose)) { }
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"cannot write in {directory} ({Reason(e, probe)})";
        }
    }

    /// <summary>The topmost folder of <paramref name="directory"/>'s path that does not exist yet (null: it exists).</summary>
    internal static string? FirstMissing(string directory)
    {
        string? missing = null;
        for (string? d = directory; d is not null && !Directory.Exists(d); d = Path.GetDirectoryName(d)) missing = d;
        return missing;
    }

    /// <summary>The system's reason without the temporary file's name, which means nothing to the user.</summary>
    private static string Reason(Exception e, string internalPath) => e switch
    {
        UnauthorizedAccessException => "permission denied",
        FileNotFoundException or DirectoryNotFoundException => "the file system creates no files there",
        _ => e.Message.Replace($"'{internalPath}'", "", StringComparison.Ordinal).Replace(internalPath, "", StringComparison.Ordinal).Replace(" : ", " ", StringComparison.Ordinal).Trim().TrimEnd('.', ' '),
    };
}
