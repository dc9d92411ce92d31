using BioForge.IO;
using BioForge.Runtime;

namespace BioForge.Training;

/// <summary>A token sequence fed to the model; <see cref="Id"/> keys its stateless masking draws.</summary>
public sealed record TokenSequence(long Id, int[] Tokens);

/// <summary>Where a run stands in its data: the next batch to read is batch <see cref="Batch"/> of epoch <see cref="Epoch"/>.</summary>
public sealed record StreamPosition(int Epoch, int Batch);

/// <summary>
/// The batches of a training run over a token store. Batch k of epoch e is a pure function of (seed, e, k), so a run
/// resumes mid-epoch from a <see cref="StreamPosition"/> alone.
/// <list type="bullet">
/// <item>Without packing, documents are grouped under a token budget with length bucketing
/// (<see cref="TokenBudgetBatches"/>); documents longer than the maximum length are cropped — for the masked objective
/// a random window of residues framed again by the document's <c>&lt;cls&gt;</c> and <c>&lt;eos&gt;</c> (as BioNeMo's
/// ESM-2 dataset crops, and as inference always frames a sequence), for the causal one at the start (the begin token stays).</item>
/// <item>With packing (causal objective), the shuffled documents are concatenated and cut into rows of maximum length + 1
/// tokens (inputs and shifted labels), so no position is padding.</item>
/// </list>
/// </summary>
internal sealed class TrainingStream
{
    private readonly TokenStore.Reader store;
    private readonly int maxLength;
    private readonly int tokensPerBatch;
    private readonly bool packing;
    private readonly bool randomCrop;
    private readonly ulong seed;
    private readonly int[] croppedLengths;
    private readonly int[][]? clusterMembers;
    private int cachedEpoch = -1;
    private IReadOnlyList<int[]> cachedBatches = [];
    private int[] cachedOrder = [];
    private long[] cachedStarts = [];

    /// <param name="clusterMembers">The documents of each cluster: each epoch then holds one member per cluster (<see cref="Clusters"/>).</param>
    public TrainingStream(TokenStore.Reader store, int maxLength, int tokensPerBatch, bool packing, bool randomCrop, ulong seed,
        int[][]? clusterMembers = null)
    {
        if (store.Count == 0) throw new BioForgeException("the training split has no documents");
        if (maxLength < 2) throw new BioForgeException($"data.max_length must be at least 2 (got {maxLength})");
        if (tokensPerBatch < maxLength)
            throw new BioForgeException($"data.tokens_per_batch ({tokensPerBatch}) must be at least data.max_length ({maxLength})");
        this.store = store;
        this.maxLength = maxLength;
        this.tokensPerBatch = tokensPerBatch;
        this.packing = packing;
        this.randomCrop = randomCrop;
        this.seed = seed;
        this.clusterMembers = clusterMembers;
        croppedLengths = Enumerable.Range(0, store.Count).Select(i => Math.Min(store.Length(i), maxLength)).ToArray();
        if (packing && store.TotalTokens < maxLength + 1)
            throw new BioForgeException($"packing needs more than data.max_length ({maxLength}) tokens; the training split has {store.TotalTokens}");
    }

    /// <summary>The sequences of batch <paramref name="batch"/> of <paramref name="epoch"/>, or null past the end of the epoch.</summary>
    public IReadOnlyList<TokenSequence>? Read(int epoch, int batch)
    {
        Plan(epoch);
        if (packing)
        {
            int rowsPerBatch = tokensPerBatch / maxLength;
            long rows = (cachedStarts[^1] - 1) / maxLength;
            long first = (long)batch * rowsPerBatch;
            if (first >= rows) return null;
            return Enumerable.Range(0, (int)Math.Min(rowsPerBatch, rows - first))
                .Select(r => new TokenSequence(first + r, PackedRow(first + r)))
                .ToList();
        }
        if (batch >= cachedBatches.Count) return null;
        return cachedBatches[batch].Select(doc => new TokenSequence(doc, Crop(doc, epoch))).ToList();
    }

    /// <summary>The position after reading one batch at <paramref name="position"/>, moving to the next epoch at the end of one.</summary>
    public (IReadOnlyList<TokenSequence> Batch, StreamPosition Next) Next(StreamPosition position)
    {
        var batch = Read(position.Epoch, position.Batch);
        if (batch is not null) return (batch, position with { Batch = position.Batch + 1 });
        var first = Read(position.Epoch + 1, 0) ?? throw new BioForgeException("an epoch of the training split yields no batch");
        return (first, new StreamPosition(position.Epoch + 1, 1));
    }

    private void Plan(int epoch)
    {
        if (epoch == cachedEpoch) return;
        int[] documents = clusterMembers is null ? [.. Enumerable.Range(0, store.Count)] : Clusters.Sample(clusterMembers, seed, epoch);
        if (packing)
        {
            cachedOrder = [.. TokenBudgetBatches.Permutation(documents.Length, seed, epoch, stream: 0).Select(i => documents[i])];
            cachedStarts = new long[cachedOrder.Length + 1];
            for (int i = 0; i < cachedOrder.Length; i++) cachedStarts[i + 1] = cachedStarts[i] + store.Length(cachedOrder[i]);
        }
        else
        {
            var lengths = documents.Select(d => croppedLengths[d]).ToArray();
            cachedBatches = [.. TokenBudgetBatches.ForEpoch(lengths, tokensPerBatch, seed, epoch).Select(b => b.Select(i => documents[i]).ToArray())];
        }
        cachedEpoch = epoch;
    }

    private int[] Crop(int doc, int epoch)
    {
        int length = store.Length(doc);
        if (length <= maxLength) return store.Document(doc);
        if (!randomCrop) return store.Document(doc)[..maxLength];
        return Framed(store.Document(doc), maxLength, (int)(StatelessRandom.Hash(seed, epoch, doc, CropKey) % (ulong)(length - maxLength + 1)));
    }

    /// <summary>
    /// The crop's own key: masking draws with keys 3 · position + 0…2, and the crop drew with 7, masking's draw for
    /// position 2, so the crop's start and that position's masking were one random number.
    /// </summary>
    private const long CropKey = -1;

    /// <summary>The first and last token of <paramref name="document"/> around its residues from <paramref name="start"/>: <paramref name="maxLength"/> tokens.</summary>
    private static int[] Framed(int[] document, int maxLength, int start)
    {
        var window = new int[maxLength];
        window[0] = document[0];
        Array.Copy(document, 1 + start, window, 1, maxLength - 2);
        window[^1] = document[^1];
        return window;
    }

    /// <summary>Tokens [row · L, row · L + L + 1) of the epoch's concatenated documents.</summary>
    private int[] PackedRow(long row)
    {
        var result = new int[maxLength + 1];
        long position = row * maxLength;
        int filled = 0;
        int index = Array.BinarySearch(cachedStarts, position);
        if (index < 0) index = ~index - 1;
        while (filled < result.Length)
        {
            var document = store.Document(cachedOrder[index]);
            int offset = (int)(position + filled - cachedStarts[index]);
            int take = Math.Min(document.Length - offset, result.Length - filled);
            Array.Copy(document, offset, result, filled, take);
            filled += take;
            index++;
        }
        return result;
    }

    /// <summary>Validation batches: every document once, cropped at the start (its residues framed again, <paramref name="framed"/>), in a fixed order.</summary>
    public static IEnumerable<IReadOnlyList<TokenSequence>> Validation(TokenStore.Reader store, int maxLength, int tokensPerBatch, ulong seed, bool framed)
    {
        var lengths = Enumerable.Range(0, store.Count).Select(i => Math.Min(store.Length(i), maxLength)).ToArray();
        foreach (var batch in TokenBudgetBatches.ForEpoch(lengths, tokensPerBatch, seed, epoch: -1))
            yield return batch.Select(doc =>
            {
                var tokens = store.Document(doc);
                return new TokenSequence(doc, tokens.Length <= maxLength ? tokens : framed ? Framed(tokens, maxLength, 0) : tokens[..maxLength]);
            }).ToList();
    }
}
