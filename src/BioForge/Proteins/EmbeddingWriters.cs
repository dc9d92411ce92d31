using System.Globalization;
using System.Text;
using System.Text.Json;
using BioForge.IO;

namespace BioForge.Proteins;

/// <summary>Receives embeddings in input order; the output file appears only after <see cref="Complete"/>.</summary>
internal interface IEmbeddingWriter : IDisposable
{
    void Write(Embedding embedding);
    void Complete();
}

public static class EmbeddingWriters
{
    /// <summary>Picks the format from the extension: .csv, .npy or .safetensors.</summary>
    internal static IEmbeddingWriter Create(string path, Pooling pooling, IReadOnlyDictionary<string, string> metadata)
    {
        string ext = Path.GetExtension(path).ToLowerInvariant();
        return ext switch
        {
            ".csv" => new CsvEmbeddingWriter(path, pooling),
            ".npy" when pooling == Pooling.None => throw new BioForgeException($"{path}: per-residue embeddings (--pool none) have a different length per record; write .safetensors or .csv instead of .npy"),
            ".npy" => new NpyEmbeddingWriter(path),
            ".safetensors" => new SafetensorsEmbeddingWriter(path, pooling, metadata),
            _ => throw new BioForgeException($"--out {path}: unknown output format '{ext}' (use .csv, .npy or .safetensors)"),
        };
    }

    /// <summary>The file written beside an output at <paramref name="path"/>, if its format has one: an .npy's record ids.</summary>
    public static string? Companion(string path) =>
        path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase) ? NpyEmbeddingWriter.IdsPath(path) : null;
}

/// <summary>id, dim_0 … dim_{D-1}; with --pool none one row per residue: id, position (1-based), residue, dims.</summary>
internal sealed class CsvEmbeddingWriter(string path, Pooling pooling) : IEmbeddingWriter
{
    private readonly AtomicFile.Pending file = AtomicFile.Begin(path);
    private StreamWriter? writer;

    public void Write(Embedding e)
    {
        if (writer is null)
        {
            writer = new StreamWriter(file.Stream, new UTF8Encoding(false), 1 << 16, leaveOpen: true);
            writer.Write(pooling == Pooling.None ? "id,position,residue" : "id");
            for (int d = 0; d < e.Columns; d++) writer.Write($",dim_{d}");
            writer.Write('\n');
        }
        var line = new StringBuilder();
        for (int r = 0; r < e.Rows; r++)
        {
            line.Clear().Append(Csv.Quote(e.Record.Id));
            if (pooling == Pooling.None) line.Append(',').Append(e.Offset + r + 1).Append(',').Append(Csv.Quote(e.Record.Sequence[e.Offset + r].ToString()));
            for (int d = 0; d < e.Columns; d++) line.Append(',').Append(e.Values[r * e.Columns + d].ToString("R", CultureInfo.InvariantCulture));
            writer.Write(line.Append('\n'));
        }
    }

    public void Complete()
    {
        writer?.Dispose();
        writer = null;
        file.Commit();
    }

    public void Dispose()
    {
        writer?.Dispose();
        file.Dispose();
    }
}

/// <summary>
/// A float32 matrix [records, hidden] in NumPy's .npy format (version 1.0, C order), and the record ids one per line
/// in row order beside it (<c>emb.npy</c> → <c>emb.ids.txt</c>), since .npy holds numbers only.
/// </summary>
internal sealed class NpyEmbeddingWriter : IEmbeddingWriter
{
    private const int HeaderBytes = 128; // room for any realistic shape; rewritten with the final row count
    private readonly AtomicFile.Pending file;
    private readonly AtomicFile.Pending idsFile;
    private StreamWriter? ids;
    private long rows;
    private int columns = -1;

    public NpyEmbeddingWriter(string path)
    {
        file = AtomicFile.Begin(path);
        try
        {
            idsFile = AtomicFile.Begin(IdsPath(path));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The ids file of an .npy file: same folder and stem, <c>.ids.txt</c>.</summary>
    public static string IdsPath(string npyPath) => Path.ChangeExtension(npyPath, ".ids.txt");

    public void Write(Embedding e)
    {
        if (columns < 0)
        {
            columns = e.Columns;
            file.Stream.Write(new byte[HeaderBytes]);
        }
        file.Stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(e.Values.AsSpan()));
        ids ??= new StreamWriter(idsFile.Stream, new UTF8Encoding(false), 1 << 16, leaveOpen: true);
        ids.Write(e.Record.Id.Replace('\n', ' ') + "\n");
        rows++;
    }

    public void Complete()
    {
        if (columns < 0) file.Stream.Write(new byte[HeaderBytes]);
        file.Stream.Position = 0;
        file.Stream.Write(Header(rows, Math.Max(columns, 0)));
        ids?.Dispose();
        ids = null;
        idsFile.Commit();
        file.Commit();
    }

    internal static byte[] Header(long rows, int columns)
    {
        string dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {columns}), }}";
        var header = new byte[HeaderBytes];
        byte[] magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0];
        magic.CopyTo(header, 0);
        BitConverter.GetBytes((ushort)(HeaderBytes - 10)).CopyTo(header, 8);
        var text = Encoding.ASCII.GetBytes(dict.PadRight(HeaderBytes - 10 - 1) + "\n");
        text.CopyTo(header, 10);
        return header;
    }

    public void Dispose()
    {
        ids?.Dispose();
        idsFile.Dispose();
        file.Dispose();
    }
}

/// <summary>
/// Pooled: one F32 tensor "embeddings" [records, hidden] with the record ids in the metadata ("ids", a JSON list).
/// Per-residue: one F32 tensor per record id, [residues, hidden], and the ids in input order in the metadata too
/// (safetensors libraries list tensors sorted by name).
/// </summary>
internal sealed class SafetensorsEmbeddingWriter : IEmbeddingWriter
{
    private readonly Pooling pooling;
    private readonly Dictionary<string, string> metadata;
    private readonly AtomicFile.Pending file;
    private readonly FileStream scratch;
    private readonly List<(string Id, long Rows, int Columns)> entries = [];
    private readonly HashSet<string> ids = new(StringComparer.Ordinal);

    public SafetensorsEmbeddingWriter(string path, Pooling pooling, IReadOnlyDictionary<string, string> metadata)
    {
        this.pooling = pooling;
        this.metadata = new Dictionary<string, string>(metadata);
        // The header comes first and is known last: the tensors gather in a scratch file beside the output (its
        // space, not /tmp's), unlinked at once so that no end of the process leaves it behind.
        file = AtomicFile.Begin(path);
        try
        {
            string full = Path.GetFullPath(path);
            string scratchPath = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{AtomicFile.Pending.Owner}.data.tmp");
            scratch = new FileStream(scratchPath, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 16);
            File.Delete(scratchPath);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public void Write(Embedding e)
    {
        if (pooling == Pooling.None && e.Record.Id == "__metadata__")
            throw new BioForgeException($"{e.Record.Where}: record id '__metadata__' is the name safetensors keeps for the file's metadata; rename the record (or write .npy or .csv)");
        if (pooling == Pooling.None && !ids.Add(e.Record.Id))
            throw new BioForgeException($"{e.Record.Where}: record id '{e.Record.Id}' appears twice; per-record safetensors output needs unique ids");
        entries.Add((e.Record.Id, e.Rows, e.Columns));
        scratch.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(e.Values.AsSpan()));
    }

    public void Complete()
    {
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        metadata["ids"] = JsonSerializer.Serialize(entries.Select(e => e.Id));
        if (pooling == Pooling.None)
        {
            long offset = 0;
            foreach (var (id, rows, columns) in entries)
            {
                long bytes = rows * columns * 4;
                header[id] = new { dtype = "F32", shape = new[] { rows, columns }, data_offsets = new[] { offset, offset + bytes } };
                offset += bytes;
            }
        }
        else
        {
            int columns = entries.Count > 0 ? entries[0].Columns : 0;
            header["embeddings"] = new { dtype = "F32", shape = new long[] { entries.Count, columns }, data_offsets = new[] { 0, scratch.Length } };
        }
        header["__metadata__"] = metadata;
        SafetensorsWriter.WriteHeader(file.Stream, header);
        scratch.Position = 0;
        scratch.CopyTo(file.Stream);
        file.Commit();
    }

    public void Dispose()
    {
        scratch.Dispose();
        file.Dispose();
    }
}
