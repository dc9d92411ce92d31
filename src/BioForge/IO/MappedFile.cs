using System.IO.MemoryMappedFiles;

namespace BioForge.IO;

/// <summary>
/// A whole file mapped read-only, with a pointer to its first byte held for the mapping's lifetime: readers index into
/// it without copying the file into memory (safetensors weights, token stores).
/// </summary>
internal sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile map;
    private readonly MemoryMappedViewAccessor view;

    /// <summary>Maps <paramref name="path"/>, which must not be empty (an empty file cannot be mapped).</summary>
    public MappedFile(string path)
    {
        map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            Start = p + view.PointerOffset;
        }
        catch
        {
            view?.Dispose();
            map.Dispose();
            throw;
        }
    }

    /// <summary>The file's first byte.</summary>
    public byte* Start { get; }

    public void Dispose()
    {
        view.SafeMemoryMappedViewHandle.ReleasePointer();
        view.Dispose();
        map.Dispose();
    }
}
