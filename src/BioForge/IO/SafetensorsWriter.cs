using System.Text.Json;
using TorchSharp;

namespace BioForge.IO;

/// <summary>
/// Writes safetensors files. Tensors are written in the order given; the file appears under its final name only
/// when complete (temp file + rename).
/// </summary>
internal static class SafetensorsWriter
{
    public static void Write(string path, IReadOnlyList<KeyValuePair<string, torch.Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        long offset = 0;
        foreach (var (name, tensor) in tensors)
        {
            if (name == "__metadata__" || !names.Add(name)) throw new BioForgeException($"{path}: tensor name '{name}' is reserved or repeated");
            var dtype = SafetensorsDTypes.FromTorch(tensor.dtype);
            long bytes = tensor.numel() * dtype.ByteSize();
            header[name] = new { dtype = dtype.ToString(), shape = tensor.shape, data_offsets = new[] { offset, offset + bytes } };
            offset += bytes;
        }
        AtomicFile.Write(path, stream =>
        {
            WriteHeader(stream, header);
            foreach (var (_, tensor) in tensors) WriteData(stream, tensor);
        });
    }

    /// <summary>
    /// Writes the length prefix and the JSON header (tensor name → dtype, shape, data_offsets; optional
    /// <c>__metadata__</c>), padded with spaces so tensor data starts 8-byte aligned, as the reference writer does.
    /// </summary>
    internal static void WriteHeader(Stream stream, IReadOnlyDictionary<string, object> header)
    {
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        int padded = (json.Length + 7) / 8 * 8;
        stream.Write(BitConverter.GetBytes((ulong)padded));
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
    }

    /// <summary>Writes a tensor's elements as little-endian bytes (moves to CPU and makes contiguous when needed).</summary>
    internal static void WriteData(Stream stream, torch.Tensor tensor)
    {
        if (tensor.numel() == 0) return;
        using var scope = torch.NewDisposeScope();
        var cpu = tensor.device_type == DeviceType.CPU ? tensor : tensor.cpu();
        var flat = cpu.contiguous().view(-1);
        long elements = flat.numel(), perChunk = (1L << 30) / SafetensorsDTypes.FromTorch(flat.dtype).ByteSize();
        for (long start = 0; start < elements; start += perChunk)
        {
            using var slice = flat.narrow(0, start, Math.Min(perChunk, elements - start));
            stream.Write(slice.bytes);
        }
    }
}
