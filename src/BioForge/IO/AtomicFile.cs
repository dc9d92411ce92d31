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

        internal Pending(string path)
        {
            full = Path.GetFullPath(path);
            string directory = Path.GetDirectoryName(full) ?? ".";
            try
            {
                Directory.CreateDirectory(directory);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new BioForgeException($"{path}: cannot create output directory {directory} ({e.Message})");
            }
            temp = Path.Combine(directory, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
            Stream = new FileStream(temp, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 16);
        }

        public void Commit()
        {
            Stream.Flush(flushToDisk: true);
            Stream.Dispose();
            File.Move(temp, full, overwrite: true);
            committed = true;
        }

        public void Dispose()
        {
            if (committed) return;
            Stream.Dispose();
            File.Delete(temp);
        }
    }
}
