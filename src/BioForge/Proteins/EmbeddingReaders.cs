using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using BioForge.IO;

namespace BioForge.Proteins;

/// <summary>
/// Reads back what <see cref="EmbeddingWriters"/> wrote, record by record, so files written by separate processes
/// (one per rank) can be concatenated into one in any of the formats.
/// </summary>
internal static class EmbeddingReaders
{
    public static IEnumerable<Embedding> Read(string path, Pooling pooling) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".csv" => ReadCsv(path, pooling),
        ".npy" => ReadNpy(path),
        ".safetensors" => ReadSafetensors(path, pooling),
        _ => throw new BioForgeException($"{path}: unknown embedding format"),
    };

    /// <summary>Concatenates per-rank files, in rank order, into <paramref name="target"/> (written atomically).</summary>
    public static void Concatenate(IReadOnlyList<string> parts, string target, Pooling pooling, IReadOnlyDictionary<string, string> metadata)
    {
        using var writer = EmbeddingWriters.Create(target, pooling, metadata);
        foreach (string part in parts)
            foreach (var e in Read(part, pooling)) writer.Write(e);
        writer.Complete();
    }

    /// <summary>
    /// Pooled: one row per record. Per residue: consecutive rows of one id at consecutive positions form one record (two
    /// records of the same id one after the other start again at their first position), its first position kept as the
    /// record's offset (a sequence cut at its start begins past 1).
    /// </summary>
    private static IEnumerable<Embedding> ReadCsv(string path, Pooling pooling)
    {
        // A rank given no sequences writes an empty file: it knows no width to write a header with.
        if (FileLength.Of(path) == 0) yield break;
        var rows = Csv.ReadRows(path, out var header);
        int skip = pooling == Pooling.None ? 3 : 1, columns = header.Count - skip;
        string? id = null;
        int first = 0, last = 0;
        var values = new List<float>();
        var residues = new System.Text.StringBuilder();
        // The writers read a row's residue at Offset + row of the record's sequence: the residues before the first row,
        // which the file does not hold, are stood in for (never written).
        Embedding Record() => new(new FastaRecord(id!, "", new string('X', first - 1) + residues, 0), [.. values], Math.Max(1, residues.Length), columns)
        {
            Offset = first - 1,
            Residues = residues.Length,
        };
        foreach (var (_, fields) in rows)
        {
            var numbers = fields.Skip(skip).Select(v => float.Parse(v, CultureInfo.InvariantCulture));
            if (pooling != Pooling.None)
            {
                yield return new Embedding(new FastaRecord(fields[0], "", "", 0), [.. numbers], 1, columns);
                continue;
            }
            int position = int.Parse(fields[1], CultureInfo.InvariantCulture);
            if (id is not null && (fields[0] != id || position != last + 1))
            {
                yield return Record();
                values.Clear();
                residues.Clear();
                id = null;
            }
            if (id is null) first = position;
            id = fields[0];
            last = position;
            residues.Append(fields[2]);
            values.AddRange(numbers);
        }
        if (id is not null) yield return Record();
    }

    private static IEnumerable<Embedding> ReadNpy(string path)
    {
        using var stream = File.OpenRead(path);
        var header = new byte[128];
        stream.ReadExactly(header);
        string text = System.Text.Encoding.ASCII.GetString(header, 10, 118);
        var shape = text[(text.IndexOf('(') + 1)..text.IndexOf(')')].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        long rows = long.Parse(shape[0], CultureInfo.InvariantCulture);
        int columns = int.Parse(shape[1], CultureInfo.InvariantCulture);
        string idsPath = NpyEmbeddingWriter.IdsPath(path);
        using var ids = File.Exists(idsPath) ? new StreamReader(idsPath) : null;
        for (long r = 0; r < rows; r++)
        {
            var values = new float[columns];
            stream.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan()));
            yield return new Embedding(new FastaRecord(ids?.ReadLine() ?? $"row {r}", "", "", 0), values, 1, columns);
        }
    }

    private static IEnumerable<Embedding> ReadSafetensors(string path, Pooling pooling)
    {
        using var file = SafetensorsFile.Open(path);
        if (pooling == Pooling.None)
        {
            foreach (var entry in file.Entries.OrderBy(e => e.Begin))
                yield return new Embedding(new FastaRecord(entry.Name, "", "", 0), MemoryMarshal.Cast<byte, float>(file.GetBytes(entry.Name)).ToArray(),
                    (int)entry.Shape[0], (int)entry.Shape[1]);
            yield break;
        }
        var ids = JsonSerializer.Deserialize<string[]>(file.Metadata.GetValueOrDefault("ids", "[]")) ?? [];
        var matrix = file["embeddings"];
        int columns = (int)matrix.Shape[1];
        // Row by row: one rank's share of a large job can pass 2 GiB, more than one span holds.
        for (int r = 0; r < ids.Length; r++)
        {
            var row = MemoryMarshal.Cast<byte, float>(file.GetBytes("embeddings", (long)r * columns * sizeof(float), columns * sizeof(float))).ToArray();
            yield return new Embedding(new FastaRecord(ids[r], "", "", 0), row, 1, columns);
        }
    }
}
