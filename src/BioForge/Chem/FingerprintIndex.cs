using System.Numerics;

namespace BioForge.Chem;

/// <summary>A search hit: position in the index, the input's name (<see cref="MoleculeRecord.Id"/>), SMILES and 1-based line, and the Tanimoto similarity.</summary>
public sealed record Neighbour(int Index, string Id, string Smiles, int Line, double Similarity);

/// <summary>
/// Morgan fingerprints of a library in one contiguous word array, searched by Tanimoto similarity on all cores.
/// Only |a ∧ b| is counted per comparison: |a ∨ b| = |a| + |b| − |a ∧ b| with the bit counts stored beforehand.
/// </summary>
public sealed class FingerprintIndex
{
    private readonly ulong[] words;
    private readonly int[] bitCounts;
    private readonly string[] ids;
    private readonly string[] smiles;
    private readonly int[] lines;

    public int Radius { get; }
    public int Bits { get; }
    public int WordsPerFingerprint => Bits / 64;
    public int Count => ids.Length;
    /// <summary>Inputs that could not be parsed, with the reason, in input order.</summary>
    public IReadOnlyList<(MoleculeRecord Record, string Error)> Rejected { get; }

    private FingerprintIndex(ulong[] words, int[] bitCounts, string[] ids, string[] smiles, int[] lines, int radius, int bits, IReadOnlyList<(MoleculeRecord, string)> rejected)
    {
        this.lines = lines;
        this.words = words;
        this.bitCounts = bitCounts;
        this.ids = ids;
        this.smiles = smiles;
        Radius = radius;
        Bits = bits;
        Rejected = rejected;
    }

    public static FingerprintIndex Build(IEnumerable<MoleculeRecord> records, int radius = 2, int bits = 2048, int threads = 0, IProgress<int>? progress = null)
    {
        Fingerprints.CheckMorgan(radius, bits);
        var all = records.ToList();
        var fingerprints = new ulong[all.Count][];
        var errors = new string?[all.Count];
        var written = new string?[all.Count]; // a MOL block's SMILES; a SMILES as given
        var options = new ParallelOptions { MaxDegreeOfParallelism = threads > 0 ? threads : Environment.ProcessorCount };
        Parallel.For(0, all.Count, options, i =>
        {
            if (all[i].TryParse(out var molecule, out string? error))
                using (molecule)
                {
                    fingerprints[i] = Fingerprints.Morgan(molecule!, radius, bits);
                    written[i] = all[i].IsMolBlock ? molecule!.ToSmiles() : all[i].Text;
                }
            else
                errors[i] = error ?? "invalid";
            if (i % 1024 == 0) progress?.Report(1024);
        });
        int w = bits / 64, kept = fingerprints.Count(f => f is not null);
        var flat = new ulong[(long)kept * w];
        var counts = new int[kept];
        var names = new string[kept];
        var texts = new string[kept];
        var lines = new int[kept];
        var rejected = new List<(MoleculeRecord, string)>();
        int n = 0;
        for (int i = 0; i < all.Count; i++)
        {
            if (fingerprints[i] is null)
            {
                rejected.Add((all[i], errors[i]!));
                continue;
            }
            fingerprints[i].CopyTo(flat, (long)n * w);
            counts[n] = Fingerprints.PopCount(fingerprints[i]);
            lines[n] = all[i].Line;
            names[n] = all[i].Id;
            texts[n++] = written[i]!;
        }
        return new FingerprintIndex(flat, counts, names, texts, lines, radius, bits, rejected);
    }

    public ulong[] Fingerprint(Molecule molecule) => Fingerprints.Morgan(molecule, Radius, Bits);

    public ReadOnlySpan<ulong> this[int index] => words.AsSpan(index * WordsPerFingerprint, WordsPerFingerprint);

    /// <summary>The <paramref name="k"/> most similar entries, best first (ties by index).</summary>
    public IReadOnlyList<Neighbour> Search(ReadOnlySpan<ulong> query, int k, int threads = 0)
    {
        if (query.Length != WordsPerFingerprint) throw new ArgumentException("query fingerprint has the wrong length");
        if (k < 1) throw new BioForgeException($"--top {k}: must be at least 1");
        k = Math.Min(k, Math.Max(1, Count)); // the heaps are sized by k: --top 2147483647 asks for everything, not 2^31 slots
        int parts = Math.Max(1, threads > 0 ? threads : Environment.ProcessorCount);
        var q = query.ToArray();
        int qBits = Fingerprints.PopCount(q);
        var partial = new List<(double, int)>[parts];
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, p =>
        {
            long start = (long)Count * p / parts, end = (long)Count * (p + 1) / parts;
            partial[p] = TopK(q, qBits, (int)start, (int)end, k);
        });
        return partial.SelectMany(x => x).OrderByDescending(x => x.Item1).ThenBy(x => x.Item2).Take(k)
            .Select(x => new Neighbour(x.Item2, ids[x.Item2], smiles[x.Item2], lines[x.Item2], x.Item1)).ToList();
    }

    private static double Tanimoto(ReadOnlySpan<ulong> fp, int fpBits, ulong[] query, int queryBits)
    {
        int both = 0;
        for (int j = 0; j < fp.Length; j++) both += BitOperations.PopCount(fp[j] & query[j]);
        int either = fpBits + queryBits - both;
        return either == 0 ? 1 : (double)both / either; // two empty fingerprints, as RDKit has it
    }

    // One query reads every stored fingerprint once: on the 2-core machines this loop runs at memory bandwidth.
    private List<(double Similarity, int Index)> TopK(ulong[] query, int queryBits, int start, int end, int k)
    {
        var heap = new PriorityQueue<int, (double, int)>(k + 1, Comparer<(double Sim, int Index)>.Create((a, b) =>
            a.Sim != b.Sim ? a.Sim.CompareTo(b.Sim) : b.Index.CompareTo(a.Index))); // worst on top
        int w = WordsPerFingerprint;
        var all = words.AsSpan();
        for (int i = start; i < end; i++)
        {
            double similarity = Tanimoto(all.Slice(i * w, w), bitCounts[i], query, queryBits);
            if (heap.Count < k) heap.Enqueue(i, (similarity, i));
            else if (heap.TryPeek(out _, out var worst) && similarity > worst.Item1) heap.EnqueueDequeue(i, (similarity, i));
        }
        var result = new List<(double, int)>(heap.Count);
        while (heap.TryDequeue(out int index, out var priority)) result.Add((priority.Item1, index));
        return result;
    }
}
