using BioForge.IO;
using BioForge.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BioForge.Models.Gpt2;

/// <summary>Results of a full forward pass; tensors belong to the caller's dispose scope.</summary>
public sealed class Gpt2Output
{
    /// <summary>[B, T, vocab].</summary>
    public required Tensor Logits { get; init; }
    /// <summary>After <c>ln_f</c>: [B, T, hidden].</summary>
    public required Tensor FinalHidden { get; init; }
    /// <summary>Token + position embeddings, then each block's output (before <c>ln_f</c>); when asked for.</summary>
    public IReadOnlyList<Tensor>? BlockOutputs { get; init; }
}

/// <summary>
/// GPT-2 as Hugging Face's <c>GPT2LMHeadModel</c> (ProtGPT2 and many SMILES GPTs; parameter names are its checkpoint
/// keys): learned positions, pre-LayerNorm blocks with a fused query/key/value projection, <c>gelu_new</c> MLP, final
/// <c>ln_f</c>, LM head tied to the token table unless the config unties it. Projections are GPT-2's <c>Conv1D</c>,
/// whose weights are stored [in, out].
/// </summary>
public sealed class Gpt2LMHeadModel : nn.Module
{
    public Gpt2Config Config { get; }

    private readonly Gpt2Model transformer;
    private readonly Linear? lm_head;

    public Gpt2LMHeadModel(Gpt2Config config) : base(nameof(Gpt2LMHeadModel))
    {
        Config = config;
        ModelShape.Of(config).EnsureFitsInMemory("model config");
        transformer = new Gpt2Model(config);
        if (!config.TieWordEmbeddings) lm_head = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false);
        RegisterComponents();
    }

    /// <summary>All positions at once from position 0, causal; <paramref name="attentionMask"/> [B, T] (1 = token) hides right padding.</summary>
    public Gpt2Output Forward(Tensor inputIds, Tensor? attentionMask = null, bool blockOutputs = false)
    {
        var blocks = blockOutputs ? new List<Tensor>() : null;
        var hidden = FromStart(inputIds, attentionMask, blocks);
        return new Gpt2Output { Logits = Project(hidden), FinalHidden = hidden, BlockOutputs = blocks };
    }

    /// <summary>
    /// A forward pass over rows that each stand at their own positions (continuous batching), as the Llama decoder's:
    /// row b's tokens sit at
    /// <paramref name="positions"/>[b] and attend where <paramref name="allowed"/> [B, 1, T, K] is true; <paramref name="cache"/>
    /// stores the new keys and values and returns every attended one.
    /// </summary>
    /// <returns>Logits [B, T, vocab].</returns>
    public Tensor Forward(Tensor inputIds, Tensor positions, Tensor allowed, IKeyValueStore cache) =>
        Project(transformer.Forward(inputIds, positions, allowed, cache, null));

    /// <summary>The final (normalised) hidden states [B, T, hidden] without the vocabulary projection.</summary>
    public Tensor LastHiddenState(Tensor inputIds, Tensor attentionMask) => FromStart(inputIds, attentionMask, null);

    private Tensor FromStart(Tensor inputIds, Tensor? attentionMask, List<Tensor>? blocks)
    {
        long b = inputIds.shape[0], t = inputIds.shape[1];
        if (t > Config.MaxPositions) throw new BioForgeException($"{t} tokens are more than the model's {Config.MaxPositions} positions (n_positions)");
        var device = inputIds.device;
        var positions = ScalarArithmetic.Range(0, t, device).unsqueeze(0).expand(b, t);
        var allowed = ones(t, t, ScalarType.Bool, device).tril().unsqueeze(0).unsqueeze(0);
        if (attentionMask is not null) allowed = allowed.logical_and(attentionMask.to(ScalarType.Bool).view(b, 1, 1, t));
        return transformer.Forward(inputIds, positions, allowed, null, blocks);
    }

    /// <summary>
    /// Greedy decoding of one sequence with a full forward pass per step (no cache: the reference the cached decoders are
    /// held to), until <paramref name="maxNewTokens"/> or end-of-sequence.
    /// </summary>
    public long[] GreedyDecode(IReadOnlyList<long> prompt, int maxNewTokens)
    {
        if (prompt.Count == 0) throw new BioForgeException("greedy decoding needs a non-empty prompt");
        var tokens = prompt.ToList();
        var device = transformer.TokenTable.device;
        using var _ = no_grad();
        for (int step = 0; step < maxNewTokens && tokens.Count < Config.MaxPositions; step++)
        {
            using var scope = NewDisposeScope();
            var logits = Forward(tensor(tokens.ToArray(), [1, tokens.Count]).to(device)).Logits;
            long next = logits[0, -1].argmax().item<long>();
            tokens.Add(next);
            if (next == Config.EosTokenId) break;
        }
        return [.. tokens];
    }

    /// <summary>
    /// Loads a Hugging Face GPT-2 checkpoint directory: config.json and safetensors weights (single or sharded), or,
    /// for checkpoints published before safetensors, <c>pytorch_model.bin</c> (single or sharded).
    /// </summary>
    public static Gpt2LMHeadModel Load(string directory, Device device, ScalarType dtype)
    {
        var configPath = ModelRegistry.ConfigPath(directory, "GPT-2");
        return CheckpointWeights.Place(new Gpt2LMHeadModel(Gpt2Config.FromJson(configPath)), network =>
        {
            bool safetensors = File.Exists(Path.Combine(directory, SafetensorsCheckpoint.SingleFileName)) || File.Exists(Path.Combine(directory, SafetensorsCheckpoint.IndexFileName));
            if (!safetensors && !PyTorchStateDict.Exists(directory))
                throw new BioForgeException($"{directory}: no weights ({SafetensorsCheckpoint.SingleFileName}, {SafetensorsCheckpoint.IndexFileName} or {PyTorchStateDict.SingleFileName})");
            if (safetensors)
            {
                using var weights = SafetensorsCheckpoint.Open(directory);
                CheckpointWeights.LoadInto(network, weights, CheckpointNames, network.Ignorable, "GPT-2");
            }
            else
            {
                using var weights = PyTorchStateDict.Open(directory);
                CheckpointWeights.LoadInto(network, directory, weights.Tensors, CheckpointNames, network.Ignorable, "GPT-2");
            }
        }, device, dtype);
    }

    private Tensor Project(Tensor hidden) => lm_head is null ? F.linear(hidden, transformer.TokenTable) : lm_head.call(hidden);

    /// <summary>
    /// Checkpoint keys for a parameter: as <c>GPT2LMHeadModel</c> saves them, or without <c>transformer.</c> as a bare
    /// <c>GPT2Model</c> (the original OpenAI conversions) saves them.
    /// </summary>
    internal static IEnumerable<string> CheckpointNames(string name)
    {
        yield return name;
        if (name.StartsWith("transformer.", StringComparison.Ordinal)) yield return name["transformer.".Length..];
    }

    /// <summary>Stored tensors that are not parameters: the causal-mask buffers older files hold, and a tied head.</summary>
    internal bool Ignorable(string name) =>
        name.EndsWith(".attn.bias", StringComparison.Ordinal) || name.EndsWith(".attn.masked_bias", StringComparison.Ordinal)
        || (Config.TieWordEmbeddings && name == "lm_head.weight");
}

internal sealed class Gpt2Model : nn.Module
{
    private readonly Embedding wte;
    private readonly Embedding wpe;
    private readonly ModuleList<Gpt2Block> h;
    private readonly LayerNorm ln_f;

    public Gpt2Model(Gpt2Config config) : base(nameof(Gpt2Model))
    {
        wte = nn.Embedding(config.VocabSize, config.HiddenSize);
        wpe = nn.Embedding(config.MaxPositions, config.HiddenSize);
        h = nn.ModuleList(Enumerable.Range(0, config.NumLayers).Select(_ => new Gpt2Block(config)).ToArray());
        ln_f = nn.LayerNorm(config.HiddenSize, config.LayerNormEpsilon);
        RegisterComponents();
    }

    public Tensor TokenTable => wte.weight!;

    /// <param name="blocks">Receives the embedding output and each block's output, when not null.</param>
    public Tensor Forward(Tensor inputIds, Tensor positions, Tensor allowed, IKeyValueStore? cache, List<Tensor>? blocks)
    {
        var x = wte.call(inputIds).Plus(wpe.call(positions));
        for (int i = 0; i < h.Count; i++)
        {
            blocks?.Add(x);
            // One scope per block: its temporaries are freed when it ends, not with the caller's scope.
            using var scope = NewDisposeScope();
            x = h[i].Forward(x, allowed, cache, i).MoveToOuterDisposeScope();
        }
        blocks?.Add(x);
        return ln_f.call(x);
    }
}

internal sealed class Gpt2Block : nn.Module
{
    private readonly LayerNorm ln_1;
    private readonly Gpt2Attention attn;
    private readonly LayerNorm ln_2;
    private readonly Gpt2Mlp mlp;

    public Gpt2Block(Gpt2Config config) : base(nameof(Gpt2Block))
    {
        ln_1 = nn.LayerNorm(config.HiddenSize, config.LayerNormEpsilon);
        attn = new Gpt2Attention(config);
        ln_2 = nn.LayerNorm(config.HiddenSize, config.LayerNormEpsilon);
        mlp = new Gpt2Mlp(config);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor allowed, IKeyValueStore? cache, int layer)
    {
        x = x.Plus(attn.Forward(ln_1.call(x), allowed, cache, layer));
        return x.Plus(mlp.call(ln_2.call(x)));
    }
}

/// <summary>Multi-head causal attention with one fused projection: <c>c_attn</c> gives [q | k | v]; scores scaled by 1/√head_dim.</summary>
internal sealed class Gpt2Attention : nn.Module
{
    private readonly Conv1D c_attn;
    private readonly Conv1D c_proj;
    private readonly int heads, headDim, hidden;

    public Gpt2Attention(Gpt2Config config) : base(nameof(Gpt2Attention))
    {
        heads = config.NumHeads;
        headDim = config.HeadDim;
        hidden = config.HiddenSize;
        c_attn = new Conv1D(hidden, 3 * hidden);
        c_proj = new Conv1D(hidden, hidden);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor allowed, IKeyValueStore? cache, int layer)
    {
        long b = x.shape[0], t = x.shape[1];
        var qkv = c_attn.call(x).view(b, t, 3, heads, headDim).permute(2, 0, 3, 1, 4);
        Tensor q = qkv[0], k = qkv[1], v = qkv[2];
        // The kernels' scale is GPT-2's 1/√head_dim (scale_attn_weights).
        var context = (cache is null ? Attention.Masked(q, k, v, allowed) : cache.Attend(layer, q, k, v, allowed)).transpose(1, 2).reshape(b, t, hidden);
        return c_proj.call(context);
    }
}

internal sealed class Gpt2Mlp : nn.Module<Tensor, Tensor>
{
    private readonly Conv1D c_fc;
    private readonly Conv1D c_proj;
    private readonly GELU.Approximate approximate;

    public Gpt2Mlp(Gpt2Config config) : base(nameof(Gpt2Mlp))
    {
        c_fc = new Conv1D(config.HiddenSize, config.InnerSize);
        c_proj = new Conv1D(config.InnerSize, config.HiddenSize);
        // gelu_new, gelu_pytorch_tanh and gelu_fast are the same tanh formula; "gelu" is the exact one.
        approximate = config.Activation == "gelu" ? GELU.Approximate.none : GELU.Approximate.tanh;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => c_proj.call(F.gelu(c_fc.call(x), approximate));
}

/// <summary>GPT-2's <c>Conv1D</c>: a linear layer whose weight is stored [in, out], so y = x·W + b.</summary>
internal sealed class Conv1D : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;

    public Conv1D(int inFeatures, int outFeatures) : base(nameof(Conv1D))
    {
        weight = nn.Parameter(empty(inFeatures, outFeatures));
        bias = nn.Parameter(zeros(outFeatures));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => matmul(x, weight).Plus(bias);
}
