using BioForge.Models.Esm;
using BioForge.Models.Gpt2;
using BioForge.Models.Llama;
using BioForge.Runtime;
using static TorchSharp.torch;

namespace BioForge.Models;

/// <summary>
/// One input as the encoder sees it: a start token, one token per residue (amino acid, or SMILES token), an end token.
/// </summary>
/// <param name="Unknown">Residues outside the model's vocabulary (read as the unknown token).</param>
public sealed record EncodedSequence(long[] Ids, int Unknown, bool Truncated = false)
{
    public int Residues => Ids.Length - 2;

    /// <summary>The first token outside the vocabulary and where it starts (<c>'.' at character 19</c>), when the encoder can say.</summary>
    public string? FirstUnknown { get; init; }

    /// <summary>The first <paramref name="maxLength"/> − 1 tokens and the end token.</summary>
    public EncodedSequence Cut(int maxLength) => Ids.Length <= maxLength ? this : this with { Ids = [.. Ids[..(maxLength - 1)], Ids[^1]], Truncated = true };
}

/// <summary>
/// A pre-trained language model used as a feature extractor: tokenization, hidden states, and the layers LoRA adapts.
/// ESM-2 (bidirectional encoder over amino acids) and the decoders (Llama-style SMILES and protein models, GPT-2
/// checkpoints) fit behind it.
/// </summary>
public abstract class SequenceEncoder : IDisposable
{
    public abstract nn.Module Network { get; }

    /// <summary>The family of the checkpoint (its <c>model_type</c>).</summary>
    public abstract ModelFamily Family { get; }

    /// <summary>What the inputs are written in: the family's alphabet, unless the checkpoint says otherwise (a Llama
    /// decoder over amino acids).</summary>
    public virtual SequenceAlphabet Alphabet => Family.Alphabet;

    public abstract int HiddenSize { get; }

    public abstract long PadId { get; }

    /// <summary>The most tokens one input may have, its framing tokens included: the model's positions.</summary>
    public abstract int MaxTokens { get; }

    /// <summary>A causal decoder: its first token sees nothing after it, so <c>cls</c> pooling makes no sense.</summary>
    public bool Causal => Family.Objective == TrainingObjective.CausalLanguageModel;

    /// <summary>
    /// Whether a parameter belongs to an output head the hidden states do not depend on (the language-model head, ESM-2's
    /// contact regression): a fully fine-tuned encoder leaves them as they were, since AdamW's weight decay would
    /// otherwise shrink weights no gradient reaches (PyTorch's AdamW skips a parameter without a gradient).
    /// </summary>
    public static bool IsOutputHead(string parameterName) =>
        parameterName.StartsWith("lm_head.", StringComparison.Ordinal) || parameterName.Contains("contact_head.", StringComparison.Ordinal);

    /// <summary>Why this encoder can only be used frozen (its weights cannot be written back or adapted), or null.</summary>
    public virtual string? FrozenOnly => null;

    /// <summary>The attention query and value projections (LoRA's defaults, as in the LoRA paper).</summary>
    public abstract string[] DefaultLoraTargets { get; }

    /// <summary>
    /// Tokens of one input; invalid input throws with the reason, as does one with nothing between its start and end
    /// tokens (an empty text, a lone stop '*'): its pooled features would be zeros, answered as if they were its own.
    /// </summary>
    /// <param name="stopCodon">Whether a '*' ending a protein is its stop, left out (false for a FASTA record, whose stop
    /// the reader left out already: a '*' still ending it was one of two).</param>
    public EncodedSequence Encode(string sequence, bool stopCodon = true)
    {
        var encoded = Tokenize(sequence, stopCodon);
        if (encoded.Residues <= 0)
            throw new BioForgeException($"'{Spelling.Excerpt(sequence)}' holds no {(Alphabet == SequenceAlphabet.Protein ? "residues" : "tokens")}");
        return encoded;
    }

    /// <summary>The tokens of <see cref="Encode"/>, framed by the start and end tokens.</summary>
    protected abstract EncodedSequence Tokenize(string sequence, bool stopCodon);

    /// <summary>[B, T, hidden] final hidden states.</summary>
    public abstract Tensor Hidden(Tensor ids, Tensor mask);

    /// <summary>Writes the encoder as a Hugging Face checkpoint directory.</summary>
    public abstract void Save(string directory);

    public abstract void Dispose();

    /// <summary>
    /// Right-pads a batch: token ids [N, T], attention mask, which positions are residues (not start, end or padding),
    /// and each sequence's last position.
    /// </summary>
    public (Tensor Ids, Tensor Mask, Tensor Residues, long[] Last) Pad(IReadOnlyList<EncodedSequence> batch, Device device)
    {
        int width = batch.Max(e => e.Ids.Length);
        var ids = new long[batch.Count * width];
        var mask = new long[ids.Length];
        var residues = new bool[ids.Length];
        var last = new long[batch.Count];
        Array.Fill(ids, PadId);
        for (int b = 0; b < batch.Count; b++)
        {
            var e = batch[b];
            for (int t = 0; t < e.Ids.Length; t++)
            {
                ids[b * width + t] = e.Ids[t];
                mask[b * width + t] = 1;
                residues[b * width + t] = t >= 1 && t <= e.Residues;
            }
            last[b] = e.Ids.Length - 1;
        }
        long[] shape = [batch.Count, width];
        return (tensor(ids, shape).to(device), tensor(mask, shape).to(device), tensor(residues, shape).to(device), last);
    }

    /// <summary>The mean of the final hidden states over each sequence's residues: [N, hidden].</summary>
    public Tensor MeanOverResidues(IReadOnlyList<EncodedSequence> batch, Device device)
    {
        var (ids, mask, residues, _) = Pad(batch, device);
        return MeanOver(Hidden(ids, mask), residues);
    }

    /// <summary>
    /// <see cref="MeanOverResidues"/> of every sequence, as float32 rows in input order. Sorted by length and cut into
    /// forward passes of at most <paramref name="maxBatch"/> sequences and <paramref name="maxTokens"/> padded tokens,
    /// a batch pays for little padding and its attention memory stays bounded.
    /// </summary>
    public float[][] MeanEmbeddings(IReadOnlyList<EncodedSequence> sequences, Device device, int maxBatch = int.MaxValue, long maxTokens = long.MaxValue)
    {
        Network.eval();
        using var _ = no_grad();
        var result = new float[sequences.Count][];
        var order = Enumerable.Range(0, sequences.Count).OrderBy(i => sequences[i].Ids.Length).ToArray();
        for (int start = 0; start < order.Length;)
        {
            int end = start + 1;
            while (end < order.Length && end - start < maxBatch && (long)(end - start + 1) * sequences[order[end]].Ids.Length <= maxTokens) end++;
            using var scope = NewDisposeScope();
            var part = order[start..end];
            var pooled = MeanOverResidues([.. part.Select(i => sequences[i])], device).to(ScalarType.Float32).cpu().contiguous();
            var values = pooled.data<float>().ToArray();
            int width = (int)pooled.shape[1];
            for (int k = 0; k < part.Length; k++) result[part[k]] = values.AsSpan(k * width, width).ToArray();
            start = end;
        }
        return result;
    }

    public static Tensor MeanOver(Tensor hidden, Tensor residueMask)
    {
        var weights = residueMask.unsqueeze(-1).to(hidden.dtype);
        return (hidden * weights).sum(1) / weights.sum(1).ClampMin(1);
    }

    /// <summary>Opens a checkpoint directory of any registered family, by the <c>model_type</c> of its config.json.</summary>
    public static SequenceEncoder Load(string directory, Device device, ScalarType dtype = ScalarType.Float32) =>
        ModelRegistry.Of(directory).OpenEncoder(directory, device, dtype);

    /// <summary>An ESM-2 checkpoint already loaded, as an encoder; disposing the encoder disposes the checkpoint.</summary>
    public static SequenceEncoder ForEsm(EsmCheckpoint checkpoint) => new EsmFeatureExtractor(checkpoint);

    /// <summary>A GPT-2 checkpoint already loaded (with its tokenizer), as an encoder; disposing the encoder disposes the checkpoint.</summary>
    public static SequenceEncoder ForGpt2(Gpt2Checkpoint checkpoint) => new Gpt2FeatureExtractor(checkpoint);

    /// <summary>A SMILES decoder already loaded, as an encoder; disposing the encoder disposes the checkpoint.</summary>
    public static SequenceEncoder ForLlama(LlamaCheckpoint checkpoint, string directory) => new LlamaFeatureExtractor(checkpoint, directory);
}
