using BioForge.Chem;
using BioForge.Discovery;
using BioForge.Generation;
using BioForge.Models;
using BioForge.Models.Esm;
using BioForge.Models.Gpt2;
using BioForge.Models.Llama;
using BioForge.Runtime;
using static TorchSharp.torch;

namespace BioForge.Server;

/// <summary>What a served model reads and what the routes can do with it.</summary>
/// <remarks>
/// <c>Protein</c>: ESM-2 (embeddings and the protein routes); <c>Text</c>: a GPT-2 checkpoint reading text with its own
/// tokenizer (ProtGPT2, SMILES GPT-2s); <c>ProteinDecoder</c>: a Llama-style protein language model (embeddings and
/// completions, sequences without special tokens).
/// </remarks>
internal enum ModelKind { Protein, Molecule, Affinity, Text, ProteinDecoder }

/// <summary>A language model served for embeddings (and, for ESM-2, the protein routes), with its own batcher.</summary>
internal sealed class LanguageModel : IDisposable
{
    private readonly SequenceEncoder encoder;
    private readonly Device tensors;

    internal LanguageModel(string name, string directory, ModelKind kind, SequenceEncoder encoder, int maxTokens, EsmCheckpoint? esm, LlamaCheckpoint? llama,
        Device tensors, BatchingOptions batching, DeviceWorker device, ServerMetrics metrics, DecodeService? completions = null)
    {
        Completions = completions;
        Llama = llama;
        this.tensors = tensors;
        Name = name;
        Directory = directory;
        Kind = kind;
        this.encoder = encoder;
        MaxTokens = maxTokens;
        Esm = esm;
        Embeddings = new DynamicBatcher<EncodedSequence, float[]>(name, batching, e => e.Ids.Length, Embed, device, metrics);
    }

    public string Name { get; }
    public string Directory { get; }
    public ModelKind Kind { get; }
    public int HiddenSize => encoder.HiddenSize;

    /// <summary>Tokens of one input, start and end tokens included.</summary>
    public int MaxTokens { get; }

    /// <summary>The ESM-2 checkpoint for fill-mask, contacts and variant scores; null for a SMILES model.</summary>
    public EsmCheckpoint? Esm { get; }

    /// <summary>The SMILES decoder for sampling and /generate (its prior); null for a protein model.</summary>
    public LlamaCheckpoint? Llama { get; }

    public DynamicBatcher<EncodedSequence, float[]> Embeddings { get; }

    /// <summary>Sampling for <c>/v1/completions</c>; null for a model that does not generate.</summary>
    public DecodeService? Completions { get; }

    /// <summary>
    /// NIM's truncation of a protein sequence longer than the model takes: <c>END</c> keeps its start, <c>START</c> its
    /// end; <c>NONE</c> (and SMILES, which cannot be cut and stay molecules) leave it to <see cref="Encode"/> to refuse.
    /// </summary>
    public string Truncate(string text, string mode)
    {
        int max = MaxTokens - 2;
        if (Kind is not (ModelKind.Protein or ModelKind.ProteinDecoder) || mode == "NONE" || text.Length <= max) return text;
        // Counted in residues as the tokenizer reads them: a special token written in the text (<mask>) is one, and whole;
        // a final stop ('*') is none (the tokenizer leaves it out).
        string residues = text.EndsWith('*') ? text[..^1] : text;
        var starts = new List<int>();
        for (int i = 0; i < residues.Length; i++)
        {
            starts.Add(i);
            if (residues[i] == '<' && residues.IndexOf('>', i + 1) is var close and > 0) i = close;
        }
        if (starts.Count <= max) return text;
        return mode == "END" ? residues[..starts[max]] : residues[starts[^max]..];
    }

    /// <summary>Tokens of one input, or 422 naming the input and the reason (an invalid residue, a SMILES RDKit cannot read).</summary>
    /// <param name="truncate">The request's <see cref="Truncate"/> mode, which a too-long SMILES or text was not cut by: said so.</param>
    public EncodedSequence Encode(string text, string param, string truncate = "NONE")
    {
        if (string.IsNullOrWhiteSpace(text)) throw ApiError.Invalid($"{param} is empty", param);
        // What the model refuses as too long was not cut: said so to a client that asked for it.
        string uncut = truncate != "NONE" && Kind is not (ModelKind.Protein or ModelKind.ProteinDecoder) ? $" (truncate {truncate} cuts protein sequences only)" : "";
        // Before tokenizing, which holds the model's tokenizer (a megabyte took a second while every other request waited).
        if ((long)text.Length > (long)MaxTokens * MaxCharactersPerToken)
            throw ApiError.Invalid($"{param} is {text.Length:N0} characters; model {Name} takes at most {MaxTokens - 2} tokens{uncut}", param);
        if (Kind == ModelKind.Molecule)
        {
            if (!Molecule.TryFromSmiles(text, out var molecule, out string? error)) throw ApiError.Invalid($"{param}: '{Spelling.Excerpt(text)}' is not a valid SMILES: {error}", param);
            molecule!.Dispose();
        }
        EncodedSequence encoded;
        try
        {
            encoded = encoder.Encode(text);
        }
        catch (BioForgeException e) when (!e.ServerFault)
        {
            throw ApiError.Invalid($"{param}: {e.Message.Replace("; use --unknown-as-unk to map it to <unk>", "", StringComparison.Ordinal)}{(e.TooLong ? uncut : "")}", param);
        }
        if (encoded.Unknown > 0)
            throw ApiError.Invalid($"{param}: {encoded.Unknown} token(s) of '{Spelling.Excerpt(text)}' are outside model {Name}'s vocabulary"
                + (encoded.FirstUnknown is { } first ? $", the first {first}" : ""), param);
        if (encoded.Ids.Length > MaxTokens)
            throw ApiError.Invalid($"{param} has {encoded.Residues} {(Kind == ModelKind.Protein ? "residues" : "tokens")}; model {Name} takes at most {MaxTokens - 2}{uncut}", param);
        return encoded;
    }

    /// <summary>More characters than any token spans: an input longer than this times the model's tokens cannot fit, whatever its tokens.</summary>
    public const int MaxCharactersPerToken = 64;

    /// <summary>
    /// Mean final hidden state over each input's residues (no start, end or padding), like <c>bioforge embed --pool
    /// mean</c>. Requests arrive in any order of length: sorted and cut into forward passes of similar length, a batch
    /// pays for little padding, and attention memory stays bounded by <see cref="ForwardTokens"/>.
    /// </summary>
    private float[][] Embed(IReadOnlyList<EncodedSequence> batch) => encoder.MeanEmbeddings(batch, tensors, maxTokens: ForwardTokens);

    /// <summary>Padded tokens of one forward pass within a batch.</summary>
    private const int ForwardTokens = 8192;

    public void Dispose()
    {
        Embeddings.Dispose();
        Completions?.Dispose();
        encoder.Dispose();
    }
}

/// <summary>
/// The models one server holds, by name (the directory's name): loaded once at start, shared by every request. A
/// directory is an ESM-2 checkpoint, a SMILES Llama checkpoint, a GPT-2 checkpoint with its tokenizer, or a
/// <c>bioforge dti train</c> affinity model.
/// </summary>
internal sealed class ModelCatalog : IDisposable
{
    private readonly Dictionary<string, LanguageModel> languageModels = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Directory, AffinityModel Model)> affinityModels = new(StringComparer.Ordinal);

    public ModelCatalog(IReadOnlyList<string> directories, ComputeOptions compute, BatchingOptions batching, DeviceWorker device, ServerMetrics metrics,
        DecodeOptions? decoding = null, Action<string>? log = null)
    {
        // log: the operator's log, where errors that no request awaits are written.
        try
        {
            foreach (string directory in directories) Load(Path.GetFullPath(directory), compute, batching, decoding ?? new DecodeOptions(), device, metrics, log);
        }
        catch
        {
            Dispose();
            throw;
        }
        if (languageModels.Count + affinityModels.Count == 0) throw new BioForgeException("--models: no model directory given");
    }

    public IEnumerable<LanguageModel> LanguageModels => languageModels.Values;

    public IEnumerable<(string Name, string Directory, AffinityModel Model)> AffinityModels => affinityModels.Select(kv => (kv.Key, kv.Value.Directory, kv.Value.Model));

    /// <summary>The SMILES model <c>/generate</c> optimizes from: the first one served.</summary>
    public LanguageModel? Prior => languageModels.Values.FirstOrDefault(m => m.Kind == ModelKind.Molecule);

    public LanguageModel Language(string? name, string param, ModelKind? kind = null)
    {
        if (string.IsNullOrEmpty(name))
        {
            var candidates = languageModels.Values.Where(m => kind is null || m.Kind == kind).ToList();
            if (candidates.Count == 1) return candidates[0];
            throw ApiError.BadRequest($"{param} is required: one of {Names(kind)}", param);
        }
        // Served for another route: said so ("is not served here" contradicted /v1/models, which lists it).
        if (affinityModels.ContainsKey(name))
            throw ApiError.NotFound($"{param} '{name}' is a drug–target affinity model, served for /v1/screen only; here: {Names(kind)}", param);
        if (!languageModels.TryGetValue(name, out var model) || (kind is not null && model.Kind != kind))
            throw ApiError.NotFound($"{param} '{name}' is not served here{(kind is null ? "" : $" as a {kind.ToString()!.ToLowerInvariant()} model")}; served: {Names(kind)}", param);
        return model;
    }

    /// <summary>The decoder model <c>/v1/completions</c> names, or without a name the only one served (encoders beside it do not count).</summary>
    public LanguageModel Decoder(string? name, string param)
    {
        var decoders = languageModels.Values.Where(m => m.Completions is not null).ToList();
        if (!string.IsNullOrEmpty(name))
        {
            // An encoder by that name is the route's to refuse (it says what the model does instead).
            if (languageModels.TryGetValue(name, out var named)) return named;
            string served = decoders.Count == 0 ? "no decoder is served here" : $"decoders served: {string.Join(", ", decoders.Select(m => m.Name))}";
            throw ApiError.NotFound(affinityModels.ContainsKey(name)
                ? $"{param} '{name}' is a drug–target affinity model, served for /v1/screen only; {served}"
                : $"{param} '{name}' is not served here; {served}", param);
        }
        if (decoders.Count == 1) return decoders[0];
        throw ApiError.BadRequest(decoders.Count == 0 ? "no decoder model is served here (start the server with --models DIR of a decoder, e.g. models/smiles-llama-small)"
            : $"{param} is required: one of {string.Join(", ", decoders.Select(m => m.Name))}", param);
    }

    public (string Name, AffinityModel Model) Affinity(string? name, string param)
    {
        if (string.IsNullOrEmpty(name))
        {
            if (affinityModels.Count == 1) return (affinityModels.Keys.First(), affinityModels.Values.First().Model);
            throw ApiError.BadRequest(affinityModels.Count == 0 ? "no affinity model is served (start the server with --models DIR of a `bioforge dti train` model)" : $"{param} is required: one of {string.Join(", ", affinityModels.Keys)}", param);
        }
        return affinityModels.TryGetValue(name, out var entry) ? (name, entry.Model)
            : throw ApiError.NotFound($"{param} '{name}' is not a served affinity model; served: {(affinityModels.Count == 0 ? "none" : string.Join(", ", affinityModels.Keys))}", param);
    }

    /// <summary>The first served model of a kind, or null: for the OpenAPI document's examples.</summary>
    public string? FirstName(ModelKind kind) => kind == ModelKind.Affinity
        ? affinityModels.Keys.FirstOrDefault()
        : languageModels.Values.FirstOrDefault(m => m.Kind == kind)?.Name;

    private string Names(ModelKind? kind)
    {
        var names = languageModels.Values.Where(m => kind is null || m.Kind == kind).Select(m => m.Name).ToList();
        return names.Count == 0 ? "none" : string.Join(", ", names);
    }

    private void Load(string directory, ComputeOptions compute, BatchingOptions batching, DecodeOptions decoding, DeviceWorker device, ServerMetrics metrics,
        Action<string>? log)
    {
        string name = Path.GetFileName(directory.TrimEnd(Path.DirectorySeparatorChar));
        if (languageModels.ContainsKey(name) || affinityModels.ContainsKey(name)) throw new BioForgeException($"--models: two models are named '{name}' (the directory name is the model name)");
        if (metrics.HasQueue(name))
            throw new BioForgeException($"--models: {directory}: a model named '{name}' would share its metrics with the service's own '{name}' queue; rename the directory");
        // A decoder's steps report as the queue NAME:decode: a ':' in a name could meet another model's.
        if (name.Contains(':')) throw new BioForgeException($"--models: {directory}: a model name (the directory's) may not contain ':'");
        if (!System.IO.Directory.Exists(directory)) throw new BioForgeException($"--models: {directory} does not exist");
        if (File.Exists(Path.Combine(directory, AffinityModel.ManifestFile)))
        {
            var affinity = AffinityModel.Load(directory, compute.Device);
            try
            {
                // Read now, not by the first screening job: a damaged domain file stops the start, not every job after it.
                // It reads the training ligands with RDKit: a server without it serves the other routes (screening is 501).
                if (Molecule.Unavailable() is null) _ = affinity.Domain();
            }
            catch
            {
                affinity.Dispose();
                throw;
            }
            affinityModels[name] = (directory, affinity);
            return;
        }
        if (!File.Exists(Path.Combine(directory, ModelRegistry.ConfigFile)))
            throw new BioForgeException($"--models: {directory} holds neither {ModelRegistry.ConfigFile} (a Hugging Face checkpoint) nor {AffinityModel.ManifestFile} (an affinity model)");
        var family = ModelRegistry.Of(directory);
        switch (family)
        {
            case EsmFamily:
                var esm = EsmCheckpoint.Load(directory, compute.Device, compute.DType);
                languageModels[name] = new LanguageModel(name, directory, ModelKind.Protein, SequenceEncoder.ForEsm(esm), esm.Config.MaxResidues + 2, esm, null, compute.Device, batching, device, metrics);
                break;
            case LlamaFamily:
                var llama = LlamaCheckpoint.Load(directory, compute.Device, compute.DType);
                SequenceEncoder encoder;
                try
                {
                    encoder = SequenceEncoder.ForLlama(llama, directory); // owns the checkpoint from here on
                }
                catch
                {
                    llama.Dispose();
                    throw;
                }
                DecodeService? completions = null;
                try
                {
                    if (llama.Vocabulary is { } vocabulary)
                    {
                        var generator = new SmilesGenerator(llama);
                        completions = new DecodeService(name, DecoderNetwork.Of(llama.Model), decoding, batching.QueueCapacity, device, metrics,
                            generator.EncodePrompt, token => vocabulary.DecodeRaw([token]), generator.Grammar, log);
                    }
                    else if (llama.IsProtein)
                    {
                        // Answers are residue letters: the protein grammar (the default) draws nothing else but <eos>, which writes nothing.
                        var generator = new ProteinGenerator(llama);
                        completions = new DecodeService(name, DecoderNetwork.Of(llama.Model), decoding, batching.QueueCapacity, device, metrics,
                            llama.EncodeProteinPrompt, token => llama.DecodeProtein([token]), generator.Grammar, log);
                    }
                }
                catch
                {
                    encoder.Dispose(); // a key/value cache that could not be allocated: the weights go too
                    throw;
                }
                languageModels[name] = new LanguageModel(name, directory, llama.IsProtein ? ModelKind.ProteinDecoder : ModelKind.Molecule, encoder,
                    llama.Config.MaxPositionEmbeddings, null, llama, compute.Device, batching, device, metrics, completions);
                break;
            case Gpt2Family:
                var gpt2 = Gpt2Checkpoint.Load(directory, compute.Device, compute.DType);
                var text = SequenceEncoder.ForGpt2(gpt2); // refuses a checkpoint without its tokenizer
                DecodeService sampling;
                try
                {
                    sampling = new DecodeService(name, DecoderNetwork.Of(gpt2.Model), decoding, batching.QueueCapacity, device, metrics,
                        gpt2.EncodePrompt, token => gpt2.Decode([token]), log: log);
                }
                catch
                {
                    text.Dispose();
                    throw;
                }
                languageModels[name] = new LanguageModel(name, directory, ModelKind.Text, text, gpt2.Config.MaxPositions, null, null, compute.Device, batching, device, metrics, sampling);
                break;
            default:
                throw new BioForgeException($"--models: {directory}: a {family.Title} is not served");
        }
    }

    public void Dispose()
    {
        foreach (var m in languageModels.Values) m.Dispose();
        foreach (var (_, model) in affinityModels.Values) model.Dispose();
        languageModels.Clear();
        affinityModels.Clear();
    }
}
