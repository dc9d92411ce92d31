using BioForge.Distributed;
using BioForge.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BioForge.Models.Esm;

/// <summary>How attention is computed.</summary>
public enum AttentionKernel
{
    /// <summary>softmax(QKᵀ)V written out; the only kernel that can return attention probabilities.</summary>
    Explicit,
    /// <summary>LibTorch's <c>scaled_dot_product_attention</c> (flash / memory-efficient kernels where available).</summary>
    Fused,
}

/// <summary>What a forward pass should return besides the final representations.</summary>
public sealed record EsmForwardOptions
{
    public bool Logits { get; init; }
    public bool HiddenStates { get; init; }
    public bool Attentions { get; init; }
    public AttentionKernel Kernel { get; init; } = AttentionKernel.Fused;
}

/// <summary>Results of a forward pass; tensors belong to the caller's dispose scope.</summary>
public sealed class EsmOutput
{
    /// <summary>Final representations after <c>emb_layer_norm_after</c>: [B, T, hidden].</summary>
    public required Tensor LastHiddenState { get; init; }
    /// <summary>[B, T, vocab] when requested.</summary>
    public Tensor? Logits { get; init; }
    /// <summary>Embedding output, then the output of each layer (the last after <c>emb_layer_norm_after</c>), as Hugging Face returns them.</summary>
    public IReadOnlyList<Tensor>? HiddenStates { get; init; }
    /// <summary>Softmax attention probabilities per layer: [B, heads, T, T].</summary>
    public IReadOnlyList<Tensor>? Attentions { get; init; }
}

/// <summary>
/// ESM-2 with its masked-LM and contact heads, as Hugging Face's <c>EsmForMaskedLM</c> (module and parameter names
/// follow its checkpoint keys). Pre-LayerNorm transformer with rotary attention, exact GELU, token-dropout rescaling.
/// </summary>
public sealed class EsmForMaskedLM : nn.Module
{
    public EsmConfig Config { get; }

    /// <summary>
    /// Recompute each layer in the backward pass instead of keeping its activations (training only; refused with
    /// dropout, whose draws would differ on recomputation).
    /// </summary>
    public bool ActivationCheckpointing
    {
        get => esm.encoder.ActivationCheckpointing;
        set
        {
            if (value && (Config.HiddenDropoutProb > 0 || Config.AttentionProbsDropoutProb > 0))
                throw new BioForgeException("activation checkpointing needs hidden_dropout_prob and attention_probs_dropout_prob of 0");
            esm.encoder.ActivationCheckpointing = value;
        }
    }

    private readonly EsmModel esm;
    private readonly EsmLMHead lm_head;

    /// <summary>
    /// False for a checkpoint saved without the masked-LM head (a bare <c>EsmModel</c>, as fine-tuning libraries save
    /// an encoder): it gives hidden states and contacts, and asking it for token logits is refused.
    /// </summary>
    public bool HasLanguageModelHead { get; internal set; } = true;

    /// <param name="layout">Tensor parallelism: how attention and MLP projections are split (none by default).</param>
    public EsmForMaskedLM(EsmConfig config, ParallelLayout? layout = null) : base(nameof(EsmForMaskedLM))
    {
        Config = config;
        ModelShape.Of(config).EnsureFitsInMemory("model config"); // also for random and training models, not only loaded ones
        esm = new EsmModel(config, layout ?? ParallelLayout.Single);
        lm_head = new EsmLMHead(config);
        RegisterComponents();
    }

    /// <summary>
    /// Runs the network on token ids [B, T] with an attention mask [B, T] (1 = token, 0 = padding).
    /// </summary>
    public EsmOutput Forward(Tensor inputIds, Tensor attentionMask, EsmForwardOptions options)
    {
        if (options.Attentions && options.Kernel != AttentionKernel.Explicit)
            throw new ArgumentException("attention probabilities need the explicit attention kernel", nameof(options));
        if (options.Logits && !HasLanguageModelHead)
            throw new BioForgeException("this ESM-2 checkpoint has no masked-LM head (no lm_head.* tensors: saved from a bare EsmModel); it gives embeddings and contacts, not token predictions");
        var (hidden, all, attentions) = esm.Forward(inputIds, attentionMask, options);
        return new EsmOutput
        {
            LastHiddenState = hidden,
            HiddenStates = all,
            Attentions = attentions,
            Logits = options.Logits ? lm_head.Forward(hidden, esm.WordEmbeddings) : null,
        };
    }

    /// <summary>
    /// False when the contact head's logistic regression was never fitted: every weight and the bias are still at
    /// initialisation scale (|x| &lt; 0.1; Hugging Face draws them from N(0, 0.02) or zeros). A model trained by masked
    /// language modelling only (the shipped esm2-small) keeps that head, which maps everything to about 0.5: a flat
    /// map that says nothing about contacts. A fitted regression (every hub ESM-2 checkpoint) has larger weights on the
    /// informative heads and a negative bias, since contacts are rare.
    /// </summary>
    public bool ContactHeadTrained => esm.contact_head.Trained;

    /// <summary>Contact probabilities [B, T-2, T-2] from all attention maps, as <c>EsmForMaskedLM.predict_contacts</c>; float32
    /// in any model dtype (the head runs in float32).</summary>
    public Tensor PredictContacts(Tensor inputIds, Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        var output = Forward(inputIds, attentionMask, new EsmForwardOptions { Attentions = true, Kernel = AttentionKernel.Explicit });
        var maps = stack(output.Attentions!, dim: 1); // [B, layers, heads, T, T]
        var keep = attentionMask.to(maps.dtype);
        maps = maps * keep.unsqueeze(1).unsqueeze(2).unsqueeze(3) * keep.unsqueeze(1).unsqueeze(2).unsqueeze(4);
        return esm.contact_head.Forward(inputIds, maps).MoveToOuterDisposeScope();
    }
}

internal sealed class EsmModel : nn.Module
{
    private readonly EsmEmbeddings embeddings;
    internal readonly EsmEncoder encoder;
    internal readonly EsmContactPredictionHead contact_head;
    private readonly EsmConfig config;

    public EsmModel(EsmConfig config, ParallelLayout layout) : base(nameof(EsmModel))
    {
        this.config = config;
        embeddings = new EsmEmbeddings(config);
        encoder = new EsmEncoder(config, layout);
        contact_head = new EsmContactPredictionHead(config.NumHiddenLayers * config.NumAttentionHeads, config.EosTokenId);
        RegisterComponents();
    }

    public Parameter WordEmbeddings => embeddings.word_embeddings.weight!;

    public (Tensor Hidden, List<Tensor>? All, List<Tensor>? Attentions) Forward(Tensor inputIds, Tensor attentionMask, EsmForwardOptions options)
    {
        var x = embeddings.Forward(inputIds, attentionMask);
        var (cos, sin) = RotaryEmbedding.Tables(0, inputIds.shape[1], config.HeadDim, config.RopeTheta, x.device);
        var keyMask = attentionMask.to(ScalarType.Bool).unsqueeze(1).unsqueeze(2); // [B, 1, 1, T]
        return encoder.Forward(x, keyMask, cos, sin, options);
    }
}

internal sealed class EsmEmbeddings : nn.Module
{
    internal readonly Embedding word_embeddings;
    private readonly LayerNorm? layer_norm;
    private readonly EsmConfig config;

    public EsmEmbeddings(EsmConfig config) : base(nameof(EsmEmbeddings))
    {
        this.config = config;
        word_embeddings = nn.Embedding(config.VocabSize, config.HiddenSize, padding_idx: config.PadTokenId);
        if (config.EmbLayerNormBefore) layer_norm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor inputIds, Tensor attentionMask)
    {
        var x = word_embeddings.forward(inputIds);
        if (config.TokenDropout)
        {
            // ESM-2 was trained with 15% × 80% of tokens replaced by <mask> and their embeddings zeroed; at any other
            // masking rate the embeddings are rescaled so their expected magnitude matches training.
            var isMask = inputIds.Eq(config.MaskTokenId);
            x = x.MaskedFill(isMask.unsqueeze(-1), 0.0);
            const double trainRatio = 0.15 * 0.8;
            var observed = isMask.sum(-1).to(ScalarType.Float32) / attentionMask.sum(-1).to(ScalarType.Float32);
            x = (x.Mul(1 - trainRatio) / observed.SubtractFrom(1).unsqueeze(-1).unsqueeze(-1)).to(x.dtype);
        }
        if (layer_norm is not null) x = layer_norm.forward(x);
        return (x * attentionMask.unsqueeze(-1).to(x.dtype)).to(x.dtype);
    }
}

internal sealed class EsmEncoder : nn.Module
{
    private readonly ModuleList<EsmLayer> layer;
    private readonly LayerNorm emb_layer_norm_after;

    public bool ActivationCheckpointing { get; set; }

    public EsmEncoder(EsmConfig config, ParallelLayout layout) : base(nameof(EsmEncoder))
    {
        layer = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new EsmLayer(config, layout)).ToArray());
        emb_layer_norm_after = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        RegisterComponents();
    }

    public (Tensor, List<Tensor>?, List<Tensor>?) Forward(Tensor x, Tensor keyMask, Tensor cos, Tensor sin, EsmForwardOptions options)
    {
        var all = options.HiddenStates ? new List<Tensor>() : null;
        var attentions = options.Attentions ? new List<Tensor>() : null;
        foreach (var block in layer)
        {
            all?.Add(x);
            // One scope per layer: its temporaries (those autograd does not save, such as the float32 rotary
            // intermediates) are freed when the layer ends, not when the caller's scope (a whole micro-batch) does.
            using var scope = NewDisposeScope();
            if (ActivationCheckpointing && !options.Attentions)
            {
                x = ActivationCheckpoint.Run(h => block.Forward(h, keyMask, cos, sin, options).Item1, x).MoveToOuterDisposeScope();
                continue;
            }
            (x, var probs) = block.Forward(x, keyMask, cos, sin, options);
            x = x.MoveToOuterDisposeScope();
            if (probs is not null) attentions?.Add(probs.MoveToOuterDisposeScope());
        }
        x = emb_layer_norm_after.forward(x);
        all?.Add(x);
        return (x, all, attentions);
    }
}

/// <summary>Pre-LN block: x + Attn(LN(x)), then x + FC2(GELU(FC1(LN(x)))).</summary>
internal sealed class EsmLayer : nn.Module
{
    private readonly EsmAttention attention;
    private readonly DenseHolder intermediate;
    private readonly DenseHolder output;
    private readonly LayerNorm LayerNorm;
    private readonly double dropout;

    public EsmLayer(EsmConfig config, ParallelLayout layout) : base(nameof(EsmLayer))
    {
        dropout = config.HiddenDropoutProb;
        attention = new EsmAttention(config, layout);
        intermediate = new DenseHolder(layout.Column(config.HiddenSize, config.IntermediateSize, hasBias: true));
        output = new DenseHolder(layout.Row(config.IntermediateSize, config.HiddenSize, hasBias: true));
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        RegisterComponents();
    }

    public (Tensor, Tensor?) Forward(Tensor x, Tensor keyMask, Tensor cos, Tensor sin, EsmForwardOptions options)
    {
        var (attended, probs) = attention.Forward(x, keyMask, cos, sin, options);
        var h = F.gelu(intermediate.dense.call(LayerNorm.forward(attended)));
        return (attended.Plus(F.dropout(output.dense.call(h), dropout, training)), probs);
    }
}

internal sealed class EsmAttention : nn.Module
{
    private readonly EsmSelfAttention self;
    private readonly DenseHolder output;
    private readonly LayerNorm LayerNorm;
    private readonly double dropout;

    public EsmAttention(EsmConfig config, ParallelLayout layout) : base(nameof(EsmAttention))
    {
        dropout = config.HiddenDropoutProb;
        self = new EsmSelfAttention(config, layout);
        output = new DenseHolder(layout.Row(config.HiddenSize, config.HiddenSize, hasBias: true));
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        RegisterComponents();
    }

    public (Tensor, Tensor?) Forward(Tensor x, Tensor keyMask, Tensor cos, Tensor sin, EsmForwardOptions options)
    {
        var (context, probs) = self.Forward(LayerNorm.forward(x), keyMask, cos, sin, options);
        return (x.Plus(F.dropout(output.dense.call(context), dropout, training)), probs);
    }
}

/// <summary>Multi-head self-attention with rotary positions; under tensor parallelism each rank holds its share of the heads.</summary>
internal sealed class EsmSelfAttention : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> query;
    private readonly nn.Module<Tensor, Tensor> key;
    private readonly nn.Module<Tensor, Tensor> value;
    private readonly ParallelLayout layout;
    private readonly int heads;
    private readonly int headDim;
    private readonly double dropout;

    public EsmSelfAttention(EsmConfig config, ParallelLayout layout) : base(nameof(EsmSelfAttention))
    {
        dropout = config.AttentionProbsDropoutProb;
        heads = layout.Local(config.NumAttentionHeads, "num_attention_heads");
        headDim = config.HeadDim;
        this.layout = layout;
        query = layout.Column(config.HiddenSize, config.HiddenSize, hasBias: true, entered: true);
        key = layout.Column(config.HiddenSize, config.HiddenSize, hasBias: true, entered: true);
        value = layout.Column(config.HiddenSize, config.HiddenSize, hasBias: true, entered: true);
        RegisterComponents();
    }

    public (Tensor Context, Tensor? Probs) Forward(Tensor x, Tensor keyMask, Tensor cos, Tensor sin, EsmForwardOptions options)
    {
        long b = x.shape[0], t = x.shape[1];
        Tensor Heads(Tensor y) => y.view(b, t, heads, headDim).transpose(1, 2); // [B, H, T, d]
        x = layout.EnterColumns(x);
        var k = RotaryEmbedding.Apply(Heads(key.call(x)), cos, sin);
        var v = Heads(value.call(x));
        Tensor context, probs = null!;
        if (options.Kernel == AttentionKernel.Fused)
        {
            // Rotation is linear, so letting the kernel apply the 1/√d scale after it equals ESM's scale-then-rotate.
            var q = RotaryEmbedding.Apply(Heads(query.call(x)), cos, sin);
            context = F.scaled_dot_product_attention(q, k, v, keyMask, training ? dropout : 0.0);
        }
        else
        {
            var q = RotaryEmbedding.Apply(Heads(query.call(x)).Mul(Math.Pow(headDim, -0.5)), cos, sin);
            var scores = matmul(q, k.transpose(-1, -2)).MaskedFill(keyMask.logical_not(), double.NegativeInfinity);
            probs = F.softmax(scores, -1, ScalarType.Float32).to(q.dtype);
            context = matmul(F.dropout(probs, dropout, training), v);
        }
        context = context.transpose(1, 2).reshape(b, t, heads * headDim);
        return (context, options.Attentions ? probs : null);
    }
}

/// <summary>A module whose only child is <c>dense</c>, mirroring Hugging Face's checkpoint nesting.</summary>
internal sealed class DenseHolder : nn.Module
{
    internal readonly nn.Module<Tensor, Tensor> dense;

    public DenseHolder(nn.Module<Tensor, Tensor> dense) : base(nameof(DenseHolder))
    {
        this.dense = dense;
        RegisterComponents();
    }
}

/// <summary>dense → GELU → LayerNorm → decoder tied to the token embedding, plus a separate bias.</summary>
internal sealed class EsmLMHead : nn.Module
{
    private readonly Linear dense;
    private readonly LayerNorm layer_norm;
    private readonly Parameter bias;

    public EsmLMHead(EsmConfig config) : base(nameof(EsmLMHead))
    {
        dense = nn.Linear(config.HiddenSize, config.HiddenSize);
        layer_norm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        bias = nn.Parameter(zeros(config.VocabSize));
        RegisterComponents();
    }

    public Tensor Forward(Tensor features, Tensor tiedDecoderWeight)
    {
        var x = layer_norm.forward(F.gelu(dense.forward(features)));
        return F.linear(x, tiedDecoderWeight).Plus(bias);
    }
}

/// <summary>Logistic regression over symmetrized, average-product-corrected attention maps of every layer and head.</summary>
internal sealed class EsmContactPredictionHead : nn.Module
{
    private readonly Linear regression;
    private readonly int eosId;

    public EsmContactPredictionHead(int channels, int eosId) : base(nameof(EsmContactPredictionHead))
    {
        this.eosId = eosId;
        regression = nn.Linear(channels, 1);
        RegisterComponents();
    }

    /// <summary>Above anything N(0, 0.02) initialisation draws for up to a few thousand layer × head channels.</summary>
    private const float InitialScale = 0.1f;

    public bool Trained
    {
        get
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            using var weights = regression.weight!.abs().max();
            using var bias = regression.bias!.abs().max();
            return weights.to(ScalarType.Float32).item<float>() >= InitialScale || bias.to(ScalarType.Float32).item<float>() >= InitialScale;
        }
    }

    /// <param name="tokens">[B, T] token ids.</param>
    /// <param name="maps">[B, layers, heads, T, T] attention probabilities.</param>
    public Tensor Forward(Tensor tokens, Tensor maps)
    {
        var notEos = tokens.Ne(eosId).to(maps.dtype);
        var eosMask = notEos.unsqueeze(1) * notEos.unsqueeze(2);
        maps = maps * eosMask.unsqueeze(1).unsqueeze(1);
        long t = maps.shape[^1];
        maps = maps.narrow(-2, 1, t - 2).narrow(-1, 1, t - 2); // drop the <cls> row/column and the last one (<eos> or padding)
        long b = maps.shape[0], channels = maps.shape[1] * maps.shape[2], n = maps.shape[^1];
        maps = maps.reshape(b, channels, n, n);
        // In float32 whatever the model's dtype: APC subtracts nearly equal sums of thousands of probabilities, which
        // bfloat16 holds to 3 digits (a bf16 map differed from the float32 one by as much as the map varies). The
        // regression is a sum over channels, so they are corrected and weighed a group at a time: float32 copies of
        // every layer × head map at once would take twice the bfloat16 maps' memory (~18 GB for 3B at 1,022 residues).
        var weight = regression.weight!.to(ScalarType.Float32).reshape(channels);
        // A fresh tensor: the bias expanded to [1, 1, 1] would be the parameter itself, and add_ would write into the model.
        var logits = zeros(b, n, n, ScalarType.Float32, maps.device);
        for (long first = 0; first < channels; first += ChannelGroup)
        {
            using var scope = NewDisposeScope();
            long count = Math.Min(ChannelGroup, channels - first);
            var x = maps.narrow(1, first, count).to(ScalarType.Float32);
            x = x.Plus(x.transpose(-1, -2));
            var a1 = x.sum(-1, keepdim: true);
            var a2 = x.sum(-2, keepdim: true);
            var a12 = x.sum([-1L, -2L], keepdim: true);
            x -= a1 * a2 / a12;
            logits.PlusInPlace(einsum("bcij,c->bij", x, weight.narrow(0, first, count)));
        }
        return logits.Plus(regression.bias!.to(ScalarType.Float32)).sigmoid();
    }

    /// <summary>Layer × head maps corrected at once: 64 × 1,022² float32 values are 270 MB a sequence.</summary>
    private const long ChannelGroup = 64;
}
