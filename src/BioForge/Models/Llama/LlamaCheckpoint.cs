using BioForge.Distributed;
using BioForge.IO;
using BioForge.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.Models.Llama;

/// <summary>
/// A Llama-style decoder with the vocabulary it was trained on, ready on a device: SMILES tokens (<c>vocab.json</c>) for a
/// chemical language model, or the ESM-2 amino-acid alphabet (<c>vocab.txt</c>, <c>&lt;cls&gt;</c> … <c>&lt;eos&gt;</c>)
/// for a protein language model. Which file the directory holds is what says which kind of model it is.
/// </summary>
public sealed class LlamaCheckpoint : IDisposable
{
    public LlamaForCausalLM Model { get; }
    /// <summary>Null for checkpoints that ship another tokenizer (they can be scored but not decoded to SMILES).</summary>
    public SmilesVocabulary? Vocabulary { get; }

    /// <summary>The amino-acid alphabet of a protein decoder; null for a SMILES (or tokenizer-less) one.</summary>
    public EsmTokenizer? Residues { get; }

    public bool IsProtein => Residues is not null;
    public LlamaConfig Config => Model.Config;
    public Device Device { get; }

    /// <summary>Which parameters are tensor-parallel shards (none without a layout).</summary>
    public ShardedParameters Sharding { get; }

    private LlamaCheckpoint(LlamaForCausalLM model, SmilesVocabulary? vocabulary, EsmTokenizer? residues, Device device, ParallelLayout? layout)
    {
        Model = model;
        Sharding = ShardedParameters.Of(model, layout);
        Vocabulary = vocabulary;
        Residues = residues;
        Device = device;
    }

    /// <summary>
    /// Loads <c>config.json</c>, safetensors weights and, when present, <c>vocab.json</c> (SMILES) or <c>vocab.txt</c>
    /// (amino acids), else the vocabulary of BioForge's <c>tokenizer.json</c> (either); with a tensor-parallel
    /// <paramref name="layout"/>, this rank's shards.
    /// </summary>
    public static LlamaCheckpoint Load(string directory, Device device, ScalarType dtype, ParallelLayout? layout = null)
    {
        string vocabPath = Path.Combine(directory, SmilesVocabulary.FileName);
        string residuePath = Path.Combine(directory, ResidueFileName);
        if (File.Exists(vocabPath) && File.Exists(residuePath))
            throw new BioForgeException($"{directory}: holds both {SmilesVocabulary.FileName} (SMILES) and {ResidueFileName} (amino acids); keep the one the model was trained with");
        var residues = File.Exists(residuePath) ? EsmTokenizer.FromVocabFile(residuePath) : null;
        // A model saved without BioForge's vocab.json or vocab.txt (transformers' save_pretrained writes neither) still
        // carries its vocabulary in the tokenizer.json BioForge writes, whose split tells SMILES from residues.
        var vocabulary = residues is null ? SmilesVocabulary.InModel(directory) : null;
        residues ??= vocabulary is null ? EsmTokenizer.FromHuggingFace(Path.Combine(directory, SmilesVocabulary.HuggingFaceTokenizerFile)) : null;
        var model = LlamaForCausalLM.Load(directory, device, dtype, layout);
        int? count = vocabulary?.Count ?? residues?.Vocabulary.Count;
        if (count is not null && count != model.Config.VocabSize)
        {
            model.Dispose();
            throw new BioForgeException($"{directory}: the {(vocabulary is null ? "amino-acid" : "SMILES")} vocabulary has {count} tokens but config.json says vocab_size {model.Config.VocabSize}");
        }
        if (residues is not null && (model.Config.BosTokenId != residues.ClsId || model.Config.EosTokenId != residues.EosId))
        {
            model.Dispose();
            throw new BioForgeException($"{directory}: a protein decoder starts with <cls> ({residues.ClsId}) and ends with <eos> ({residues.EosId}); config.json says bos_token_id {model.Config.BosTokenId}, eos_token_id {model.Config.EosTokenId}");
        }
        // SMILES sampling and scoring frame molecules with the vocabulary's own <bos>/<eos>, so the config must agree.
        if (vocabulary is not null && (model.Config.BosTokenId != SmilesVocabulary.BosId || model.Config.EosTokenId != SmilesVocabulary.EosId))
        {
            model.Dispose();
            throw new BioForgeException($"{directory}: a SMILES model starts with <bos> ({SmilesVocabulary.BosId}) and ends with <eos> ({SmilesVocabulary.EosId}); config.json says bos_token_id {model.Config.BosTokenId}, eos_token_id {model.Config.EosTokenId}");
        }
        return new LlamaCheckpoint(model, vocabulary, residues, device, layout);
    }

    /// <summary>The amino-acid vocabulary file of a protein decoder (ESM-2's name and format).</summary>
    public const string ResidueFileName = "vocab.txt";

    /// <summary>
    /// Token ids of a protein start for sampling: <c>&lt;cls&gt;</c> and the residues, no <c>&lt;eos&gt;</c> (the
    /// model continues it). Residues outside the alphabet and special tokens are refused.
    /// </summary>
    public int[] EncodeProteinPrompt(string prompt)
    {
        var residues = Residues ?? throw new BioForgeException("the model has no amino-acid vocabulary: it is not a protein language model");
        string shown = Spelling.Excerpt(prompt, 80);
        if (prompt.Contains('<'))
            throw new BioForgeException($"protein prompt '{shown}': special tokens are not allowed, only residue letters");
        // A stop ends a protein: there is nothing to continue (it was dropped, and the protein continued past it).
        if (prompt.EndsWith('*')) throw new BioForgeException($"protein prompt '{shown}': ends with a stop ('*'); a prompt is the start of a protein to continue");
        try
        {
            return residues.Encode(prompt, stopCodon: false)[..^1];
        }
        catch (BioForgeException e)
        {
            throw new BioForgeException($"protein prompt '{shown}': {e.Message}");
        }
    }

    /// <summary>
    /// Residue letters of generated tokens: special tokens and gap/insertion characters write nothing (under the protein
    /// grammar a sample holds none of them but its end; without it, an answer stays a sequence).
    /// </summary>
    public string DecodeProtein(IEnumerable<int> tokens)
    {
        var residues = Residues ?? throw new BioForgeException("the model has no amino-acid vocabulary: it is not a protein language model");
        return string.Concat(tokens.Select(residues.Decode).Where(t => t.Length == 1 && char.IsAsciiLetterUpper(t[0])));
    }

    /// <summary>
    /// A randomly initialised decoder (training from scratch); with a <paramref name="layout"/>, this rank's shards of
    /// the decoder a single process would draw from the seed.
    /// </summary>
    public static LlamaCheckpoint Random(LlamaConfig config, SmilesVocabulary? vocabulary, Device device, ScalarType dtype, long seed, ParallelLayout? layout = null,
        EsmTokenizer? residues = null)
    {
        var model = new LlamaForCausalLM(config, layout);
        CheckpointWeights.InitializeRandomly(model, name => name.EndsWith("norm.weight", StringComparison.Ordinal), (ulong)seed, ShardedParameters.Of(model, layout));
        model.to(device, dtype);
        model.eval();
        return new LlamaCheckpoint(model, vocabulary, residues, device, layout);
    }

    /// <summary>
    /// An independent copy of the decoder in memory, in <paramref name="dtype"/> (REINVENT's agent starts as a copy of
    /// its prior; a server makes one per request from the model it already holds, without touching the disk).
    /// </summary>
    public LlamaCheckpoint Copy(ScalarType dtype)
    {
        if (Sharding.Layout.Size > 1) throw new InvalidOperationException("a tensor-parallel shard cannot be copied on its own");
        var model = new LlamaForCausalLM(Config);
        try
        {
            model.to(Device, dtype);
            using var _ = no_grad();
            var source = Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, parameter) in model.named_parameters()) parameter.copy_(source[name]);
            model.eval();
            return new LlamaCheckpoint(model, Vocabulary, Residues, Device, null);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Saves in the layout <c>save_pretrained</c> writes, plus the vocabulary (<c>vocab.json</c> for SMILES,
    /// <c>vocab.txt</c> for amino acids) and the Hugging Face tokenizer files that read text into the same ids; weights
    /// float32 unless <paramref name="storage"/> is float16. A tensor-parallel model is written whole: every rank of its
    /// group calls <see cref="UnshardedWeights"/> and one passes them here.
    /// </summary>
    public void Save(string directory, IReadOnlyList<KeyValuePair<string, Tensor>>? weights = null, ScalarType storage = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        CheckpointWeights.Save(weights ?? UnshardedWeights(), Config.ToJson(), directory, storage: storage);
        Vocabulary?.Save(Path.Combine(directory, SmilesVocabulary.FileName));
        Vocabulary?.SaveHuggingFace(directory, Config.MaxPositionEmbeddings);
        if (Residues is null) return;
        AtomicFile.WriteText(Path.Combine(directory, ResidueFileName), string.Join("\n", Residues.Vocabulary) + "\n");
        Residues.SaveHuggingFace(directory, Config.MaxPositionEmbeddings);
    }

    /// <summary>Every parameter unsharded, by checkpoint name (with tensor parallelism a collective over the group).</summary>
    public List<KeyValuePair<string, Tensor>> UnshardedWeights() => CheckpointWeights.Unsharded(Model, Sharding);

    public void Dispose() => Model.Dispose();
}
