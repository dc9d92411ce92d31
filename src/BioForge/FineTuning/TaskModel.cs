using BioForge.IO;
using BioForge.Models;
using BioForge.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BioForge.FineTuning;

/// <summary>Dropout → [dense → GELU → dropout] → out_proj: the task head on pooled or per-residue features.</summary>
internal sealed class PredictionHead : nn.Module<Tensor, Tensor>
{
    private readonly Linear? dense;
    private readonly Linear out_proj;
    private readonly double dropout;

    public PredictionHead(int inputs, int hidden, int outputs, double dropout) : base(nameof(PredictionHead))
    {
        this.dropout = dropout;
        if (hidden > 0) dense = nn.Linear(inputs, hidden);
        out_proj = nn.Linear(hidden > 0 ? hidden : inputs, outputs);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = F.dropout(x, dropout, training);
        if (dense is not null) x = F.dropout(F.gelu(dense.forward(x)), dropout, training);
        return out_proj.forward(x);
    }

    public void Save(string path)
    {
        using var scope = NewDisposeScope();
        SafetensorsWriter.Write(path, [.. named_parameters().Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter.detach().cpu()))]);
    }

    public void Load(string path)
    {
        if (!File.Exists(path)) throw new BioForgeException($"{path}: head weights not found");
        using var file = SafetensorsFile.Open(path);
        using var _ = no_grad();
        foreach (var (name, parameter) in named_parameters())
        {
            if (!file.Contains(name)) throw new BioForgeException($"{path}: no tensor '{name}'");
            using var stored = file.ToTensor(name);
            if (!stored.shape.SequenceEqual(parameter.shape))
                throw new BioForgeException($"{path}: '{name}' has shape [{string.Join(", ", stored.shape)}], the head needs [{string.Join(", ", parameter.shape)}]");
            parameter.copy_(stored);
        }
    }
}

/// <summary>
/// Encoder + head for one task: token batches → features (pooled per sequence, or one row per residue) → outputs.
/// Shared by training and prediction, so both read features the same way.
/// </summary>
internal sealed class TaskModel(SequenceEncoder encoder, PredictionHead head, FineTuneTask task, Pooling pooling, Device device) : IDisposable
{
    public SequenceEncoder Encoder => encoder;
    public PredictionHead Head => head;
    public Device Device => device;
    public FineTuneTask Task => task;

    /// <summary>[N, hidden]: one row per sequence (pooled) or per residue (residue tasks), in batch order.</summary>
    public Tensor Features(IReadOnlyList<EncodedSequence> batch)
    {
        var (ids, mask, residueMask, last) = encoder.Pad(batch, device);
        var hidden = encoder.Hidden(ids, mask);
        if (task == FineTuneTask.ResidueClassification) return hidden.index([TensorIndex.Tensor(residueMask)]);
        return pooling switch
        {
            Pooling.Cls => hidden.select(1, 0),
            Pooling.Last => hidden[ScalarArithmetic.Range(0, batch.Count, device), tensor(last).to(device)],
            _ => SequenceEncoder.MeanOver(hidden, residueMask),
        };
    }

    public Tensor Outputs(Tensor features) => head.forward(features);

    /// <summary>Mean squared error on standardised targets, or mean cross-entropy.</summary>
    public Tensor Loss(Tensor outputs, IReadOnlyList<Example> batch)
    {
        if (task == FineTuneTask.Regression)
            return F.mse_loss(outputs.squeeze(-1), tensor(batch.Select(e => e.Target).ToArray()).to(device));
        return F.cross_entropy(outputs, tensor(batch.SelectMany(e => e.Classes).ToArray()).to(device));
    }

    public void Dispose()
    {
        head.Dispose();
        encoder.Dispose();
    }
}
