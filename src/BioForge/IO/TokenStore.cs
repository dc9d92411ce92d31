using System.Text;

namespace BioForge.IO;

/// <summary>
/// A tokenized corpus in two files, like Megatron's indexed dataset: <c>NAME.bin</c> holds every document's token
/// ids back to back (little-endian uint16 when the vocabulary fits, else int32); <c>NAME.idx</c> holds a header and,
/// per document, its start (in tokens) and length. Reading maps both files, so any document is reachable in O(1)
/// without loading the corpus.
/// </summary>
public static class TokenStore
{
    private static readonly byte[] Magic = "BFTOKIDX"u8.ToArray();
    private const int Version = 1;

    public static string BinPath(string prefix) => prefix + ".bin";
    public static string IdxPath(string prefix) => prefix + ".idx";

    /// <summary>Streams documents into NAME.bin / NAME.idx; both appear only when <see cref="Writer.Complete"/> runs.</summary>
    public sealed class Writer : IDisposable
    {
        private readonly AtomicFile.Pending bin;
        private readonly string idxPath;
        private readonly List<(long Start, int Length)> documents = [];
        private readonly int bytesPerToken;
        private readonly int vocabularySize;
        private long tokens;

        public Writer(string prefix, int vocabularySize)
        {
            if (vocabularySize <= 0) throw new ArgumentOutOfRangeException(nameof(vocabularySize));
            this.vocabularySize = vocabularySize;
            bytesPerToken = vocabularySize <= ushort.MaxValue + 1 ? 2 : 4;
            bin = AtomicFile.Begin(BinPath(prefix));
            idxPath = IdxPath(prefix);
        }

        public void Add(ReadOnlySpan<int> document)
        {
            Span<byte> buffer = stackalloc byte[4];
            foreach (int id in document)
            {
                if (id < 0 || id >= vocabularySize) throw new BioForgeException($"token id {id} is outside the vocabulary of {vocabularySize}");
                if (bytesPerToken == 2) BitConverter.TryWriteBytes(buffer, (ushort)id);
                else BitConverter.TryWriteBytes(buffer, id);
                bin.Stream.Write(buffer[..bytesPerToken]);
            }
            documents.Add((tokens, document.Length));
            tokens += document.Length;
        }

        public void Complete()
        {
            AtomicFile.Write(idxPath, stream =>
            {
                using var w = new BinaryWriter(stream, Encoding.ASCII, leaveOpen: true);
                w.Write(Magic);
                w.Write(Version);
                w.Write(bytesPerToken);
                w.Write(vocabularySize);
                w.Write((long)documents.Count);
                foreach (var (start, _) in documents) w.Write(start);
                foreach (var (_, length) in documents) w.Write(length);
            });
            bin.Commit();
        }

        public void Dispose() => bin.Dispose();
    }

    /// <summary>A memory-mapped token store, validated on open.</summary>
    public sealed unsafe class Reader : IDisposable
    {
        private const int HeaderBytes = 8 + 4 + 4 + 4 + 8;
        private readonly long[] starts;
        private readonly int[] lengths;
        private readonly MappedFile? mapped;
        private readonly byte* data;
        private readonly string binPath;

        public int BytesPerToken { get; }
        public int VocabularySize { get; }
        public int Count => starts.Length;
        public long TotalTokens { get; }

        public Reader(string prefix)
        {
            string idx = IdxPath(prefix);
            binPath = BinPath(prefix);
            if (!File.Exists(idx) || !File.Exists(binPath)) throw new BioForgeException($"{prefix}: token store not found (expected {idx} and {binPath})");
            byte[] header = File.ReadAllBytes(idx);
            if (header.Length < HeaderBytes || !header.AsSpan(0, 8).SequenceEqual(Magic))
                throw new BioForgeException($"{idx}: not a BioForge token index");
            int version = BitConverter.ToInt32(header, 8);
            if (version != Version) throw new BioForgeException($"{idx}: token index version {version} is not supported (expected {Version})");
            BytesPerToken = BitConverter.ToInt32(header, 12);
            VocabularySize = BitConverter.ToInt32(header, 16);
            long count = BitConverter.ToInt64(header, 20);
            if (BytesPerToken is not (2 or 4) || VocabularySize <= 0 || count < 0 || count > (header.Length - HeaderBytes) / 12 || header.Length != HeaderBytes + count * 12)
                throw new BioForgeException($"{idx}: corrupt token index header");
            starts = new long[count];
            lengths = new int[count];
            Buffer.BlockCopy(header, HeaderBytes, starts, 0, (int)count * 8);
            Buffer.BlockCopy(header, HeaderBytes + (int)count * 8, lengths, 0, (int)count * 4);
            long binBytes = FileLength.Of(binPath), binTokens = binBytes / BytesPerToken;
            long expected = 0;
            for (int i = 0; i < count; i++)
            {
                if (starts[i] != expected || lengths[i] < 0) throw new BioForgeException($"{idx}: document {i} is not contiguous with the one before it");
                expected += lengths[i];
            }
            if (binBytes % BytesPerToken != 0)
                throw new BioForgeException($"{binPath}: {binBytes:N0} bytes is not a whole number of {BytesPerToken}-byte tokens (a torn or foreign file)");
            if (expected != binTokens)
                throw new BioForgeException($"{binPath}: holds {binTokens} tokens but the index describes {expected}");
            TotalTokens = expected;
            if (expected > 0)
            {
                mapped = new MappedFile(binPath);
                data = mapped.Start;
            }
        }

        public int Length(int document) => lengths[document];

        /// <summary>Copies one document's token ids, checked against the vocabulary: a damaged file would otherwise
        /// reach the embedding as an index LibTorch refuses in its own words, or as a wrong token.</summary>
        public int[] Document(int document)
        {
            var result = new int[lengths[document]];
            byte* start = data + starts[document] * BytesPerToken;
            for (int i = 0; i < result.Length; i++)
            {
                result[i] = BytesPerToken == 2 ? ((ushort*)start)[i] : ((int*)start)[i];
                if ((uint)result[i] >= (uint)VocabularySize)
                    throw new BioForgeException($"{binPath}: document {document} holds token id {result[i]}, outside the vocabulary of {VocabularySize} (a damaged file?)");
            }
            return result;
        }

        public void Dispose() => mapped?.Dispose();
    }
}
