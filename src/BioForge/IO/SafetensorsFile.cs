using System.Text.Json;
using TorchSharp;

namespace BioForge.IO;

/// <summary>Name, element type, shape and byte range (relative to the data section) of one stored tensor.</summary>
public sealed record SafetensorsEntry(string Name, SafetensorsDType DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
}

/// <summary>
/// A validated, memory-mapped safetensors file. Every structural rule of the format is checked when the file is
/// opened, so later reads cannot go outside the mapping; nothing larger than the file is ever allocated.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>The reference implementation refuses headers above 100 MB; so do we.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private readonly MappedFile? mapped;
    private readonly byte* basePointer;
    private readonly long dataStart;
    private readonly Dictionary<string, SafetensorsEntry> entries;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Tensors in the order of their data offsets.</summary>
    public IReadOnlyList<SafetensorsEntry> Entries { get; }

    private SafetensorsFile(string path, MappedFile? mapped, long dataStart,
        Dictionary<string, SafetensorsEntry> entries, IReadOnlyDictionary<string, string> metadata)
    {
        Path = path;
        this.mapped = mapped;
        this.dataStart = dataStart;
        this.entries = entries;
        Metadata = metadata;
        Entries = entries.Values.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
        basePointer = mapped is null ? null : mapped.Start;
    }

    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new BioForgeException($"{path}: safetensors file not found");
        long fileLength = FileLength.Of(path);
        if (fileLength < 8) throw Bad(path, $"file is {fileLength} bytes, shorter than the 8-byte header length");

        byte[] header;
        using (var stream = File.OpenRead(path))
        {
            Span<byte> lengthBytes = stackalloc byte[8];
            stream.ReadExactly(lengthBytes);
            ulong headerLength = BitConverter.ToUInt64(lengthBytes);
            if (headerLength == 0 || headerLength > MaxHeaderBytes)
                throw Bad(path, $"header length {headerLength} is outside 1..{MaxHeaderBytes}");
            if ((long)headerLength > fileLength - 8)
                throw Bad(path, $"header length {headerLength} runs past the end of the {fileLength}-byte file (truncated?)");
            header = new byte[headerLength];
            stream.ReadExactly(header);
        }

        long dataStart = 8 + header.Length;
        long dataLength = fileLength - dataStart;
        var (entries, metadata) = ParseHeader(path, header, dataLength);

        if (fileLength == dataStart || dataLength == 0)
            return new SafetensorsFile(path, null, dataStart, entries, metadata);
        return new SafetensorsFile(path, new MappedFile(path), dataStart, entries, metadata);
    }

    private static (Dictionary<string, SafetensorsEntry>, Dictionary<string, string>) ParseHeader(string path, byte[] header, long dataLength)
    {
        // JsonDocument parses ill-formed UTF-8 and throws only when a name is read, outside the catch below.
        if (!System.Text.Unicode.Utf8.IsValid(header)) throw Bad(path, "header is not valid UTF-8");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw Bad(path, $"header is not valid JSON ({e.Message})");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad(path, "header is not a JSON object");
            var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    if (property.Value.ValueKind != JsonValueKind.Object) throw Bad(path, "__metadata__ is not an object");
                    foreach (var m in property.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String) throw Bad(path, $"__metadata__ value '{m.Name}' is not a string");
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                if (entries.ContainsKey(property.Name)) throw Bad(path, $"tensor '{property.Name}' appears twice");
                entries[property.Name] = ParseEntry(path, property.Name, property.Value, dataLength);
            }
            CheckCoverage(path, entries.Values, dataLength);
            return (entries, metadata);
        }
    }

    private static SafetensorsEntry ParseEntry(string path, string name, JsonElement e, long dataLength)
    {
        if (e.ValueKind != JsonValueKind.Object) throw Bad(path, $"tensor '{name}': entry is not an object");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw Bad(path, $"tensor '{name}': missing dtype");
        if (!SafetensorsDTypes.TryParse(dt.GetString()!, out var dtype))
            throw Bad(path, $"tensor '{name}': unsupported dtype '{dt.GetString()}' (supported: {string.Join(", ", Enum.GetNames<SafetensorsDType>())})");
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw Bad(path, $"tensor '{name}': missing shape");
        var shape = new long[sh.GetArrayLength()];
        long elements = 1;
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long n) || n < 0)
                throw Bad(path, $"tensor '{name}': shape entries must be non-negative integers");
            shape[i++] = n;
            elements = n == 0 ? 0 : elements > long.MaxValue / n ? throw Bad(path, $"tensor '{name}': shape is too large") : elements * n;
        }
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw Bad(path, $"tensor '{name}': data_offsets must be [begin, end]");
        if (off[0].ValueKind != JsonValueKind.Number || off[1].ValueKind != JsonValueKind.Number
            || !off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw Bad(path, $"tensor '{name}': data_offsets must be two non-negative integers with begin <= end");
        if (end > dataLength)
            throw Bad(path, $"tensor '{name}': data_offsets [{begin}, {end}] run past the {dataLength}-byte data section (truncated?)");
        long expected = elements > long.MaxValue / dtype.ByteSize() ? long.MaxValue : elements * dtype.ByteSize();
        if (end - begin != expected)
            throw Bad(path, $"tensor '{name}': {end - begin} bytes stored but {dtype} [{string.Join(", ", shape)}] needs {expected}");
        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    private static void CheckCoverage(string path, IEnumerable<SafetensorsEntry> entries, long dataLength)
    {
        long cursor = 0;
        string previous = "(start of data)";
        foreach (var e in entries.OrderBy(x => x.Begin).ThenBy(x => x.End))
        {
            if (e.Begin < cursor) throw Bad(path, $"tensor '{e.Name}' overlaps '{previous}'");
            if (e.Begin > cursor) throw Bad(path, $"gap of {e.Begin - cursor} bytes before tensor '{e.Name}'");
            cursor = e.End;
            previous = e.Name;
        }
        if (cursor != dataLength) throw Bad(path, $"{dataLength - cursor} bytes after the last tensor belong to none");
    }

    private static BioForgeException Bad(string path, string what) => new($"{path}: invalid safetensors file: {what}");

    public bool Contains(string name) => entries.ContainsKey(name);

    public SafetensorsEntry this[string name] =>
        entries.TryGetValue(name, out var e) ? e : throw new BioForgeException($"{Path}: no tensor named '{name}'");

    /// <summary>The raw little-endian bytes of a tensor, straight from the mapping.</summary>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        var e = this[name];
        if (e.ByteLength == 0) return ReadOnlySpan<byte>.Empty;
        if (e.ByteLength > int.MaxValue) throw new BioForgeException($"{Path}: tensor '{name}' is larger than 2 GiB; read it with ToTensor");
        return new ReadOnlySpan<byte>(basePointer + dataStart + e.Begin, (int)e.ByteLength);
    }

    /// <summary>
    /// <paramref name="length"/> raw bytes of a tensor from byte <paramref name="offset"/> of it: a part of a tensor of
    /// any size (a pooled embedding matrix of millions of rows is read row by row).
    /// </summary>
    public ReadOnlySpan<byte> GetBytes(string name, long offset, int length)
    {
        var e = this[name];
        if (offset < 0 || length < 0 || offset > e.ByteLength - length)
            throw new BioForgeException($"{Path}: bytes {offset}..{offset + length} are outside tensor '{name}' ({e.ByteLength} bytes)");
        return new ReadOnlySpan<byte>(basePointer + dataStart + e.Begin + offset, length);
    }

    /// <summary>Copies a tensor into a new CPU torch tensor of its stored type.</summary>
    public torch.Tensor ToTensor(string name)
    {
        var e = this[name];
        var t = torch.empty(e.Shape, e.DType.ToTorch());
        if (e.ByteLength == 0) return t;
        byte* source = basePointer + dataStart + e.Begin;
        // TorchSharp exposes tensor memory as an int-sized Span, so tensors over 1 GiB are copied in slices of a flat view.
        int elementSize = e.DType.ByteSize();
        long elements = e.ByteLength / elementSize, perChunk = (1L << 30) / elementSize;
        using var flat = t.view(-1);
        for (long start = 0; start < elements; start += perChunk)
        {
            long count = Math.Min(perChunk, elements - start);
            using var slice = flat.narrow(0, start, count);
            new ReadOnlySpan<byte>(source + start * elementSize, (int)(count * elementSize)).CopyTo(slice.bytes);
        }
        return t;
    }

    public void Dispose() => mapped?.Dispose();
}
