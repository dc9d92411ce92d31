using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using BioForge.IO;
using BioForge.Models;
using BioForge.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BioForge.FineTuning;

public sealed record LoraOptions(int Rank, double Alpha, double Dropout, IReadOnlyList<string> TargetModules)
{
    public double Scale => Alpha / Rank;
}

/// <summary>
/// LoRA (Hu et al. 2021): each adapted linear layer y = W x becomes y = W x + (α/r) B A x with A [r, in] and B [out, r]
/// trainable and W frozen. The adapters attach to the unchanged network through forward hooks (the models call their
/// projections with <c>call</c>, which runs hooks), so no model file knows about LoRA. Saved apart in the PEFT layout
/// (<c>adapter_config.json</c> + <c>adapter_model.safetensors</c>, keys <c>base_model.model.NAME.lora_A.weight</c>), and
/// mergeable into W for inference at the base model's speed.
/// </summary>
internal sealed class LoraAdapters : IDisposable
{
    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";

    private sealed record Adapter(string Name, Linear Target, Parameter A, Parameter B, Linear.HookRemover Hook);

    private readonly List<Adapter> adapters = [];

    public LoraOptions Options { get; }

    public IReadOnlyList<string> AdaptedModules => [.. adapters.Select(a => a.Name)];

    public IEnumerable<Parameter> Parameters() => adapters.SelectMany(a => new[] { a.A, a.B });

    public long ParameterCount => adapters.Sum(a => a.A.numel() + a.B.numel());

    private LoraAdapters(LoraOptions options) => Options = options;

    /// <summary>
    /// Adds fresh adapters (A uniform ±1/√in as PEFT's Kaiming default, B zero, so the network starts unchanged) to every
    /// linear layer whose name ends with one of the target modules.
    /// </summary>
    public static LoraAdapters Attach(nn.Module network, LoraOptions options, ulong seed)
    {
        var lora = new LoraAdapters(options);
        using var generator = new Generator(seed);
        foreach (var (name, linear) in Targets(network, options.TargetModules))
        {
            var weight = linear.weight!;
            long inFeatures = weight.shape[1], outFeatures = weight.shape[0];
            using var scope = NewDisposeScope(); // the draw's intermediates
            var a = rand([options.Rank, inFeatures], ScalarType.Float32, generator: generator).Mul(2.0).Add(-1.0).Mul(1.0 / Math.Sqrt(inFeatures));
            lora.Add(name, linear, a.to(weight.dtype, weight.device).DetachFromDisposeScope(), zeros([outFeatures, options.Rank], weight.dtype, weight.device).DetachFromDisposeScope());
        }
        return lora;
    }

    /// <summary>Attaches the adapters saved in <paramref name="directory"/> (PEFT layout) to <paramref name="network"/>.</summary>
    public static LoraAdapters Load(nn.Module network, string directory)
    {
        string configPath = Path.Combine(directory, ConfigFile), weightsPath = Path.Combine(directory, WeightsFile);
        if (!File.Exists(configPath) || !File.Exists(weightsPath))
            throw new BioForgeException($"{directory}: expected {ConfigFile} and {WeightsFile} (a LoRA adapter directory)");
        LoraOptions options;
        try
        {
            var config = JsonFile.ReadObject(configPath);
            options = new LoraOptions(config["r"]!.GetValue<int>(), config["lora_alpha"]!.GetValue<double>(),
                config["lora_dropout"]?.GetValue<double>() ?? 0, [.. config["target_modules"]!.AsArray().Select(t => t!.GetValue<string>())]);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException)
        {
            throw new BioForgeException($"{configPath}: not a LoRA adapter configuration (needs r, lora_alpha, target_modules): {e.Message}");
        }
        var lora = new LoraAdapters(options);
        using var file = SafetensorsFile.Open(weightsPath);
        foreach (var (name, linear) in Targets(network, options.TargetModules))
        {
            var weight = linear.weight!;
            Tensor Read(string part, long rows, long columns)
            {
                string key = $"base_model.model.{name}.{part}.weight";
                if (!file.Contains(key)) throw new BioForgeException($"{weightsPath}: no tensor '{key}'");
                using var stored = file.ToTensor(key);
                if (!stored.shape.SequenceEqual([rows, columns]))
                    throw new BioForgeException($"{weightsPath}: '{key}' has shape [{string.Join(", ", stored.shape)}], the model needs [{rows}, {columns}]");
                return stored.to(weight.dtype, weight.device);
            }
            lora.Add(name, linear, Read("lora_A", options.Rank, weight.shape[1]), Read("lora_B", weight.shape[0], options.Rank));
        }
        return lora;
    }

    private void Add(string name, Linear target, Tensor a, Tensor b)
    {
        var pa = new Parameter(a, requires_grad: true);
        var pb = new Parameter(b, requires_grad: true);
        double scale = Options.Scale, dropout = Options.Dropout;
        var hook = target.register_forward_hook((module, input, output) =>
        {
            var x = dropout > 0 ? F.dropout(input, dropout, module.training) : input;
            return output.Plus(F.linear(F.linear(x, pa), pb).Mul(scale));
        });
        adapters.Add(new Adapter(name, target, pa, pb, hook));
    }

    /// <summary>Linear layers named by the targets (name suffixes on dot boundaries); a target matching nothing is an error.</summary>
    private static List<(string Name, Linear Linear)> Targets(nn.Module network, IReadOnlyList<string> targets)
    {
        var linears = network.named_modules().Where(m => m.module is Linear).Select(m => (m.name, Linear: (Linear)m.module)).ToList();
        foreach (string target in targets)
            if (!linears.Any(l => Matches(l.name, target)))
                throw new BioForgeException($"LoRA target module '{target}' matches no linear layer (e.g. {string.Join(", ", linears.Take(6).Select(l => l.name))})");
        var chosen = linears.Where(l => targets.Any(t => Matches(l.name, t))).ToList();
        if (chosen.Count == 0) throw new BioForgeException("LoRA needs at least one target module");
        return chosen;
    }

    private static bool Matches(string name, string target) => name == target || name.EndsWith("." + target, StringComparison.Ordinal);

    /// <summary>
    /// PEFT's adapter directory: the adapter matrices and the configuration that recreates them. The adapters' names
    /// are the <paramref name="family"/>'s whole model's (<c>EsmForMaskedLM</c>, <c>LlamaForCausalLM</c>), which
    /// <c>auto_mapping</c> names, as PEFT's own save does for a model without a task type: <c>AutoPeftModel</c> then
    /// loads that class under them (without it, it cannot tell which class to load).
    /// </summary>
    public void Save(string directory, string baseModel, ModelFamily family)
    {
        Directory.CreateDirectory(directory);
        using (var scope = NewDisposeScope())
        {
            var tensors = adapters.SelectMany(a => new[]
            {
                new KeyValuePair<string, Tensor>($"base_model.model.{a.Name}.lora_A.weight", a.A.detach().to(ScalarType.Float32).cpu()),
                new KeyValuePair<string, Tensor>($"base_model.model.{a.Name}.lora_B.weight", a.B.detach().to(ScalarType.Float32).cpu()),
            }).OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
            SafetensorsWriter.Write(Path.Combine(directory, WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }
        var config = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["base_model_name_or_path"] = baseModel,
            ["r"] = Options.Rank,
            ["lora_alpha"] = Options.Alpha,
            ["lora_dropout"] = ConfigJson.Float(Options.Dropout),
            ["target_modules"] = new JsonArray([.. Options.TargetModules.Select(t => JsonValue.Create(t))]),
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["task_type"] = null,
            ["auto_mapping"] = new JsonObject { ["base_model_class"] = family.HuggingFaceClass, ["parent_library"] = family.HuggingFaceModule },
        };
        AtomicFile.WriteText(Path.Combine(directory, ConfigFile), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>Folds every adapter into its layer's weight (W += α/r · B A) and detaches the hooks: the plain network remains.</summary>
    public void Merge()
    {
        using var _ = no_grad();
        foreach (var a in adapters)
        {
            using var scope = NewDisposeScope();
            a.Target.weight!.AddScaledInPlace(a.B.matmul(a.A), Options.Scale);
            a.Hook.remove();
        }
        DisposeAdapters();
    }

    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"LoRA r={Options.Rank} α={Options.Alpha} on {adapters.Count} layers ({string.Join(", ", Options.TargetModules)}), {ParameterCount:N0} parameters");

    private void DisposeAdapters()
    {
        foreach (var a in adapters)
        {
            a.A.Dispose();
            a.B.Dispose();
        }
        adapters.Clear();
    }

    public void Dispose()
    {
        foreach (var a in adapters) a.Hook.remove();
        DisposeAdapters();
    }
}
