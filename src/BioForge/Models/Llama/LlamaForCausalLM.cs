using BioForge.Distributed;
using BioForge.IO;
using BioForge.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BioForge.Models.Llama;

/// <summary>Results of a forward pass; tensors belong to the caller's dispose scope.</summary>
public sealed class LlamaOutput
{
    /// <summary>[B, T, vocab]; with a vocabulary-split layout, this rank's [B, T, vocab / N] slice.</summary>
    public required Tensor Logits { get; init; }
    /// <summary>Embedding output, then each layer's output; the last one after the final RMSNorm, as Hugging Face returns them.</summary>
    public IReadOnlyList<Tensor>? HiddenStates { get; init; }
}

/// <summary>
/// A Llama-style decoder as Hugging Face's <c>LlamaForCausalLM</c> (parameter names are its checkpoint keys):
/// pre-RMSNorm blocks, rotary position embeddings, grouped-query attention, SwiGLU MLP, optionally tied LM head.
/// </summary>
public sealed class LlamaForCausalLM : nn.Module
{
    public LlamaConfig Config { get; }

    /// <summary>Recompute each decoder layer in the backward pass instead of keeping its activations (training only).</summary>
    public bool ActivationCheckpointing
    {
        get => model.ActivationCheckpointing;
        set => model.ActivationCheckpointing = value;
    }

    private readonly LlamaModel model;
    private readonly nn.Module<Tensor, Tensor>? lm_head;
    private readonly ParallelLayout layout;

    /// <param name="layout">Tensor parallelism: how attention, MLP and (optionally) the vocabulary are split (none by default).</param>
    public LlamaForCausalLM(LlamaConfig config, ParallelLayout? layout = null) : base(nameof(LlamaForCausalLM))
    {
        Config = config;
        ModelShape.Of(config).EnsureFitsInMemory("model config"); // also for random and training models, not only loaded ones
        this.layout = layout ?? ParallelLayout.Single;
        model = new LlamaModel(config, this.layout);
        if (!config.TieWordEmbeddings) lm_head = this.layout.VocabularyProjection(config.HiddenSize, config.VocabSize);
        RegisterComponents();
    }

    /// <param name="inputIds">[B, T] token ids.</param>
    /// <param name="attentionMask">[B, T], 1 = token, 0 = padding.</param>
    /// <param name="cache">Keys and values of earlier positions; extended in place. <paramref name="attentionMask"/> then
    /// covers the cached positions as well: [B, cached + T].</param>
    public LlamaOutput Forward(Tensor inputIds, Tensor attentionMask, bool hiddenStates = false, KeyValueCache? cache = null)
    {
        var (hidden, all) = model.Forward(inputIds, attentionMask, hiddenStates, cache);
        var logits = lm_head is null ? F.linear(layout.EnterVocabularyShards(hidden), model.EmbedTokens) : lm_head.call(hidden);
        return new LlamaOutput { Logits = logits, HiddenStates = all };
    }

    /// <summary>
    /// A forward pass over sequences that each stand at their own positions (continuous batching): row b's tokens sit at
    /// <paramref name="positions"/>[b] and may attend to the keys where <paramref name="allowed"/> is true; <paramref name="cache"/>
    /// stores the new keys and values and returns every attended one. The caller owns scheduling and the cache layout.
    /// </summary>
    /// <param name="inputIds">[B, T] token ids.</param>
    /// <param name="positions">[B, T] int64 position of each token (rotary angle).</param>
    /// <param name="allowed">[B, 1, T, K] bool: which of the K cached positions each token sees.</param>
    /// <returns>Logits [B, T, vocab].</returns>
    public Tensor Forward(Tensor inputIds, Tensor positions, Tensor allowed, IKeyValueStore cache)
    {
        var hidden = model.Forward(inputIds, positions, allowed, cache);
        return lm_head is null ? F.linear(layout.EnterVocabularyShards(hidden), model.EmbedTokens) : lm_head.call(hidden);
    }

    /// <summary>The final (normalised) hidden states [B, T, hidden] without the vocabulary projection.</summary>
    public Tensor LastHiddenState(Tensor inputIds, Tensor attentionMask) => model.Forward(inputIds, attentionMask, false, null).Hidden;

    /// <summary>
    /// Greedy decoding of one sequence: appends the most probable token until <paramref name="maxNewTokens"/> or
    /// end-of-sequence, feeding only the new token at each step (key/value cache).
    /// </summary>
    public long[] GreedyDecode(IReadOnlyList<long> prompt, int maxNewTokens)
    {
        if (prompt.Count == 0) throw new BioForgeException("greedy decoding needs a non-empty prompt");
        var tokens = prompt.ToList();
        var device = model.EmbedTokens.device;
        using var _ = no_grad();
        using var cache = new KeyValueCache(Config.NumHiddenLayers);
        var pending = tokens.ToArray();
        for (int step = 0; step < maxNewTokens; step++)
        {
            using var scope = NewDisposeScope();
            var ids = tensor(pending, [1, pending.Length]).to(device);
            var mask = ones(1, tokens.Count, ScalarType.Int64, device);
            var logits = Forward(ids, mask, cache: cache).Logits;
            long next = logits[0, -1].argmax().item<long>();
            tokens.Add(next);
            pending = [next];
            if (next == Config.EosTokenId) break;
        }
        return [.. tokens];
    }

    /// <summary>
    /// Loads a Hugging Face Llama checkpoint directory (config.json + safetensors). With a tensor-parallel
    /// <paramref name="layout"/> each rank takes its shard of the unsharded tensors.
    /// </summary>
    public static LlamaForCausalLM Load(string directory, Device device, ScalarType dtype, ParallelLayout? layout = null)
    {
        string configPath = ModelRegistry.ConfigPath(directory, "Llama");
        var config = LlamaConfig.FromJson(configPath);
        ModelShape.Of(config).EnsureFitsInMemory(configPath);
        return CheckpointWeights.Place(new LlamaForCausalLM(config, layout), network =>
        {
            using var weights = SafetensorsCheckpoint.Open(directory);
            CheckpointWeights.LoadInto(network, weights, name => [name],
                name => name.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal) || (network.Config.TieWordEmbeddings && name == "lm_head.weight"),
                "Llama", ShardedParameters.Of(network, layout).Shard);
        }, device, dtype);
    }
}

internal sealed class LlamaModel : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> embed_tokens;
    private readonly ModuleList<LlamaDecoderLayer> layers;
    private readonly RMSNorm norm;
    private readonly LlamaConfig config;

    public LlamaModel(LlamaConfig config, ParallelLayout layout) : base(nameof(LlamaModel))
    {
        this.config = config;
        embed_tokens = layout.Embedding(config.VocabSize, config.HiddenSize);
        layers = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new LlamaDecoderLayer(config, layout)).ToArray());
        norm = new RMSNorm(config.HiddenSize, config.RmsNormEps);
        RegisterComponents();
    }

    /// <summary>The token table (this rank's vocabulary rows when the layout splits the vocabulary).</summary>
    public Tensor EmbedTokens => embed_tokens.get_parameter("weight")!;

    public bool ActivationCheckpointing { get; set; }

    public (Tensor Hidden, List<Tensor>? All) Forward(Tensor inputIds, Tensor attentionMask, bool hiddenStates, KeyValueCache? cache)
    {
        long t = inputIds.shape[1], past = cache?.Length ?? 0, total = past + t;
        if (attentionMask.shape[1] != total)
            throw new ArgumentException($"attention mask covers {attentionMask.shape[1]} positions, expected {total}", nameof(attentionMask));
        var x = embed_tokens.forward(inputIds);
        var (cos, sin) = RotaryEmbedding.Tables(past, t, config.HeadDim, config.RopeTheta, x.device);
        // Query i (at position past + i) sees positions up to its own that are not padding.
        var causal = ones(t, total, ScalarType.Bool, x.device).tril(past);
        var allowed = causal.unsqueeze(0).unsqueeze(0).logical_and(attentionMask.to(ScalarType.Bool).unsqueeze(1).unsqueeze(2));
        return Layers(x, allowed, cos, sin, cache, hiddenStates);
    }

    /// <summary>Rows at positions of their own, attending where <paramref name="allowed"/> says (see <see cref="LlamaForCausalLM.Forward(Tensor, Tensor, Tensor, IKeyValueStore)"/>).</summary>
    public Tensor Forward(Tensor inputIds, Tensor positions, Tensor allowed, IKeyValueStore cache)
    {
        var x = embed_tokens.forward(inputIds);
        var (cos, sin) = RotaryEmbedding.Tables(positions, config.HeadDim, config.RopeTheta);
        return Layers(x, allowed, cos, sin, cache, false).Hidden;
    }

    private (Tensor Hidden, List<Tensor>? All) Layers(Tensor x, Tensor allowed, Tensor cos, Tensor sin, IKeyValueStore? cache, bool hiddenStates)
    {
        var all = hiddenStates ? new List<Tensor>() : null;
        for (int i = 0; i < layers.Count; i++)
        {
            all?.Add(x);
            var layer = layers[i];
            // One scope per layer: what autograd does not save is freed when the layer ends, not with the caller's scope.
            using var scope = NewDisposeScope();
            x = (ActivationCheckpointing && cache is null
                ? ActivationCheckpoint.Run(h => layer.Forward(h, allowed, cos, sin, null, 0), x)
                : layer.Forward(x, allowed, cos, sin, cache, i)).MoveToOuterDisposeScope();
        }
        x = norm.forward(x);
        all?.Add(x);
        return (x, all);
    }
}

/// <summary>x · rsqrt(mean(x²) + ε) · weight, computed in float32.</summary>
internal sealed class RMSNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double eps;

    public RMSNorm(int size, double eps) : base(nameof(RMSNorm))
    {
        this.eps = eps;
        weight = nn.Parameter(ones(size));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = x.to(ScalarType.Float32);
        h = h * rsqrt(h.Squared().mean([-1L], keepdim: true).Add(eps));
        return weight * h.to(x.dtype);
    }
}

internal sealed class LlamaDecoderLayer : nn.Module
{
    private readonly RMSNorm input_layernorm;
    private readonly LlamaAttention self_attn;
    private readonly RMSNorm post_attention_layernorm;
    private readonly LlamaMLP mlp;

    public LlamaDecoderLayer(LlamaConfig config, ParallelLayout layout) : base(nameof(LlamaDecoderLayer))
    {
        input_layernorm = new RMSNorm(config.HiddenSize, config.RmsNormEps);
        self_attn = new LlamaAttention(config, layout);
        post_attention_layernorm = new RMSNorm(config.HiddenSize, config.RmsNormEps);
        mlp = new LlamaMLP(config, layout);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor allowed, Tensor cos, Tensor sin, IKeyValueStore? cache, int layer)
    {
        x = x.Plus(self_attn.Forward(input_layernorm.forward(x), allowed, cos, sin, cache, layer));
        return x.Plus(mlp.forward(post_attention_layernorm.forward(x)));
    }
}

/// <summary>
/// Grouped-query attention: each key/value head serves NumAttentionHeads / NumKeyValueHeads query heads. Under tensor
/// parallelism each rank holds its share of the heads (query/key/value column-parallel, output row-parallel).
/// </summary>
internal sealed class LlamaAttention : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> q_proj;
    private readonly nn.Module<Tensor, Tensor> k_proj;
    private readonly nn.Module<Tensor, Tensor> v_proj;
    private readonly nn.Module<Tensor, Tensor> o_proj;
    private readonly ParallelLayout layout;
    private readonly int heads;
    private readonly int kvHeads;
    private readonly int headDim;

    public LlamaAttention(LlamaConfig config, ParallelLayout layout) : base(nameof(LlamaAttention))
    {
        this.layout = layout;
        heads = layout.Local(config.NumAttentionHeads, "num_attention_heads");
        kvHeads = layout.Local(config.NumKeyValueHeads, "num_key_value_heads");
        headDim = config.HeadDim;
        q_proj = layout.Column(config.HiddenSize, config.NumAttentionHeads * headDim, hasBias: false, entered: true);
        k_proj = layout.Column(config.HiddenSize, config.NumKeyValueHeads * headDim, hasBias: false, entered: true);
        v_proj = layout.Column(config.HiddenSize, config.NumKeyValueHeads * headDim, hasBias: false, entered: true);
        o_proj = layout.Row(config.NumAttentionHeads * headDim, config.HiddenSize, hasBias: false);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor allowed, Tensor cos, Tensor sin, IKeyValueStore? cache, int layer)
    {
        long b = x.shape[0], t = x.shape[1];
        Tensor Split(Tensor y, int n) => y.view(b, t, n, headDim).transpose(1, 2);
        x = layout.EnterColumns(x);
        var q = RotaryEmbedding.Apply(Split(q_proj.call(x), heads), cos, sin);
        var k = RotaryEmbedding.Apply(Split(k_proj.call(x), kvHeads), cos, sin);
        var v = Split(v_proj.call(x), kvHeads);
        var context = cache is null ? Attention.Masked(q, k, v, allowed) : cache.Attend(layer, q, k, v, allowed);
        return o_proj.call(context.transpose(1, 2).reshape(b, t, heads * headDim));
    }
}

/// <summary>SwiGLU: down(silu(gate(x)) · up(x)); gate and up column-parallel, down row-parallel.</summary>
internal sealed class LlamaMLP : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> gate_proj;
    private readonly nn.Module<Tensor, Tensor> up_proj;
    private readonly nn.Module<Tensor, Tensor> down_proj;
    private readonly ParallelLayout layout;

    public LlamaMLP(LlamaConfig config, ParallelLayout layout) : base(nameof(LlamaMLP))
    {
        this.layout = layout;
        gate_proj = layout.Column(config.HiddenSize, config.IntermediateSize, hasBias: false, entered: true);
        up_proj = layout.Column(config.HiddenSize, config.IntermediateSize, hasBias: false, entered: true);
        down_proj = layout.Row(config.IntermediateSize, config.HiddenSize, hasBias: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = layout.EnterColumns(x);
        return down_proj.call(F.silu(gate_proj.call(x)) * up_proj.call(x));
    }
}
