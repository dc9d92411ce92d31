using System.Text.Json.Nodes;
using BioForge.Chem;
using BioForge.Distributed;
using BioForge.Models;
using BioForge.Models.Esm;
using BioForge.Models.Llama;
using BioForge.Runtime;
using BioForge.Tokenizers;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BioForge.Training;

/// <summary>Padded model inputs of one micro-batch, on the model's device.</summary>
internal sealed record MicroBatch(Tensor Inputs, Tensor AttentionMask, Tensor Labels, long Tokens, long ScoredTokens);

/// <summary>
/// A network together with its pre-training objective: what the trainer needs to turn token sequences into a loss and
/// to save the result in the network's Hugging Face layout. The network classes themselves know nothing of training.
/// </summary>
internal interface ILanguageModelTask : IDisposable
{
    nn.Module Network { get; }

    /// <summary>Token id used to pad micro-batches.</summary>
    int PadId { get; }

    /// <summary>
    /// The objective applied to one sequence (random draws keyed by seed, epoch and sequence id); data augmentation,
    /// when configured, only where <paramref name="augment"/> (training, not validation).
    /// </summary>
    TrainingExample Example(TokenSequence sequence, ulong seed, int epoch, bool augment);

    /// <summary>Sum of token cross-entropies over the scored positions (float32 scalar, the same on every tensor-parallel rank).</summary>
    Tensor LossSum(MicroBatch batch);

    int VocabularySize { get; }

    /// <summary>The longest sequence the network is configured for (<c>max_position_embeddings</c>).</summary>
    int MaxPositions { get; }

    /// <summary>The whole network's sizes (not one tensor-parallel rank's share).</summary>
    ModelShape Shape { get; }

    /// <summary>Long documents are cropped at a random start and framed again by their first and last token (masked LM, as ESM-2 trains) rather than cut at their end.</summary>
    bool RandomCrop { get; }

    /// <summary>Which parameters are tensor-parallel shards.</summary>
    ShardedParameters Sharding { get; }

    /// <summary>The network's parameters unsharded (a collective over the tensor-parallel group).</summary>
    List<KeyValuePair<string, Tensor>> UnshardedWeights();

    /// <summary>Writes the network as a Hugging Face directory from <see cref="UnshardedWeights"/>, weights stored as <paramref name="storage"/>.</summary>
    void Save(string directory, IReadOnlyList<KeyValuePair<string, Tensor>> weights, ScalarType storage = ScalarType.Float32);
}

internal static class MicroBatches
{
    /// <summary>Right-pads the examples into [B, T] tensors; padding is unattended and unscored.</summary>
    public static MicroBatch Collate(IReadOnlyList<TrainingExample> examples, int padId, Device device)
    {
        int width = examples.Max(e => e.Inputs.Length);
        var inputs = new long[examples.Count * width];
        var mask = new long[inputs.Length];
        var labels = new long[inputs.Length];
        Array.Fill(inputs, padId);
        Array.Fill(labels, MaskedLanguageModeling.Ignore);
        long tokens = 0, scored = 0;
        for (int b = 0; b < examples.Count; b++)
        {
            var e = examples[b];
            for (int t = 0; t < e.Inputs.Length; t++)
            {
                inputs[b * width + t] = e.Inputs[t];
                mask[b * width + t] = 1;
                labels[b * width + t] = e.Labels[t];
                if (e.Labels[t] != MaskedLanguageModeling.Ignore) scored++;
            }
            tokens += e.Inputs.Length;
        }
        long[] shape = [examples.Count, width];
        return new MicroBatch(tensor(inputs, shape).to(device), tensor(mask, shape).to(device), tensor(labels, shape).to(device), tokens, scored);
    }

    public static Tensor CrossEntropySum(Tensor logits, Tensor labels) =>
        F.cross_entropy(logits.reshape(-1, logits.shape[^1]).to(ScalarType.Float32), labels.reshape(-1),
            ignore_index: MaskedLanguageModeling.Ignore, reduction: nn.Reduction.Sum);
}

/// <summary>ESM-2 with masked language modelling.</summary>
internal sealed class MaskedLanguageModelTask : ILanguageModelTask
{
    private readonly EsmCheckpoint checkpoint;
    private readonly MaskedLanguageModeling objective;

    public MaskedLanguageModelTask(EsmCheckpoint checkpoint)
    {
        this.checkpoint = checkpoint;
        objective = MaskedLanguageModeling.ForProteins(checkpoint.Tokenizer);
        // The contact regression is fitted apart from masked language modelling (no gradient reaches it): left out of
        // the optimizer, weight decay does not shrink a fitted head while pre-training continues from a hub checkpoint.
        foreach (var (name, p) in checkpoint.Model.named_parameters())
            if (name.Contains("contact_head.", StringComparison.Ordinal)) p.requires_grad = false;
    }

    public nn.Module Network => checkpoint.Model;
    public int PadId => checkpoint.Tokenizer.PadId;

    public TrainingExample Example(TokenSequence sequence, ulong seed, int epoch, bool augment) => objective.Apply(sequence.Tokens, seed, epoch, sequence.Id);

    public Tensor LossSum(MicroBatch batch)
    {
        var logits = checkpoint.Model.Forward(batch.Inputs, batch.AttentionMask, new EsmForwardOptions { Logits = true }).Logits!;
        return MicroBatches.CrossEntropySum(logits, batch.Labels);
    }

    public int VocabularySize => checkpoint.Config.VocabSize;
    public int MaxPositions => checkpoint.Config.MaxPositionEmbeddings;
    public ModelShape Shape => ModelShape.Of(checkpoint.Config);
    public bool RandomCrop => true;
    public ShardedParameters Sharding => checkpoint.Sharding;
    public List<KeyValuePair<string, Tensor>> UnshardedWeights() => checkpoint.UnshardedWeights();
    public void Save(string directory, IReadOnlyList<KeyValuePair<string, Tensor>> weights, ScalarType storage = ScalarType.Float32) =>
        checkpoint.Save(directory, weights, storage: storage);

    public void Dispose() => checkpoint.Dispose();
}

/// <summary>
/// A Llama-style decoder with causal language modelling. With <paramref name="randomizeSmiles"/>, each training
/// molecule is rewritten as a random valid SMILES of itself (Bjerrum 2017) every epoch; molecules RDKit cannot parse,
/// whose random form would exceed <paramref name="maxLength"/> tokens, or cut to it (no &lt;bos&gt; … &lt;eos&gt; frame:
/// the rest is a fragment, which must not be taught to end), stay as they are.
/// </summary>
internal sealed class CausalLanguageModelTask(LlamaCheckpoint checkpoint, bool randomizeSmiles = false, int maxLength = int.MaxValue) : ILanguageModelTask
{
    public nn.Module Network => checkpoint.Model;
    public int PadId => checkpoint.Config.PadTokenId;

    public TrainingExample Example(TokenSequence sequence, ulong seed, int epoch, bool augment) =>
        CausalLanguageModeling.Apply(augment && randomizeSmiles ? Randomized(sequence, seed, epoch) : sequence.Tokens);

    private int[] Randomized(TokenSequence sequence, ulong seed, int epoch)
    {
        var vocabulary = checkpoint.Vocabulary ?? throw new BioForgeException("SMILES randomization needs a model with a SMILES vocabulary");
        if (sequence.Tokens is not [var first, .., var last] || first != checkpoint.Config.BosTokenId || last != checkpoint.Config.EosTokenId) return sequence.Tokens;
        string? smiles = vocabulary.Decode(sequence.Tokens.Select(t => (long)t));
        if (smiles is null || !Molecule.TryFromSmiles(smiles, out var molecule, out _)) return sequence.Tokens;
        using (molecule)
        {
            var random = vocabulary.Encode(molecule!.ToRandomSmiles((uint)StatelessRandom.Hash(seed, epoch, sequence.Id, 11)));
            return random.Length <= maxLength && !random.Contains(SmilesVocabulary.UnkId) ? random : sequence.Tokens;
        }
    }

    public Tensor LossSum(MicroBatch batch)
    {
        var logits = checkpoint.Model.Forward(batch.Inputs, batch.AttentionMask).Logits;
        var layout = checkpoint.Sharding.Layout;
        return layout.SplitsVocabulary
            ? TensorParallelism.VocabParallelCrossEntropySum(logits, batch.Labels, layout.TensorGroup, MaskedLanguageModeling.Ignore)
            : MicroBatches.CrossEntropySum(logits, batch.Labels);
    }

    public int VocabularySize => checkpoint.Config.VocabSize;
    public int MaxPositions => checkpoint.Config.MaxPositionEmbeddings;
    public ModelShape Shape => ModelShape.Of(checkpoint.Config);
    public bool RandomCrop => false;
    public ShardedParameters Sharding => checkpoint.Sharding;
    public List<KeyValuePair<string, Tensor>> UnshardedWeights() => checkpoint.UnshardedWeights();
    public void Save(string directory, IReadOnlyList<KeyValuePair<string, Tensor>> weights, ScalarType storage = ScalarType.Float32) =>
        checkpoint.Save(directory, weights, storage: storage);

    public void Dispose() => checkpoint.Dispose();
}

/// <summary>The network a run trains, with its objective: new from <c>model.config</c>, or loaded from a checkpoint or <c>model.init</c>.</summary>
internal static class LanguageModelTasks
{
    public static ILanguageModelTask Create(RunConfig config, string? resumeFrom, ComputeOptions compute, ParallelLayout layout)
    {
        string? source = resumeFrom ?? config.Model.Init;
        if (config.Family is EsmFamily)
        {
            if (!File.Exists(Path.Combine(config.Data.Dir, "vocab.txt")))
                throw new BioForgeException($"data.dir {config.Data.Dir}: no vocab.txt; an ESM model needs a corpus prepared with --tokenizer esm");
            var checkpoint = source is not null
                ? EsmCheckpoint.Load(source, compute.Device, compute.DType, layout)
                : EsmCheckpoint.Random(NewConfig(config, NewEsmConfig, EsmTokenizer.Esm2.Vocabulary.Count),
                    compute.Device, compute.DType, (long)config.Seed, layout);
            try
            {
                checkpoint.Model.ActivationCheckpointing = config.Train.ActivationCheckpointing;
            }
            catch (BioForgeException e)
            {
                checkpoint.Dispose();
                throw new BioForgeException($"train.activation_checkpointing: {e.Message}");
            }
            // Each rank holds a share of the attention heads, yet every rank draws from the same seeded generator: its
            // heads would get the masks of the other ranks' heads. Hidden dropout acts on activations every rank holds
            // whole, so identical masks are right there (and a tensor-parallel run equals one process).
            if (layout.Size > 1 && checkpoint.Config.AttentionProbsDropoutProb > 0)
            {
                checkpoint.Dispose();
                throw new BioForgeException($"attention_probs_dropout_prob {checkpoint.Config.AttentionProbsDropoutProb} with train.tensor_parallel {layout.Size}: "
                    + "attention dropout on head shards is not supported; set model.config.attention_probs_dropout_prob=0 (hidden dropout may stay)");
            }
            return new MaskedLanguageModelTask(checkpoint);
        }
        // A corpus prepared with --tokenizer esm (vocab.txt) makes a protein decoder: <cls> residues <eos>, as ESM-2 frames them.
        bool protein = File.Exists(Path.Combine(config.Data.Dir, LlamaCheckpoint.ResidueFileName))
            && !File.Exists(Path.Combine(config.Data.Dir, SmilesVocabulary.FileName));
        if (protein && config.Data.RandomizeSmiles) throw new BioForgeException($"data.randomize_smiles: {config.Data.Dir} is a protein corpus");
        var vocabulary = protein ? null : SmilesVocabulary.Load(Path.Combine(config.Data.Dir, SmilesVocabulary.FileName));
        var residues = protein ? EsmTokenizer.FromVocabFile(Path.Combine(config.Data.Dir, LlamaCheckpoint.ResidueFileName)) : null;
        var llama = source is not null
            ? LlamaCheckpoint.Load(source, compute.Device, compute.DType, layout)
            : LlamaCheckpoint.Random(NewConfig(config, json => LlamaConfig.FromJson(json, "model.config"), vocabulary?.Count ?? residues!.Vocabulary.Count) with
            {
                BosTokenId = residues?.ClsId ?? SmilesVocabulary.BosId,
                EosTokenId = residues?.EosId ?? SmilesVocabulary.EosId,
                PadTokenId = residues?.PadId ?? SmilesVocabulary.PadId,
            }, vocabulary, compute.Device, compute.DType, (long)config.Seed, layout, residues);
        if (vocabulary is not null && llama.Vocabulary is not null && !llama.Vocabulary.Tokens.SequenceEqual(vocabulary.Tokens))
        {
            llama.Dispose();
            throw new BioForgeException($"{source}: its vocab.json differs from the corpus vocabulary in {config.Data.Dir}; prepare the corpus with --vocab {source} to train this model on it");
        }
        if (llama.IsProtein != protein || (residues is not null && !llama.Residues!.Vocabulary.SequenceEqual(residues.Vocabulary)))
        {
            llama.Dispose();
            throw new BioForgeException($"{source}: its vocabulary is not that of the {(protein ? "protein" : "SMILES")} corpus in {config.Data.Dir}");
        }
        llama.Model.ActivationCheckpointing = config.Train.ActivationCheckpointing;
        return new CausalLanguageModelTask(llama, config.Data.RandomizeSmiles, config.Data.MaxLength);
    }

    public static EsmConfig NewEsmConfig(JsonObject json)
    {
        json["position_embedding_type"] ??= "rotary"; // Hugging Face's default is "absolute"; ESM-2 is rotary
        json["layer_norm_eps"] ??= new EsmConfig().LayerNormEps; // ESM-2's 1e-5, not Hugging Face's 1e-12
        return EsmConfig.FromJson(json, "model.config");
    }

    /// <summary>A network config from <c>model.config</c>, with the vocabulary size the data implies.</summary>
    public static T NewConfig<T>(RunConfig config, Func<JsonObject, T> read, int vocabularySize)
    {
        var json = config.Model.Config?.DeepClone().AsObject() ?? [];
        foreach (var (key, _) in json)
            if (!config.Family.ConfigKeys.Contains(key)) throw new BioForgeException($"model.config: unknown key '{key}' for a {config.Model.Type} network");
        if (json["vocab_size"] is JsonValue given && given.GetValue<long>() != vocabularySize)
            throw new BioForgeException($"model.config.vocab_size is {given} but the corpus vocabulary has {vocabularySize} tokens (leave it out)");
        json["vocab_size"] = vocabularySize;
        try
        {
            return read(json);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new BioForgeException($"model.config: a value has the wrong type ({e.Message})");
        }
    }
}
