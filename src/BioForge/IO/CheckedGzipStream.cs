using System.Runtime.InteropServices;

namespace BioForge.IO;

/// <summary>
/// Decompresses a gzip file (one member, or several as <c>bgzip</c> and <c>cat a.gz b.gz</c> make) through zlib itself,
/// which checks every member's CRC-32 and length. .NET's GZipStream ends a file cut short quietly, as if it were
/// complete: a half-downloaded corpus would train on half its records. Here a truncated or damaged file is an error
/// naming it.
/// </summary>
internal sealed unsafe class CheckedGzipStream : Stream
{
    private const int GzipOnly = 15 + 16; // windowBits: a 32 KiB window, gzip framing
    private const int ZOk = 0, ZStreamEnd = 1, ZBufError = -5;
    private const int InputSize = 1 << 16;

    // zlib's z_stream on LP64 Linux (uLong is 64 bits). zlib keeps a pointer back to it, so it lives in native memory.
    [StructLayout(LayoutKind.Sequential)]
    private struct ZStream
    {
        public byte* NextIn;
        public uint AvailIn;
        public nuint TotalIn;
        public byte* NextOut;
        public uint AvailOut;
        public nuint TotalOut;
        public byte* Msg;
        public nint State, ZAlloc, ZFree, Opaque;
        public int DataType;
        public nuint Adler, Reserved;
    }

    [DllImport("libz.so.1", EntryPoint = "zlibVersion")]
    private static extern byte* ZlibVersion();

    [DllImport("libz.so.1", EntryPoint = "inflateInit2_")]
    private static extern int InflateInit2(ZStream* stream, int windowBits, byte* version, int streamSize);

    [DllImport("libz.so.1", EntryPoint = "inflate")]
    private static extern int Inflate(ZStream* stream, int flush);

    [DllImport("libz.so.1", EntryPoint = "inflateReset")]
    private static extern int InflateReset(ZStream* stream);

    [DllImport("libz.so.1", EntryPoint = "inflateEnd")]
    private static extern int InflateEnd(ZStream* stream);

    private readonly Stream source;
    private readonly string path;
    private ZStream* z;
    private byte* input;
    private bool inMember, ended;
    private int members;

    public CheckedGzipStream(Stream source, string path)
    {
        this.source = source;
        this.path = path;
        z = (ZStream*)NativeMemory.AllocZeroed((nuint)sizeof(ZStream));
        input = (byte*)NativeMemory.Alloc(InputSize);
        if (InflateInit2(z, GzipOnly, ZlibVersion(), sizeof(ZStream)) != ZOk)
        {
            NativeMemory.Free(z);
            NativeMemory.Free(input);
            z = null;
            input = null;
            throw new BioForgeException($"{path}: zlib could not start decompressing");
        }
    }

    public override int Read(Span<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(z is null, this);
        if (ended || buffer.Length == 0) return 0;
        fixed (byte* output = buffer)
        {
            z->NextOut = output;
            z->AvailOut = (uint)buffer.Length;
            while (z->AvailOut == buffer.Length)
            {
                if (z->AvailIn == 0)
                {
                    int read = source.Read(new Span<byte>(input, InputSize));
                    if (read == 0)
                    {
                        if (inMember) throw new BioForgeException($"{path}: the gzip data ends early (the file is truncated; download or copy it again)");
                        ended = true;
                        break;
                    }
                    z->NextIn = input;
                    z->AvailIn = (uint)read;
                }
                if (!inMember && members > 0 && *z->NextIn == 0)
                {
                    // Zeros after the last member are tape or block padding, which gunzip ignores; anything else is damage.
                    if (!OnlyZerosRemain()) throw new BioForgeException($"{path}: data after gzip member {members} is neither another member nor zero padding");
                    ended = true;
                    break;
                }
                inMember = true;
                int result = Inflate(z, 0);
                if (result == ZStreamEnd)
                {
                    // One member done and checked; whatever follows must be another member.
                    members++;
                    inMember = false;
                    InflateReset(z);
                }
                else if (result != ZOk && result != ZBufError)
                {
                    string reason = z->Msg is null ? $"zlib error {result}" : Marshal.PtrToStringUTF8((nint)z->Msg)!;
                    throw new BioForgeException($"{path}: corrupt gzip data in member {members + 1} ({reason})");
                }
            }
            return buffer.Length - (int)z->AvailOut;
        }
    }

    private bool OnlyZerosRemain()
    {
        while (true)
        {
            if (new ReadOnlySpan<byte>(z->NextIn, (int)z->AvailIn).ContainsAnyExcept((byte)0)) return false;
            z->AvailIn = 0;
            int read = source.Read(new Span<byte>(input, InputSize));
            if (read == 0) return true;
            z->NextIn = input;
            z->AvailIn = (uint)read;
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <summary>zlib's state and the input buffer are native: freed here when a reader was dropped without disposing.</summary>
    ~CheckedGzipStream() => Dispose(false);

    protected override void Dispose(bool disposing)
    {
        if (z is not null)
        {
            InflateEnd(z);
            NativeMemory.Free(z);
            NativeMemory.Free(input);
            z = null;
            input = null;
        }
        if (disposing) source.Dispose();
        base.Dispose(disposing);
    }
}
