using System.Text;
using BioForge.IO;
using static TorchSharp.torch;

namespace BioForge.Tests;

public sealed class SafetensorsTests
{
    [Fact]
    public void RoundTripsEveryElementType()
    {
        _ = TestData.Cpu;
        string path = Path.Combine(TestData.TempDirectory(), "all.safetensors");
        using var scope = NewDisposeScope();
        var tensors = new List<KeyValuePair<string, Tensor>>
        {
            new("f64", randn(2, 3, dtype: ScalarType.Float64)),
            new("f32", randn(4, dtype: ScalarType.Float32)),
            new("f16", randn(3, 2).to(ScalarType.Float16)),
            new("bf16", randn(5).to(ScalarType.BFloat16)),
            new("i64", tensor(new long[] { long.MinValue, -1, long.MaxValue })),
            new("i32", tensor(new[] { int.MinValue, 7 })),
            new("i16", tensor(new short[] { -3, 300 })),
            new("i8", tensor(new sbyte[] { -128, 127 })),
            new("u8", tensor(new byte[] { 0, 255 })),
            new("bool", tensor(new[] { true, false, true })),
            new("scalar", tensor(3.5f)),
            new("empty", zeros(0, 4)),
        };
        SafetensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["note"] = "round trip" });

        using var file = SafetensorsFile.Open(path);
        Assert.Equal("round trip", file.Metadata["note"]);
        foreach (var (name, expected) in tensors)
        {
            var actual = file.ToTensor(name);
            Assert.Equal(expected.dtype, actual.dtype);
            Assert.Equal(expected.shape, actual.shape);
            Assert.True(expected.eq(actual).all().item<bool>(), name);
        }
        Assert.Equal(0, (8 + BitConverter.ToInt64(File.ReadAllBytes(path), 0)) % 8);
    }

    private static string WriteRaw(string header, byte[] data, long? declaredLength = null)
    {
        string path = Path.Combine(TestData.TempDirectory(), "raw.safetensors");
        var json = Encoding.UTF8.GetBytes(header);
        using var stream = File.Create(path);
        stream.Write(BitConverter.GetBytes(declaredLength ?? json.Length));
        stream.Write(json);
        stream.Write(data);
        return path;
    }

    [Theory]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "run past")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "needs 12")]
    [InlineData("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unsupported dtype 'Q4'")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", 8, "overlaps")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "gap of 4 bytes")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "after the last tensor")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "non-negative")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "begin <= end")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}}", 4, "two non-negative integers")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[null,4]}}", 4, "two non-negative integers")]
    [InlineData("{\"a\": 5}", 0, "not an object")]
    [InlineData("[1,2]", 0, "not a JSON object")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807,4],\"data_offsets\":[0,4]}}", 4, "too large")]
    [InlineData("{not json", 0, "not valid JSON")]
    public void RejectsMalformedFilesNamingFileAndTensor(string header, int dataBytes, string expected)
    {
        string path = WriteRaw(header, new byte[dataBytes]);
        var e = Assert.Throws<BioForgeException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void RejectsAHeaderThatIsNotUtf8()
    {
        string path = WriteRaw("{\"form\":{}}", []);
        var bytes = File.ReadAllBytes(path);
        bytes[10] = 0xff; // inside the name "form"
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<BioForgeException>(() => SafetensorsFile.Open(path));
        Assert.Contains($"{path}: invalid safetensors file: header is not valid UTF-8", e.Message);
    }

    [Fact]
    public void RejectsHeaderLengthsOutsideTheFile()
    {
        Assert.Contains("outside 1..", Assert.Throws<BioForgeException>(() => SafetensorsFile.Open(WriteRaw("{}", [], declaredLength: long.MaxValue))).Message);
        Assert.Contains("runs past the end", Assert.Throws<BioForgeException>(() => SafetensorsFile.Open(WriteRaw("{}", [], declaredLength: 1000))).Message);
        string tiny = Path.Combine(TestData.TempDirectory(), "tiny.safetensors");
        File.WriteAllBytes(tiny, [1, 2, 3]);
        Assert.Contains("shorter than", Assert.Throws<BioForgeException>(() => SafetensorsFile.Open(tiny)).Message);
    }

    [Fact]
    public void EveryTruncationOfAValidFileIsRejectedCleanly()
    {
        _ = TestData.Cpu;
        string path = Path.Combine(TestData.TempDirectory(), "whole.safetensors");
        using (var scope = NewDisposeScope())
            SafetensorsWriter.Write(path, [new("w", randn(3, 5)), new("b", randn(5))]);
        byte[] whole = File.ReadAllBytes(path);
        for (int length = 0; length < whole.Length; length++)
        {
            string cut = Path.Combine(TestData.TempDirectory(), "cut.safetensors");
            File.WriteAllBytes(cut, whole[..length]);
            Assert.Throws<BioForgeException>(() => SafetensorsFile.Open(cut).Dispose());
        }
    }

    [Fact]
    public void ShardedCheckpointRoundTrips()
    {
        _ = TestData.Cpu;
        string dir = TestData.TempDirectory();
        using var scope = NewDisposeScope();
        var tensors = Enumerable.Range(0, 5).Select(i => new KeyValuePair<string, Tensor>($"layer.{i}.weight", randn(16, 16))).ToList();
        SafetensorsCheckpoint.Save(dir, tensors, maxShardBytes: 2048);
        Assert.True(File.Exists(Path.Combine(dir, SafetensorsCheckpoint.IndexFileName)));
        Assert.Equal(3, Directory.GetFiles(dir, "model-*-of-00003.safetensors").Length);
        using var checkpoint = SafetensorsCheckpoint.Open(dir);
        Assert.Equal(5, checkpoint.Names.Count);
        foreach (var (name, expected) in tensors) Assert.True(expected.eq(checkpoint.Load(name)).all().item<bool>());
    }

    /// <summary>Part of a tensor by byte range (rows of a matrix too large for one span), never past its end.</summary>
    [Fact]
    public void PartsOfATensorReadByByteRange()
    {
        _ = TestData.Cpu;
        string path = Path.Combine(TestData.TempDirectory(), "m.safetensors");
        using (var scope = NewDisposeScope())
            SafetensorsWriter.Write(path, [new("m", arange(6, ScalarType.Float32).view(3, 2))]);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal([2f, 3f], System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(file.GetBytes("m", 8, 8)).ToArray());
        Assert.Contains("outside tensor 'm' (24 bytes)", Assert.Throws<BioForgeException>(() => file.GetBytes("m", 20, 8).ToArray()).Message);
    }

    /// <summary>Both layouts in one directory (a save cut short): the single file is read, as Hugging Face reads it.</summary>
    [Fact]
    public void TheSingleFileIsReadBeforeAnIndex()
    {
        _ = TestData.Cpu;
        string dir = TestData.TempDirectory();
        using (var scope = NewDisposeScope())
        {
            SafetensorsWriter.Write(Path.Combine(dir, "model-00001-of-00001.safetensors"), [new("x", zeros(2))]);
            SafetensorsWriter.Write(Path.Combine(dir, SafetensorsCheckpoint.SingleFileName), [new("x", ones(2))]);
        }
        File.WriteAllText(Path.Combine(dir, SafetensorsCheckpoint.IndexFileName), "{\"weight_map\":{\"x\":\"model-00001-of-00001.safetensors\"}}");
        using var checkpoint = SafetensorsCheckpoint.Open(dir);
        using var x = checkpoint.Load("x");
        Assert.Equal([1f, 1f], x.data<float>().ToArray());
    }

    [Fact]
    public void IndexPointingAtMissingTensorIsAnError()
    {
        _ = TestData.Cpu;
        string dir = TestData.TempDirectory();
        using (var scope = NewDisposeScope())
            SafetensorsWriter.Write(Path.Combine(dir, "a.safetensors"), [new("x", zeros(2))]);
        File.WriteAllText(Path.Combine(dir, SafetensorsCheckpoint.IndexFileName), "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"a.safetensors\"}}");
        var e = Assert.Throws<BioForgeException>(() => SafetensorsCheckpoint.Open(dir));
        Assert.Contains("'y'", e.Message);
        File.WriteAllText(Path.Combine(dir, SafetensorsCheckpoint.IndexFileName), "{\"weight_map\":{\"x\":\"../a.safetensors\"}}");
        Assert.Contains("invalid shard file name", Assert.Throws<BioForgeException>(() => SafetensorsCheckpoint.Open(dir)).Message);
    }
}
