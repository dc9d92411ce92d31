using BioForge.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BioForge.Models.Llama;

/// <summary>Results of a forward pass; tensors belong to the caller's dispose scope.</summary>
public sealed class LlamaOutput
{
    /// <summary>[B, T, vocab].</summary>
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

    private readonly LlamaModel model;
    private readonly Linear? lm_head;

    public LlamaForCausalLM(LlamaConfig config) : base(nameof(LlamaForCausalLM))
    {
        Config = config;
        model = new LlamaModel(config);
        if (!config.TieWordEmbeddings) lm_head = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false);
        RegisterComponents();
    }

    /// <param name="inputIds">[B, T] token ids.</param>
    /// <param name="attentionMask">[B, T], 1 = token, 0 = padding.</param>
    public LlamaOutput Forward(Tensor inputIds, Tensor attentionMask, bool hiddenStates = false)
    {
        var (hidden, all) = model.Forward(inputIds, attentionMask, hiddenStates);
        var logits = lm_head is null ? F.linear(hidden, model.EmbedTokens) : lm_head.forward(hidden);
        return new LlamaOutput { Logits = logits, HiddenStates = all };
    }

    /// <summary>
    /// Greedy decoding of one sequence: appends the most probable token until <paramref name="maxNewTokens"/> or
    /// end-of-sequence. Each step reruns the whole prefix (no key/value cache yet).
    /// </summary>
    public long[] GreedyDecode(IReadOnlyList<long> prompt, int maxNewTokens)
    {
        if (prompt.Count == 0) throw new BioForgeException("greedy decoding needs a non-empty prompt");
        var tokens = prompt.ToList();
        var device = model.EmbedTokens.device;
        using var _ = no_grad();
        for (int step = 0; step < maxNewTokens; step++)
        {
            using var scope = NewDisposeScope();
            var ids = tensor(tokens.ToArray(), [1, tokens.Count]).to(device);
            var logits = Forward(ids, ones_like(ids)).Logits;
            long next = logits[0, -1].argmax().item<long>();
            tokens.Add(next);
            if (next == Config.EosTokenId) break;
        }
        return [.. tokens];
    }

    /// <summary>Loads a Hugging Face Llama checkpoint directory (config.json + safetensors).</summary>
    public static LlamaForCausalLM Load(string directory, Device device, ScalarType dtype)
    {
        if (!Directory.Exists(directory)) throw new BioForgeException($"model directory {directory} does not exist");
        string configPath = Path.Combine(directory, "config.json");
        if (!File.Exists(configPath)) throw new BioForgeException($"{directory}: no config.json (expected a Hugging Face Llama checkpoint directory)");
        var network = new LlamaForCausalLM(LlamaConfig.FromJson(configPath));
        try
        {
            using (var weights = SafetensorsCheckpoint.Open(directory))
                CheckpointWeights.LoadInto(network, weights, name => [name],
                    name => name.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal) || (network.Config.TieWordEmbeddings && name == "lm_head.weight"),
                    "Llama");
            network.to(device, dtype);
            network.eval();
            return network;
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }
}

internal sealed class LlamaModel : nn.Module
{
    private readonly Embedding embed_tokens;
    private readonly ModuleList<LlamaDecoderLayer> layers;
    private readonly RMSNorm norm;
    private readonly LlamaConfig config;

    public LlamaModel(LlamaConfig config) : base(nameof(LlamaModel))
    {
        this.config = config;
        embed_tokens = nn.Embedding(config.VocabSize, config.HiddenSize);
        layers = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new LlamaDecoderLayer(config)).ToArray());
        norm = new RMSNorm(config.HiddenSize, config.RmsNormEps);
        RegisterComponents();
    }

    public Tensor EmbedTokens => embed_tokens.weight!;

    public (Tensor Hidden, List<Tensor>? All) Forward(Tensor inputIds, Tensor attentionMask, bool hiddenStates)
    {
        long t = inputIds.shape[1];
        var x = embed_tokens.forward(inputIds);
        var (cos, sin) = Rotary(t, config.HeadDim, config.RopeTheta, x.device);
        // A query sees earlier positions that are not padding.
        var causal = ones(t, t, ScalarType.Bool, x.device).tril();
        var allowed = causal.unsqueeze(0).unsqueeze(0).logical_and(attentionMask.to(ScalarType.Bool).unsqueeze(1).unsqueeze(2));
        var all = hiddenStates ? new List<Tensor>() : null;
        foreach (var layer in layers)
        {
            all?.Add(x);
            x = layer.Forward(x, allowed, cos, sin);
        }
        x = norm.forward(x);
        all?.Add(x);
        return (x, all);
    }

    private static (Tensor Cos, Tensor Sin) Rotary(long length, int dim, double theta, Device device)
    {
        using var scope = NewDisposeScope();
        var invFreq = 1.0 / pow(theta, arange(0, dim, 2, ScalarType.Int64, device).to(ScalarType.Float32) / dim);
        var angles = outer(arange(length, ScalarType.Int64, device).to(ScalarType.Float32), invFreq);
        angles = cat([angles, angles], dim: -1);
        return (angles.cos().MoveToOuterDisposeScope(), angles.sin().MoveToOuterDisposeScope());
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
        h = h * rsqrt(h.pow(2).mean([-1L], keepdim: true) + eps);
        return weight * h.to(x.dtype);
    }
}

internal sealed class LlamaDecoderLayer : nn.Module
{
    private readonly RMSNorm input_layernorm;
    private readonly LlamaAttention self_attn;
    private readonly RMSNorm post_attention_layernorm;
    private readonly LlamaMLP mlp;

    public LlamaDecoderLayer(LlamaConfig config) : base(nameof(LlamaDecoderLayer))
    {
        input_layernorm = new RMSNorm(config.HiddenSize, config.RmsNormEps);
        self_attn = new LlamaAttention(config);
        post_attention_layernorm = new RMSNorm(config.HiddenSize, config.RmsNormEps);
        mlp = new LlamaMLP(config);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor allowed, Tensor cos, Tensor sin)
    {
        x = x + self_attn.Forward(input_layernorm.forward(x), allowed, cos, sin);
        return x + mlp.forward(post_attention_layernorm.forward(x));
    }
}

/// <summary>Grouped-query attention: each key/value head serves NumAttentionHeads / NumKeyValueHeads query heads.</summary>
internal sealed class LlamaAttention : nn.Module
{
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear o_proj;
    private readonly int heads;
    private readonly int kvHeads;
    private readonly int headDim;

    public LlamaAttention(LlamaConfig config) : base(nameof(LlamaAttention))
    {
        heads = config.NumAttentionHeads;
        kvHeads = config.NumKeyValueHeads;
        headDim = config.HeadDim;
        q_proj = nn.Linear(config.HiddenSize, heads * headDim, hasBias: false);
        k_proj = nn.Linear(config.HiddenSize, kvHeads * headDim, hasBias: false);
        v_proj = nn.Linear(config.HiddenSize, kvHeads * headDim, hasBias: false);
        o_proj = nn.Linear(heads * headDim, config.HiddenSize, hasBias: false);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor allowed, Tensor cos, Tensor sin)
    {
        long b = x.shape[0], t = x.shape[1];
        Tensor Split(Tensor y, int n) => y.view(b, t, n, headDim).transpose(1, 2);
        var q = ApplyRotary(Split(q_proj.forward(x), heads), cos, sin);
        var k = ApplyRotary(Split(k_proj.forward(x), kvHeads), cos, sin);
        var v = Split(v_proj.forward(x), kvHeads);
        int groups = heads / kvHeads;
        if (groups > 1)
        {
            k = k.repeat_interleave(groups, dim: 1);
            v = v.repeat_interleave(groups, dim: 1);
        }
        var scores = matmul(q, k.transpose(-1, -2)) * Math.Pow(headDim, -0.5);
        scores = scores.masked_fill(allowed.logical_not(), double.NegativeInfinity);
        var probs = F.softmax(scores, -1, ScalarType.Float32).to(q.dtype);
        var context = matmul(probs, v).transpose(1, 2).reshape(b, t, heads * headDim);
        return o_proj.forward(context);
    }

    private static Tensor ApplyRotary(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        var rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], dim: -1);
        return (x * cos + rotated * sin).to(x.dtype);
    }
}

/// <summary>SwiGLU: down(silu(gate(x)) · up(x)).</summary>
internal sealed class LlamaMLP : nn.Module<Tensor, Tensor>
{
    private readonly Linear gate_proj;
    private readonly Linear up_proj;
    private readonly Linear down_proj;

    public LlamaMLP(LlamaConfig config) : base(nameof(LlamaMLP))
    {
        gate_proj = nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: false);
        up_proj = nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: false);
        down_proj = nn.Linear(config.IntermediateSize, config.HiddenSize, hasBias: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => down_proj.forward(F.silu(gate_proj.forward(x)) * up_proj.forward(x));
}
