namespace BioForge.IO;

internal static class FileLength
{
    /// <summary>
    /// The size of the file <paramref name="path"/> names, following symbolic links: <see cref="FileInfo.Length"/> is a
    /// link's own size on Unix, and a Hugging Face cache snapshot is links into its blobs.
    /// </summary>
    public static long Of(string path)
    {
        using var handle = File.OpenHandle(path);
        return RandomAccess.GetLength(handle);
    }
}
