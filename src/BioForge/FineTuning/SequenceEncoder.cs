using System.Text.Json.Nodes;
using BioForge.Models.Esm;
using BioForge.Models.Llama;
using BioForge.Tokenizers;
using static TorchSharp.torch;

namespace BioForge.FineTuning;

/// <summary>
/// One input as the encoder sees it: a start token, one token per residue (amino acid, or SMILES token), an end token.
/// </summary>
/// <param name="Unknown">Residues outside the model's vocabulary (read as the unknown token).</param>
public sealed record EncodedSequence(long[] Ids, int Unknown, bool Truncated = false)
{
    public int Residues => Ids.Length - 2;

    /// <summary>The first <paramref name="maxLength"/> − 1 tokens and the end token.</summary>
    public EncodedSequence Cut(int maxLength) => Ids.Length <= maxLength ? this : this with { Ids = [.. Ids[..(maxLength - 1)], Ids[^1]], Truncated = true };
}

/// <summary>
/// A pre-trained language model used as a feature extractor: tokenization, hidden states, and the layers LoRA adapts.
/// ESM-2 (bidirectional encoder over amino acids) and the Llama-style SMILES decoder both fit behind it.
/// </summary>
public abstract class SequenceEncoder : IDisposable
{
    public abstract nn.Module Network { get; }

    /// <summary><c>esm</c> or <c>llama</c> (the <c>model_type</c> of config.json).</summary>
    public abstract string Kind { get; }

    public abstract int HiddenSize { get; }

    public abstract long PadId { get; }

    /// <summary>A causal decoder: its first token sees nothing after it, so <c>cls</c> pooling makes no sense.</summary>
    public bool Causal => Kind == "llama";

    /// <summary>The attention query and value projections (LoRA's defaults, as in the LoRA paper).</summary>
    public abstract string[] DefaultLoraTargets { get; }

    /// <summary>Tokens of one input; invalid input throws with the reason.</summary>
    public abstract EncodedSequence Encode(string sequence);

    /// <summary>[B, T, hidden] final hidden states.</summary>
    public abstract Tensor Hidden(Tensor ids, Tensor mask);

    /// <summary>Writes the encoder as a Hugging Face checkpoint directory.</summary>
    public abstract void Save(string directory);

    public abstract void Dispose();

    /// <summary>Opens an ESM-2 or Llama checkpoint directory, by the <c>model_type</c> of its config.json.</summary>
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

    public static Tensor MeanOver(Tensor hidden, Tensor residueMask)
    {
        var weights = residueMask.unsqueeze(-1).to(hidden.dtype);
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1);
    }

    public static SequenceEncoder Load(string directory, Device device, ScalarType dtype = ScalarType.Float32)
    {
        string configPath = Path.Combine(directory, "config.json");
        if (!Directory.Exists(directory)) throw new BioForgeException($"model directory {directory} does not exist");
        if (!File.Exists(configPath)) throw new BioForgeException($"{directory}: no config.json (expected a Hugging Face checkpoint directory)");
        string? type = JsonNode.Parse(File.ReadAllText(configPath))?["model_type"]?.GetValue<string>();
        return type switch
        {
            "esm" => new Esm(EsmCheckpoint.Load(directory, device, dtype)),
            "llama" => new Llama(LlamaCheckpoint.Load(directory, device, dtype), directory),
            _ => throw new BioForgeException($"{directory}: model_type '{type}' cannot be fine-tuned (esm or llama)"),
        };
    }

    /// <summary>An ESM-2 checkpoint already loaded, as an encoder; disposing the encoder disposes the checkpoint.</summary>
    public static SequenceEncoder ForEsm(EsmCheckpoint checkpoint) => new Esm(checkpoint);

    private sealed class Esm(EsmCheckpoint checkpoint) : SequenceEncoder
    {
        public override nn.Module Network => checkpoint.Model;
        public override string Kind => "esm";
        public override int HiddenSize => checkpoint.Config.HiddenSize;
        public override long PadId => checkpoint.Tokenizer.PadId;
        public override string[] DefaultLoraTargets => ["query", "value"];

        public override EncodedSequence Encode(string sequence) => new([.. checkpoint.Tokenizer.Encode(sequence).Select(i => (long)i)], 0);

        public override Tensor Hidden(Tensor ids, Tensor mask) => checkpoint.Model.Forward(ids, mask, new EsmForwardOptions()).LastHiddenState;

        public override void Save(string directory) => checkpoint.Save(directory);

        public override void Dispose() => checkpoint.Dispose();
    }

    private sealed class Llama : SequenceEncoder
    {
        private readonly LlamaCheckpoint checkpoint;
        private readonly SmilesVocabulary vocabulary;

        public Llama(LlamaCheckpoint checkpoint, string directory)
        {
            this.checkpoint = checkpoint;
            if (checkpoint.Vocabulary is null)
            {
                checkpoint.Dispose();
                throw new BioForgeException($"{directory}: no {SmilesVocabulary.FileName}; fine-tuning a Llama model needs its SMILES vocabulary");
            }
            vocabulary = checkpoint.Vocabulary;
        }

        public override nn.Module Network => checkpoint.Model;
        public override string Kind => "llama";
        public override int HiddenSize => checkpoint.Config.HiddenSize;
        public override long PadId => checkpoint.Config.PadTokenId;
        public override string[] DefaultLoraTargets => ["q_proj", "v_proj"];

        public override EncodedSequence Encode(string sequence)
        {
            if (sequence.Any(char.IsWhiteSpace)) throw new BioForgeException($"SMILES '{sequence}' contains white space");
            var tokens = vocabulary.Encode(sequence);
            return new EncodedSequence([.. tokens.Select(t => (long)t)], tokens.Count(t => t == SmilesVocabulary.UnkId));
        }

        public override Tensor Hidden(Tensor ids, Tensor mask) => checkpoint.Model.LastHiddenState(ids, mask);

        public override void Save(string directory) => checkpoint.Save(directory);

        public override void Dispose() => checkpoint.Dispose();
    }
}
