using BioForge.Models.Esm;
using BioForge.Models.Gpt2;
using BioForge.Models.Llama;

namespace BioForge.Models;

/// <summary>
/// The sizes of an ESM-2 encoder or a Llama decoder that decide its parameter count, its FLOPs and what tensor
/// parallelism splits: counted from the config, without building the network (a 15B model plans on a laptop).
/// </summary>
public sealed record ModelShape(string Architecture, int Layers, int Hidden, int Intermediate, int Heads, int KeyValueHeads, int HeadDim,
    int Vocabulary, bool TiedEmbeddings, int LearnedPositions = 0)
{
    private bool Esm => Architecture == "esm";

    /// <summary>ESM-2 and GPT-2 layers: two MLP matrices, biases everywhere, LayerNorms with a bias (Llama has none of these).</summary>
    private bool Biased => Architecture is "esm" or "gpt2";

    public static ModelShape Of(EsmConfig c) =>
        new("esm", c.NumHiddenLayers, c.HiddenSize, c.IntermediateSize, c.NumAttentionHeads, c.NumAttentionHeads, c.HeadDim, c.VocabSize, TiedEmbeddings: true);

    public static ModelShape Of(Gpt2Config c) =>
        new("gpt2", c.NumLayers, c.HiddenSize, c.InnerSize, c.NumHeads, c.NumHeads, c.HeadDim, c.VocabSize, c.TieWordEmbeddings, c.MaxPositions);

    public static ModelShape Of(LlamaConfig c) =>
        new("llama", c.NumHiddenLayers, c.HiddenSize, c.IntermediateSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.VocabSize, c.TieWordEmbeddings);

    private long QueryWidth => (long)Heads * HeadDim;
    private long KeyValueWidth => (long)KeyValueHeads * HeadDim;

    /// <summary>Per layer: the weights of the projections tensor parallelism splits (query, key, value, output, MLP).</summary>
    public long SplitMatrixWeightsPerLayer => Hidden * (2 * QueryWidth + 2 * KeyValueWidth) + (Biased ? 2L : 3L) * Hidden * Intermediate;

    /// <summary>
    /// Bytes a layer keeps for the backward pass per token at 16 bits, Korthikanti et al. 2022's count without the
    /// attention scores (BioForge attends through fused scaled-dot-product kernels, which keep a float32 log-sum-exp a
    /// head instead: <see cref="AttentionStatisticBytesPerToken"/>): 10·h kept whole on every tensor-parallel rank
    /// (the norms' and blocks' inputs, dropout masks), and split by <paramref name="tensorParallel"/> the queries, keys
    /// and values, the attention output, and the MLP's intermediates — two of width I (input to and output of the
    /// activation), four for a gated MLP (gate, up, activated gate, product). ESM-2 and GPT-2 give Korthikanti's
    /// 10 + 24/t times h.
    /// </summary>
    public double ActivationBytesPerToken(int tensorParallel) =>
        10.0 * Hidden + (2.0 * QueryWidth + 4.0 * KeyValueWidth + 2.0 * QueryWidth + (Biased ? 4.0 : 8.0) * Intermediate) / tensorParallel;

    /// <summary>The fused attention kernels' saved statistic: one float32 log-sum-exp per head and token, heads split by tensor parallelism.</summary>
    public double AttentionStatisticBytesPerToken(int tensorParallel) => 4.0 * Heads / tensorParallel;

    /// <summary>Per layer: biases of column-parallel projections (split with them; ESM-2 only — Llama has none).</summary>
    private long SplitBiasesPerLayer => Biased ? QueryWidth + 2 * KeyValueWidth + Intermediate : 0;

    /// <summary>Per layer: what every tensor-parallel rank holds whole (norms, biases added after a row-parallel sum).</summary>
    private long ReplicatedPerLayer => Biased ? 6L * Hidden : 2L * Hidden;

    private long EmbeddingParameters => (long)Vocabulary * Hidden;

    /// <summary>
    /// Everything besides the layers and the token table: ESM-2's final norm, LM head and contact regression; GPT-2's
    /// position table, final norm and untied head; Llama's norm and untied head.
    /// </summary>
    private long HeadParameters => Esm
        ? 2L * Hidden + ((long)Hidden * Hidden + Hidden + 2L * Hidden + Vocabulary) + ((long)Layers * Heads + 1)
        : (Biased ? 2L * Hidden : Hidden) + (long)LearnedPositions * Hidden + (TiedEmbeddings ? 0 : EmbeddingParameters);

    /// <summary>
    /// Largest sizes accepted from a config.json, far above any published model (Llama 3.1 405B: 126 layers, hidden
    /// 16,384, MLP 53,248, vocabulary 128,256), so a typo or a hostile file is refused before anything is allocated.
    /// </summary>
    public const int MaxLayers = 1_000, MaxHidden = 131_072, MaxIntermediate = 1_048_576, MaxVocabulary = 4_194_304, MaxPositions = 1_048_576;

    /// <summary>Refuses a size above its bound, naming the key as config.json spells it.</summary>
    public static void CheckSize(string where, string key, int value, int max)
    {
        if (value > max)
            throw new BioForgeException($"{where}: {key} {value} is more than {max:N0}, larger than any published model (is the config right?)");
    }

    /// <summary>
    /// Refuses a network whose float32 weights alone exceed this machine's memory, before any allocation: building it
    /// would grow until the process is killed, or fail deep in LibTorch with a long native stack trace.
    /// </summary>
    public void EnsureFitsInMemory(string where)
    {
        long bytes = Parameters * sizeof(float);
        long memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (bytes > memory)
            throw new BioForgeException($"{where}: {Parameters:N0} parameters need {bytes / 1e9:N1} GB as float32, more than the {memory / 1e9:N1} GB of memory here " +
                $"({Layers} layers, hidden size {Hidden}, MLP {Intermediate}, vocabulary {Vocabulary})")
            { ServerFault = true };
    }

    public long Parameters => Layers * (SplitMatrixWeightsPerLayer + SplitBiasesPerLayer + ReplicatedPerLayer) + EmbeddingParameters + HeadParameters;

    /// <summary>Parameters one tensor-parallel rank holds: its share of the split layers, the rest whole.</summary>
    public long ParametersPerRank(int tensorParallel, bool vocabularySplit)
    {
        long split = Layers * (SplitMatrixWeightsPerLayer + SplitBiasesPerLayer);
        long vocabulary = EmbeddingParameters * (TiedEmbeddings || Esm ? 1 : 2);
        long whole = Parameters - split - (vocabularySplit ? vocabulary : 0);
        return whole + (split + (vocabularySplit ? vocabulary : 0)) / tensorParallel;
    }

    /// <summary>
    /// Forward FLOPs per token at sequence length <paramref name="sequence"/>: two per weight of every matrix product,
    /// plus attention's scores and weighted sum (4·s·width per layer; eager attention computes the full square), plus
    /// the vocabulary projection. Training is three times this (forward, two backward products).
    /// </summary>
    public double ForwardFlopsPerToken(int sequence) =>
        2.0 * Layers * SplitMatrixWeightsPerLayer + 4.0 * Layers * sequence * QueryWidth + 2.0 * Hidden * Vocabulary + (Esm ? 2.0 * Hidden * Hidden : 0);
}
