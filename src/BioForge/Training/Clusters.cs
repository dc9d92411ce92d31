using BioForge.IO;
using BioForge.Runtime;

namespace BioForge.Training;

/// <summary>
/// Sequence clusters for UniRef-style sampling (ESM-2 trains on UniRef50 clusters, drawing a UniRef90 member each
/// time): each epoch visits every cluster once, through one member chosen by (seed, epoch, cluster).
/// Read from a two-column TSV as MMseqs2's <c>createtsv</c> writes it (representative, member; ids are the first word
/// of the FASTA header); sequences the file does not list form clusters of their own.
/// </summary>
internal sealed class Clusters
{
    public const string FileSuffix = ".clusters";
    private static readonly byte[] Magic = "BFCLUST1"u8.ToArray();
    // Two sequence ids a line: anything longer is not a cluster file.
    private const int MaxLineLength = 100_000;

    private readonly Dictionary<string, int> clusterOfMember = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> clusterOfRepresentative = new(StringComparer.Ordinal);

    public int Count => clusterOfRepresentative.Count;

    /// <summary>Reads a representative→member TSV (plain or gzip); a member listed under two representatives is an error.</summary>
    public static Clusters Read(string path)
    {
        if (!File.Exists(path)) throw new BioForgeException($"{path}: cluster file not found");
        var clusters = new Clusters();
        int line = 0;
        using var reader = LineReader.Open(path, MaxLineLength);
        for (string? text = reader.ReadLine(); text is not null; text = reader.ReadLine())
        {
            line++;
            if (text.Length == 0 || text[0] == '#') continue;
            var fields = text.Split('\t');
            if (fields.Length != 2 || fields[0].Length == 0 || fields[1].Length == 0)
                throw new BioForgeException($"{path}:{line}: expected 'representative<TAB>member' (MMseqs2 createtsv), got {fields.Length} field(s)");
            int cluster = clusters.ClusterOf(fields[0], representative: true);
            if (clusters.clusterOfMember.TryGetValue(fields[1], out int existing) && existing != cluster)
                throw new BioForgeException($"{path}:{line}: '{fields[1]}' is already a member of another cluster");
            clusters.clusterOfMember[fields[1]] = cluster;
        }
        if (clusters.Count == 0) throw new BioForgeException($"{path}: no clusters");
        clusters.listedClusters = clusters.Count;
        return clusters;
    }

    private int listedClusters;

    /// <summary>How many of the sequences assigned so far the file lists (the others are clusters of their own).</summary>
    public long Listed { get; private set; }

    /// <summary>True for a cluster the file lists (not one an unlisted sequence started).</summary>
    public bool IsListed(int cluster) => cluster < listedClusters;

    /// <summary>The listed cluster of a sequence id, or null for an id the file does not list (assigns nothing).</summary>
    public int? ListedClusterOf(string id) =>
        (clusterOfMember.TryGetValue(id, out int cluster) || clusterOfRepresentative.TryGetValue(id, out cluster)) && cluster < listedClusters ? cluster : null;

    /// <summary>The cluster of a sequence id; an id the file does not list starts a cluster of its own.</summary>
    public int Assign(string id)
    {
        int cluster = clusterOfMember.TryGetValue(id, out int member) ? member : ClusterOf(id, representative: false);
        if (cluster < listedClusters) Listed++;
        return cluster;
    }

    private int ClusterOf(string id, bool representative)
    {
        if (clusterOfRepresentative.TryGetValue(id, out int cluster)) return cluster;
        cluster = clusterOfRepresentative.Count;
        clusterOfRepresentative[id] = cluster;
        if (!representative) clusterOfMember[id] = cluster;
        return cluster;
    }

    /// <summary>Writes the cluster index of each document of a split next to its token store (PREFIX.clusters).</summary>
    public static void WriteAssignments(string prefix, IReadOnlyList<int> clusterOfDocument) =>
        AtomicFile.Write(prefix + FileSuffix, stream =>
        {
            using var writer = new BinaryWriter(stream, System.Text.Encoding.ASCII, leaveOpen: true);
            writer.Write(Magic);
            writer.Write(clusterOfDocument.Count);
            foreach (int c in clusterOfDocument) writer.Write(c);
        });

    /// <summary>The documents of each cluster of a split, in document order.</summary>
    public static int[][] ReadMembers(string prefix, int documents)
    {
        string path = prefix + FileSuffix;
        if (!File.Exists(path)) throw new BioForgeException($"{path}: no cluster assignments (prepare the corpus with --clusters)");
        using var reader = new BinaryReader(File.OpenRead(path));
        if (reader.BaseStream.Length < 12 || !reader.ReadBytes(8).SequenceEqual(Magic))
            throw new BioForgeException($"{path}: not a BioForge cluster assignment file");
        int count = reader.ReadInt32();
        if (count != documents || reader.BaseStream.Length != 12 + 4L * count)
            throw new BioForgeException($"{path}: assigns {count} documents but the split has {documents}");
        var members = new Dictionary<int, List<int>>();
        for (int doc = 0; doc < count; doc++)
        {
            int cluster = reader.ReadInt32();
            if (!members.TryGetValue(cluster, out var list)) members[cluster] = list = [];
            list.Add(doc);
        }
        return members.OrderBy(kv => kv.Key).Select(kv => kv.Value.ToArray()).ToArray();
    }

    /// <summary>One member of each cluster for <paramref name="epoch"/>, in cluster order.</summary>
    public static int[] Sample(int[][] members, ulong seed, int epoch) =>
        members.Select((docs, c) => docs[(int)(StatelessRandom.Hash(seed, epoch, c, 13) % (ulong)docs.Length)]).ToArray();
}
