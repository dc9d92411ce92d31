using System.Diagnostics;
using System.Globalization;
using BioForge.Chem;
using BioForge.Distributed;
using BioForge.IO;
using BioForge.Models;
using BioForge.Models.Esm;
using BioForge.Models.Llama;
using BioForge.Runtime;

namespace BioForge.Proteins;

/// <summary>What <c>bioforge embed</c> reads and writes.</summary>
public sealed record FastaEmbeddingRequest
{
    /// <summary>A checkpoint directory: ESM-2 (every pooling and layer) or a decoder of another family (mean of its final layer).</summary>
    public required string Model { get; init; }

    /// <summary>A FASTA file (.fasta, .fa, optionally .gz); for a model that reads SMILES, a molecule file (.smi, .csv/.tsv, .sdf).</summary>
    public required string Input { get; init; }

    /// <summary>.csv, .npy or .safetensors; with several layers, one file each (emb.npy → emb.layer3.npy, emb.layer6.npy).</summary>
    public required string Output { get; init; }

    public EmbedOptions Options { get; init; } = new();
}

/// <summary>What a finished <see cref="FastaEmbedding"/> did.</summary>
/// <param name="Merged">False on ranks other than 0 of a launched job: rank 0 merged their files and reports.</param>
/// <param name="Residues">Residues this process read.</param>
public sealed record FastaEmbeddingResult(bool Merged, long Residues, TimeSpan Elapsed);

/// <summary>
/// A FASTA file through a language model into embedding files, shared over the ranks of a launcher (each rank writes
/// its part, rank 0 merges them). Opening checks the whole file and every option before the model computes anything,
/// so a bad record or option fails in seconds, not after hours of the records before it.
/// </summary>
public sealed class FastaEmbedding : IDisposable
{
    /// <summary>
    /// What ESM-2 takes with <see cref="EmbedOptions.UnknownAsUnk"/>: any printable character, an unknown one as
    /// &lt;unk&gt; (an internal stop '*', a digit), but '&lt;' and '&gt;': a file holds residues, not the special tokens
    /// a command-line sequence may spell (&lt;mask&gt; would be read as one token and labelled as six).
    /// </summary>
    private static readonly string AnyButSpecialTokens = string.Concat(Enumerable.Range('!', '~' - '!' + 1).Select(c => (char)c).Where(c => c is not ('<' or '>')));

    private readonly FastaEmbeddingRequest request;
    private readonly string? alphabet;
    private readonly IDisposable model;
    private readonly Func<IEnumerable<FastaRecord>, IProgress<int>?, IEnumerable<Embedding>> embed;
    private readonly Dictionary<string, string>[] metadata;
    private readonly Communicator world;
    private readonly long first;

    /// <summary>Records in the file.</summary>
    public long Total { get; }

    /// <summary>Records this rank embeds.</summary>
    public long Share { get; }

    /// <summary>The files written: the output, or one per layer asked for.</summary>
    public IReadOnlyList<string> Targets { get; }

    /// <summary>Columns of one representation.</summary>
    public int Dims { get; }

    /// <summary>"cpu", "cuda", as the model computes.</summary>
    public string Device { get; }

    /// <summary>Processes sharing the records (1 without a launcher).</summary>
    public int Ranks => world.Size;

    private FastaEmbedding(FastaEmbeddingRequest request, string? alphabet, long total, IDisposable model, int dims, int layers, string device,
        Func<IEnumerable<FastaRecord>, IProgress<int>?, IEnumerable<Embedding>> embed, Communicator world)
    {
        this.request = request;
        this.alphabet = alphabet;
        this.model = model;
        this.embed = embed;
        this.world = world;
        Total = total;
        Dims = dims;
        Device = device;
        var options = request.Options;
        int[] chosen = layers >= 0 ? EsmEmbedder.ResolveLayers(layers, options.Layers) : [-1]; // -1: another family's final layer
        string target = request.Output;
        Targets = chosen.Length == 1 ? [target]
            : [.. chosen.Select(l => Path.Combine(Path.GetDirectoryName(target) ?? "", $"{Path.GetFileNameWithoutExtension(target)}.layer{l}{Path.GetExtension(target)}"))];
        metadata = [.. chosen.Select(l => new Dictionary<string, string>
        {
            ["model"] = Path.GetFullPath(request.Model),
            ["pooling"] = options.Pooling.ToString().ToLowerInvariant(),
            ["layer"] = l.ToString(CultureInfo.InvariantCulture), // counted from 0, however it was asked
            ["truncate"] = options.Truncate.ToString().ToLowerInvariant(),
        })];
        (first, Share) = RankShares.Of(total, world);
    }

    /// <summary>
    /// Checks the options against the model's family and every record of the file, then loads the model where
    /// <paramref name="compute"/> says (resolved only then: a device error does not hide an input error) and takes
    /// this rank's share of the records.
    /// </summary>
    public static FastaEmbedding Open(FastaEmbeddingRequest request, Func<ComputeOptions> compute)
    {
        var options = request.Options;
        var family = ModelRegistry.Of(request.Model);
        if (family is not EsmFamily)
        {
            // Other families read the text with their own tokenizer, which refuses what it cannot hold.
            if (options.Pooling != Pooling.Mean || options.Layers is not [-1])
                throw new BioForgeException($"--pool {options.Pooling.ToString().ToLowerInvariant()} --layer {string.Join(" --layer ", options.Layers)}: a {family.ModelType} model embeds with --pool mean over its final layer only");
            if (options.Truncate != Truncation.None)
                throw new BioForgeException($"--truncate is for ESM-2 models: a {family.ModelType} model's length is in its own tokens, not residues");
            if (options.UnknownAsUnk)
                throw new BioForgeException($"--unknown-as-unk is for ESM-2 models: a {family.ModelType} model reads each sequence with its own tokenizer, which refuses what it cannot hold");
        }
        var esmConfig = family is EsmFamily ? EsmConfig.FromJson(Path.Combine(request.Model, ModelRegistry.ConfigFile)) : null;
        // A protein decoder would read a SMILES's letters as residues; a GPT-2 reads any text (SMILES GPT-2s exist).
        if (IsMoleculeFile(request.Input) && (esmConfig is not null || (family is LlamaFamily && Tokenizers.SmilesVocabulary.InModel(request.Model) is null)))
            throw new BioForgeException($"--in {request.Input}: a molecule file, and {(esmConfig is not null ? "ESM-2" : "this protein decoder")} embeds proteins (give it a FASTA file, or embed the molecules with a SMILES model)");
        string? alphabet = esmConfig is null ? null : options.UnknownAsUnk ? AnyButSpecialTokens : FastaReader.ProteinAlphabet;
        long total;
        try
        {
            total = Records(request.Input, alphabet).LongCount();
        }
        catch (BioForgeException e) when (alphabet is not null && !options.UnknownAsUnk && e.Message.Contains("invalid residue", StringComparison.Ordinal))
        {
            throw new BioForgeException($"{e.Message} (--unknown-as-unk reads letters outside ESM-2's alphabet as <unk>)");
        }
        if (esmConfig is not null && options.Truncate == Truncation.None) EsmEmbedder.RefuseTooLong(Records(request.Input, alphabet), esmConfig);
        var resolved = compute();
        string device = resolved.Device.type.ToString().ToLowerInvariant();
        SequenceEncoder? encoder = null;
        EsmCheckpoint? esm = null;
        FastaEmbedding? job = null;
        try
        {
            if (esmConfig is not null)
            {
                esm = EsmCheckpoint.Load(request.Model, resolved.Device, resolved.DType);
                var embedder = new EsmEmbedder(esm, options);
                job = new FastaEmbedding(request, alphabet, total, esm, esm.Config.HiddenSize, esm.Config.NumHiddenLayers, device, embedder.Embed, ProcessGroup.World);
            }
            else
            {
                encoder = SequenceEncoder.Load(request.Model, resolved.Device, resolved.DType);
                var embedder = new EncoderEmbedder(encoder, options.BatchTokens);
                job = new FastaEmbedding(request, alphabet, total, encoder, encoder.HiddenSize, -1, device, embedder.Embed, ProcessGroup.World);
            }
            job.RefuseOutputsOverInputs();
            return job;
        }
        catch
        {
            if (job is not null) job.Dispose();
            else
            {
                esm?.Dispose();
                encoder?.Dispose();
            }
            throw;
        }
    }

    /// <summary>Whether <paramref name="path"/> holds molecules (.smi, .csv/.tsv, .sdf; a .gz aside) rather than FASTA records.</summary>
    public static bool IsMoleculeFile(string path) => MoleculeSource.IsTable(path) || MoleculeSource.IsSdf(path) || Csv.Extension(path) is ".smi" or ".smiles";

    /// <summary>
    /// The records to embed: a FASTA file's, or a molecule file's — each SMILES as written, unchecked (the model's
    /// tokenizer refuses what it cannot spell; a MOL block as RDKit's canonical SMILES), named by the file's name column
    /// or the text after the SMILES, else by the SMILES.
    /// </summary>
    private static IEnumerable<FastaRecord> Records(string input, string? alphabet) =>
        IsMoleculeFile(input) ? MoleculeSource.Read(input).Select(m => AsRecord(input, m)) : FastaReader.Read(input, alphabet);

    private static FastaRecord AsRecord(string input, MoleculeRecord molecule)
    {
        string where = $"{input}:{molecule.Line}", smiles = molecule.Text;
        if (molecule.IsMolBlock)
        {
            if (!molecule.TryParse(out var parsed, out string? error)) throw new BioForgeException($"{where}: {error}");
            using (parsed) smiles = parsed!.ToSmiles();
        }
        return new FastaRecord(molecule.Id == molecule.Where ? smiles : molecule.Id, "", smiles, molecule.Line) { Where = where };
    }

    /// <summary>The per-layer names were not there to check with the options: none may be the input or a file of the model.</summary>
    private void RefuseOutputsOverInputs()
    {
        if (Targets.Count == 1) return;
        string modelFolder = Path.GetFullPath(request.Model) + Path.DirectorySeparatorChar;
        foreach (string written in Targets.SelectMany(t => new[] { t, EmbeddingWriters.Companion(t) }).OfType<string>())
            if (Path.GetFullPath(written) == Path.GetFullPath(request.Input) || (Path.GetFullPath(written).StartsWith(modelFolder, StringComparison.Ordinal) && File.Exists(written)))
                throw new BioForgeException($"--out {request.Output} with {Targets.Count} layers writes {written}, which the command reads: write --out elsewhere");
    }

    /// <summary>Embeds this rank's share into its files (each whole or not at all), then rank 0 merges the ranks' files.</summary>
    public FastaEmbeddingResult Run(IProgress<int>? progress = null)
    {
        var clock = Stopwatch.StartNew();
        long residues = 0;
        var pooling = request.Options.Pooling;
        // Disposed last first, so a folder the first one made is gone on failure.
        var writers = new List<IEmbeddingWriter>();
        try
        {
            for (int k = 0; k < Targets.Count; k++) writers.Add(EmbeddingWriters.Create(RankShares.PartPath(Targets[k], world), pooling, metadata[k]));
            foreach (var e in embed(Records(request.Input, alphabet).Skip((int)first).Take((int)Share), progress))
            {
                for (int k = 0; k < writers.Count; k++) writers[k].Write(writers.Count == 1 ? e : Representation(e, k, writers.Count));
                residues += e.Residues;
            }
            foreach (var writer in writers) writer.Complete();
        }
        finally
        {
            for (int k = writers.Count - 1; k >= 0; k--) writers[k].Dispose();
        }
        // Every rank passes every file's barrier; rank 0 merges.
        bool merged = false;
        for (int k = 0; k < Targets.Count; k++)
        {
            int file = k;
            merged = RankShares.Merge(world, Targets[k], parts => EmbeddingReaders.Concatenate(parts, Targets[file], pooling, metadata[file]));
        }
        return new FastaEmbeddingResult(merged, residues, clock.Elapsed);
    }

    /// <summary>Representation <paramref name="k"/> of <paramref name="count"/> side by side in each of the embedding's rows.</summary>
    private static Embedding Representation(Embedding e, int k, int count)
    {
        int width = e.Columns / count;
        var values = new float[(long)e.Rows * width];
        for (int r = 0; r < e.Rows; r++) Array.Copy(e.Values, (long)r * e.Columns + (long)k * width, values, (long)r * width, width);
        return e with { Values = values, Columns = width };
    }

    public void Dispose() => model.Dispose();
}
