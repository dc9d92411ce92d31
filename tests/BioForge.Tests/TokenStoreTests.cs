using BioForge.IO;

namespace BioForge.Tests;

public sealed class TokenStoreTests
{
    [Theory]
    [InlineData(33)]
    [InlineData(100_000)]
    public void DocumentsRoundTrip(int vocabulary)
    {
        string prefix = Path.Combine(TestData.TempDirectory(), "train");
        int[][] documents = [[0, 5, 7, 2], [], [1, vocabulary - 1], [3]];
        using (var writer = new TokenStore.Writer(prefix, vocabulary))
        {
            foreach (var d in documents) writer.Add(d);
            writer.Complete();
        }
        using var reader = new TokenStore.Reader(prefix);
        Assert.Equal(vocabulary <= 65536 ? 2 : 4, reader.BytesPerToken);
        Assert.Equal(4, reader.Count);
        Assert.Equal(7, reader.TotalTokens);
        for (int i = 0; i < documents.Length; i++) Assert.Equal(documents[i], reader.Document(i));
    }

    /// <summary>A corpus copied as symbolic links (a shared data folder, a cache) is read through them: FileInfo.Length gives a link's own size.</summary>
    [Fact]
    public void AStoreReachedThroughSymbolicLinksIsRead()
    {
        string dir = TestData.TempDirectory(), prefix = Path.Combine(dir, "train"), linked = Path.Combine(dir, "linked");
        using (var writer = new TokenStore.Writer(prefix, 33))
        {
            writer.Add([0, 5, 7, 2]);
            writer.Complete();
        }
        File.CreateSymbolicLink(linked + ".bin", "train.bin");
        File.CreateSymbolicLink(linked + ".idx", "train.idx");
        using var reader = new TokenStore.Reader(linked);
        Assert.Equal([0, 5, 7, 2], reader.Document(0));
    }

    [Fact]
    public void UnfinishedWritesLeaveNothingAndBadFilesAreRefused()
    {
        string dir = TestData.TempDirectory(), prefix = Path.Combine(dir, "x");
        using (var writer = new TokenStore.Writer(prefix, 10))
        {
            writer.Add([1, 2]);
            Assert.Throws<BioForgeException>(() => writer.Add([11]));
        }
        Assert.Empty(Directory.GetFiles(dir));

        using (var writer = new TokenStore.Writer(prefix, 10))
        {
            writer.Add([1, 2, 3]);
            writer.Complete();
        }
        // A damaged .bin of the right size: the token past the vocabulary is named when its document is read.
        byte[] bin = File.ReadAllBytes(TokenStore.BinPath(prefix));
        bin[2] = 12;
        File.WriteAllBytes(TokenStore.BinPath(prefix), bin);
        using (var damaged = new TokenStore.Reader(prefix))
            Assert.Contains("document 0 holds token id 12, outside the vocabulary of 10", Assert.Throws<BioForgeException>(() => damaged.Document(0)).Message);
        File.WriteAllBytes(TokenStore.BinPath(prefix), bin[..4]);
        Assert.Contains("index describes 3", Assert.Throws<BioForgeException>(() => new TokenStore.Reader(prefix)).Message);
        File.WriteAllText(TokenStore.IdxPath(prefix), "garbage");
        Assert.Contains("not a BioForge token index", Assert.Throws<BioForgeException>(() => new TokenStore.Reader(prefix)).Message);
        Assert.Contains("not found", Assert.Throws<BioForgeException>(() => new TokenStore.Reader(Path.Combine(dir, "missing"))).Message);
    }
}
