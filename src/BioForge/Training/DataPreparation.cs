using System.Text.Json;
using BioForge.Chem;
using BioForge.IO;
using BioForge.Runtime;
using BioForge.Tokenizers;

namespace BioForge.Training;

public enum CorpusKind { Protein, Smiles }

/// <summary>Counts of one split of a prepared corpus.</summary>
public sealed record SplitSummary(long Documents, long Tokens, int MaxLength)
{
    public double MeanLength => Documents == 0 ? 0 : (double)Tokens / Documents;
}

/// <param name="Skipped">Molecules left out because a token of theirs is not in a given vocabulary (<c>--vocab</c>), with the first (file:line, token).</param>
/// <param name="Clustered">With a cluster file: how many sequences it lists (the others are clusters of their own).</param>
/// <param name="Unreadable">SMILES left out because RDKit cannot read them, with the first (file:line, SMILES, why);
/// null when not checked (a protein corpus, or no RDKit on this machine).</param>
public sealed record PreparedCorpus(string Directory, CorpusKind Kind, int VocabularySize, SplitSummary Train, SplitSummary Validation, long Skipped = 0, long? Clustered = null,
    long? Unreadable = null, string? FirstUnreadable = null)
{
    public string? FirstUnknown { get; init; }
}

/// <summary>
/// Tokenizes a FASTA (ESM alphabet) or SMILES file once into train/validation token stores in one directory. Which
/// split a document goes to is a pure function of (seed, its text) or (seed, its cluster), so a preparation is
/// reproducible and copies of a document are never on both sides.
/// </summary>
public static class DataPreparation
{
    public static PreparedCorpus Prepare(string input, CorpusKind kind, string directory, double validationFraction, ulong seed,
        string? smilesColumn = null, IProgress<int>? progress = null) =>
        Prepare([input], kind, directory, validationFraction, seed, smilesColumn, progress);

    /// <summary>
    /// Several input files form one corpus, read in the order given. With <paramref name="clusterFile"/> (proteins),
    /// whole clusters go to train or validation (no near-duplicate leaks into validation) and each training
    /// document's cluster is written to <c>train.clusters</c> for cluster sampling. With <paramref name="vocabulary"/>
    /// (SMILES: a model's or corpus's <c>vocab.json</c>, or its folder) the corpus keeps that vocabulary, so a model
    /// trained on it can continue on this corpus (<c>model.init</c>); molecules with a token outside it are left out
    /// and counted. SMILES that do not read as molecules (RDKit's parse and sanitization, at most
    /// <see cref="Molecule.MaxSmilesLength"/> characters) or as SMILES tokens are left out and counted too (a model would
    /// learn to write them); the others' splits do not move (a document's split is keyed by its own text), and the
    /// vocabulary is still built from every line the tokenizer splits (the same vocabulary with or without the rest).
    /// </summary>
    public static PreparedCorpus Prepare(IReadOnlyList<string> inputs, CorpusKind kind, string directory, double validationFraction, ulong seed,
        string? smilesColumn = null, IProgress<int>? progress = null, string? clusterFile = null, string? vocabulary = null)
    {
        if (clusterFile is not null && kind != CorpusKind.Protein) throw new BioForgeException("--clusters applies to protein (FASTA) corpora");
        if (vocabulary is not null && kind != CorpusKind.Smiles) throw new BioForgeException("--vocab applies to SMILES corpora (proteins always use the ESM-2 alphabet)");
        var given = vocabulary is null ? null : LoadVocabulary(vocabulary);
        var clusters = clusterFile is null ? null : Clusters.Read(clusterFile);
        if (inputs.Count == 0) throw new BioForgeException("no input corpus given");
        // The same file twice doubles its documents (and the second copies land in either split).
        if (inputs.GroupBy(Path.GetFullPath).FirstOrDefault(g => g.Count() > 1) is { } twice) throw new BioForgeException($"--in {twice.First()} is given twice");
        if (smilesColumn is not null && kind != CorpusKind.Smiles) throw new BioForgeException($"--smiles-column {smilesColumn} applies to SMILES corpora, not to FASTA");
        if (!(validationFraction is >= 0 and < 1)) throw new BioForgeException($"--validation-fraction {validationFraction}: must be in [0, 1)");
        // A corpus prepared over another would change under the runs trained on it (their splits included).
        RunDirectory.RequireNew(directory, "--out");
        if (!Directory.Exists(directory))
        {
            // Written into a hidden sibling and renamed into place whole: a bad record found halfway, or Ctrl+C, leaves nothing.
            PreparedCorpus corpus = null!;
            RunDirectory.WriteWhole(directory, "--out", written => corpus = PrepareInto(inputs, kind, written.Path, validationFraction, seed, smilesColumn, progress, clusters, given));
            return corpus with { Directory = directory };
        }
        // An empty folder that is there (the working directory, a link to scratch space, a mount) is written into, not
        // replaced (a rename would put a new folder in the link's place, or fail on the mount after all the work); what
        // this call writes goes again if the preparation fails.
        try
        {
            return PrepareInto(inputs, kind, directory, validationFraction, seed, smilesColumn, progress, clusters, given);
        }
        catch
        {
            RunDirectory.Undo(directory, created: null);
            throw;
        }
    }

    private static PreparedCorpus PrepareInto(IReadOnlyList<string> inputs, CorpusKind kind, string directory, double validationFraction, ulong seed,
        string? smilesColumn, IProgress<int>? progress, Clusters? clusters, SmilesVocabulary? given)
    {
        long skipped = 0;
        string? firstUnknown = null;
        // Without RDKit (a GPU node built without the shim) the corpus is prepared unchecked, and says so.
        long? unreadable = kind == CorpusKind.Smiles && Molecule.Unavailable() is null ? 0 : null;
        string? firstUnreadable = null;
        var trainClusters = new List<int>();
        IEnumerable<(int[]? Tokens, int Cluster, string Key)> documents; // null tokens: a document left out; Key: what the split is keyed by
        int vocabularySize;
        Action saveVocabulary; // written last, so a failed preparation leaves no partial corpus behind
        if (kind == CorpusKind.Protein)
        {
            var tokenizer = EsmTokenizer.Esm2;
            documents = inputs.SelectMany(input => FastaReader.Read(input)
                .Select(r => ((int[]?)Encode(() => tokenizer.Encode(Ungapped(r, input)), input, r.Line), clusters?.Assign(r.Id) ?? -1,
                    r.Sequence.ToUpperInvariant()))); // keyed as the tokenizer reads it: a lower-case copy is the same protein
            vocabularySize = tokenizer.Vocabulary.Count;
            saveVocabulary = () => AtomicFile.WriteText(Path.Combine(directory, "vocab.txt"), string.Join("\n", tokenizer.Vocabulary) + "\n");
        }
        else
        {
            // A named column is that of the tables among the inputs (.smi files beside them have none); with no table, a mistake.
            if (smilesColumn is not null && !inputs.Any(MoleculeSource.IsTable))
                throw new BioForgeException($"--smiles-column {smilesColumn}: no input is a CSV/TSV table ({string.Join(", ", inputs)})");
            IEnumerable<MoleculeRecord> Molecules(string input) => MoleculeSource.Read(input, MoleculeSource.IsTable(input) ? smilesColumn : null);
            // Where RDKit checks the corpus, a line the tokenizer cannot split (a valid ring bond %(100), a typo such as
            // "CC[Xe") is left out and counted below, not the end of the whole preparation.
            bool leaveOut = unreadable is not null;
            var vocabulary = given ?? SmilesVocabulary.Build(inputs.SelectMany(input => Molecules(input)
                .Select(r => Tokenized(r, input, leaveOut, SplitOrThrow, out _)).OfType<string>()));
            documents = inputs.SelectMany(input => Molecules(input).Select(r =>
            {
                // Keyed by the molecule, not its spelling: two spellings of one molecule (merged sources, a kekulized
                // copy) fall on one side. Without RDKit, by the text as written.
                string key = r.Text;
                string? why = null;
                int[]? tokens = leaveOut && !Canonical(r.Text, out key, out why) ? null : Tokenized(r, input, leaveOut, vocabulary.Encode, out why);
                if (tokens is null)
                {
                    unreadable++;
                    firstUnreadable ??= $"{input}:{r.Line}: '{Spelling.Excerpt(r.Text)}' ({why})";
                    return ((int[]?)null, -1, r.Text);
                }
                if (given is null || Array.IndexOf(tokens, SmilesVocabulary.UnkId) < 0) return ((int[]?)tokens, -1, key);
                // Left out; the others keep the split they have without --vocab (keyed by their own molecule).
                skipped++;
                firstUnknown ??= $"{input}:{r.Line}: '{SmilesTokenizer.Split(r.Text).First(t => vocabulary.Encode(t).Contains(SmilesVocabulary.UnkId))}'";
                return (null, -1, key);
            }));
            vocabularySize = vocabulary.Count;
            saveVocabulary = () => vocabulary.Save(Path.Combine(directory, SmilesVocabulary.FileName));
        }

        var listedCopies = clusters is null ? null : ListedCopies(inputs, clusters);
        var train = new Counter();
        var validation = new Counter();
        using (var trainWriter = new TokenStore.Writer(Path.Combine(directory, "train"), vocabularySize))
        using (var validationWriter = new TokenStore.Writer(Path.Combine(directory, "valid"), vocabularySize))
        {
            foreach (var (document, cluster, key) in documents)
            {
                progress?.Report(1);
                if (document is null) continue;
                // Keyed by the cluster, or else by the document's text (a molecule's canonical SMILES): copies of a
                // sequence (894 groups in the shipped protein corpus) fall on one side, where keys by position put 5 % of
                // validation in training too; and the text, not its token ids, so another vocabulary (--vocab) deals the
                // same split.
                // A sequence the cluster file does not list is a cluster of its own, so copies of it under other ids
                // would be dealt apart: it goes with the cluster of a listed copy, else is keyed by its content.
                long splitKey = cluster >= 0 && clusters!.IsListed(cluster) ? ClusterKey(cluster)
                    : listedCopies is not null && listedCopies.TryGetValue(ContentKey(key), out int listed) ? ClusterKey(listed) : ContentKey(key);
                bool toValidation = StatelessRandom.Unit(seed, splitKey) < validationFraction;
                (toValidation ? validationWriter : trainWriter).Add(document);
                (toValidation ? validation : train).Add(document.Length);
                if (!toValidation) trainClusters.Add(cluster);
            }
            trainWriter.Complete();
            validationWriter.Complete();
        }
        if (train.Summary().Documents + validation.Summary().Documents == 0 && (skipped > 0 || unreadable > 0))
        {
            var reasons = new List<string>();
            if (unreadable > 0) reasons.Add($"{unreadable:N0} do not read as molecules or as SMILES tokens (the first: {firstUnreadable})");
            if (skipped > 0) reasons.Add($"{skipped:N0} cannot be written with the vocabulary of --vocab (the first unknown token: {firstUnknown})");
            throw new BioForgeException($"no molecule is left to train on: {string.Join("; ", reasons)}");
        }
        // A cluster file of other ids (another corpus, or ids not the first word of the headers) would sample as if there were none.
        if (clusters is { Listed: 0 })
            throw new BioForgeException($"--clusters: none of the {train.Summary().Documents + validation.Summary().Documents:N0} sequences is listed in it (its ids are the first word of each FASTA header)");
        if (clusters is not null) Clusters.WriteAssignments(Path.Combine(directory, "train"), trainClusters);
        saveVocabulary();
        var corpus = new PreparedCorpus(directory, kind, vocabularySize, train.Summary(), validation.Summary(), skipped, clusters?.Listed, unreadable, firstUnreadable)
        {
            FirstUnknown = firstUnknown,
        };
        AtomicFile.WriteText(Path.Combine(directory, "summary.json"), JsonSerializer.Serialize(new
        {
            inputs = inputs.Select(Path.GetFullPath).ToArray(),
            kind = kind.ToString().ToLowerInvariant(),
            vocabulary_size = vocabularySize,
            validation_fraction = validationFraction,
            seed,
            vocabulary = given is null ? "built from the corpus" : "given (--vocab)",
            skipped_outside_vocabulary = skipped,
            skipped_unreadable = unreadable, // null: not checked (no RDKit)
            train = corpus.Train,
            validation = corpus.Validation,
        }, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }) + "\n");
        return corpus;
    }

    /// <summary>
    /// A record's sequence, refused when it holds an alignment gap: ESM-2's alphabet has '-' and '.', so an aligned FASTA
    /// (or an a3m, whose insertions are lower case) would train as sequences with gaps in them, without a word.
    /// </summary>
    private static string Ungapped(FastaRecord record, string input)
    {
        int gap = record.Sequence.AsSpan().IndexOfAny('-', '.');
        return gap < 0 ? record.Sequence
            : throw new BioForgeException($"{input}:{record.Line}: record '{record.Id}' holds an alignment gap ('{record.Sequence[gap]}' at position {gap + 1}): "
                + "prepare sequences, not an alignment (remove the gaps from the sequence lines first)");
    }

    private static long ClusterKey(int cluster) => (1L << 40) + cluster;

    /// <summary>
    /// For the sequences a cluster file does not list, the cluster of a listed sequence with the same text, keyed by
    /// that text (<see cref="ContentKey"/>): read ahead, as a copy may come before the sequence it copies. Two passes
    /// over the FASTA files, so only the unlisted sequences' keys are held (few, for a cluster file of the whole corpus).
    /// </summary>
    private static Dictionary<long, int> ListedCopies(IReadOnlyList<string> inputs, Clusters clusters)
    {
        IEnumerable<FastaRecord> Records() => inputs.SelectMany(input => FastaReader.Read(input));
        var unlisted = Records().Where(r => clusters.ListedClusterOf(r.Id) is null).Select(r => ContentKey(r.Sequence.ToUpperInvariant())).ToHashSet();
        var copies = new Dictionary<long, int>();
        if (unlisted.Count == 0) return copies;
        foreach (var record in Records())
            if (clusters.ListedClusterOf(record.Id) is int cluster && ContentKey(record.Sequence.ToUpperInvariant()) is var key && unlisted.Contains(key))
                copies.TryAdd(key, cluster);
        return copies;
    }

    /// <summary>A 62-bit key of a document's text (apart from the cluster keys above 2^40 only by chance, which is harmless).</summary>
    internal static long ContentKey(string text)
    {
        ulong h = (ulong)text.Length;
        foreach (char c in text) h = StatelessRandom.Hash(h, c);
        return (long)(h >> 2);
    }

    private static SmilesVocabulary LoadVocabulary(string path)
    {
        if (!Directory.Exists(path))
            return File.Exists(path) ? SmilesVocabulary.Load(path) : throw new BioForgeException($"--vocab {path}: no such file or directory");
        return SmilesVocabulary.InModel(path)
            ?? throw new BioForgeException($"--vocab {path}: no SMILES {SmilesVocabulary.FileName} or {SmilesVocabulary.HuggingFaceTokenizerFile} there (a SMILES model's or corpus's folder, or its {SmilesVocabulary.FileName}; a byte-level BPE's vocabulary is not one)");
    }

    /// <summary>Whether RDKit reads the SMILES, and its canonical form (the text itself when it does not).</summary>
    private static bool Canonical(string smiles, out string canonical, out string? why)
    {
        canonical = smiles;
        if (!Molecule.TryFromSmiles(smiles, out var molecule, out why)) return false;
        using (molecule) canonical = molecule!.ToSmiles();
        return true;
    }

    private static int[] Encode(Func<int[]> encode, string path, int line)
    {
        try
        {
            return encode();
        }
        catch (BioForgeException e)
        {
            throw new BioForgeException($"{path}:{line}: {e.Message}");
        }
    }

    /// <summary>The SMILES itself, once the tokenizer has split it (the vocabulary is built from the texts).</summary>
    private static string SplitOrThrow(string smiles)
    {
        SmilesTokenizer.Split(smiles);
        return smiles;
    }

    /// <summary>
    /// The record's SMILES through <paramref name="tokenize"/>; null (with <paramref name="why"/>) when the SMILES
    /// tokenizer cannot split it and <paramref name="leaveOut"/>, else an error naming the line. An SDF or an empty
    /// line is always an error.
    /// </summary>
    private static T? Tokenized<T>(MoleculeRecord record, string path, bool leaveOut, Func<string, T?> tokenize, out string? why) where T : class
    {
        if (record.IsMolBlock) throw new BioForgeException($"{path}: SMILES corpora must be .smi or .csv, not SDF");
        // It would train as a molecule of no atoms: <bos><eos>.
        if (string.IsNullOrWhiteSpace(record.Text)) throw new BioForgeException($"{path}:{record.Line}: empty SMILES");
        why = null;
        try
        {
            return tokenize(record.Text);
        }
        catch (BioForgeException e) when (leaveOut)
        {
            why = e.Message;
            return null;
        }
        catch (BioForgeException e)
        {
            throw new BioForgeException($"{path}:{record.Line}: {e.Message}");
        }
    }

    private sealed class Counter
    {
        private long documents, tokens;
        private int max;

        public void Add(int length)
        {
            documents++;
            tokens += length;
            max = Math.Max(max, length);
        }

        public SplitSummary Summary() => new(documents, tokens, max);
    }
}
