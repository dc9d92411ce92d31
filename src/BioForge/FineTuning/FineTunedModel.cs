using BioForge.Models;
using BioForge.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.FineTuning;

/// <summary>One input's prediction: the text form (value, class, or one class per residue) and the raw outputs.</summary>
public sealed record Prediction(string Text, IReadOnlyList<double[]> Outputs);

/// <summary>
/// A finished <c>bioforge finetune</c> run, loaded for prediction: the base encoder (or the fully trained one), LoRA
/// adapters merged into its weights, and the head.
/// </summary>
public sealed class FineTunedModel : IDisposable
{
    private readonly TaskModel model;

    public FineTuneManifest Manifest { get; }

    private FineTunedModel(TaskModel model, FineTuneManifest manifest)
    {
        this.model = model;
        Manifest = manifest;
    }

    public static FineTunedModel Load(string runDirectory, ComputeOptions compute)
    {
        var manifest = FineTuneManifest.Load(runDirectory);
        var encoder = LoadEncoder(runDirectory, manifest, compute.Device);
        try
        {
            var head = new PredictionHead(encoder.HiddenSize, manifest.HeadHidden, manifest.Labels.Outputs, 0);
            head.Load(Path.Combine(runDirectory, FineTuner.HeadFile));
            head.to(compute.Device);
            head.eval();
            var pooling = manifest.Pooling switch { "cls" => Pooling.Cls, "last" => Pooling.Last, _ => Pooling.Mean };
            return new FineTunedModel(new TaskModel(encoder, head, manifest.TaskType, pooling, compute.Device), manifest);
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
    }

    /// <summary>Predictions for <paramref name="sequences"/>, in order; an invalid one is an error naming its index.</summary>
    public List<Prediction> Predict(IReadOnlyList<string> sequences, int batchSize = 32, Action<int>? progress = null)
    {
        var encoded = new List<EncodedSequence>(sequences.Count);
        for (int i = 0; i < sequences.Count; i++)
        {
            try
            {
                encoded.Add(model.Encoder.Encode(sequences[i]).Cut(Manifest.MaxLength));
            }
            catch (BioForgeException e)
            {
                throw new BioForgeException($"input {i + 1}: {e.Message}");
            }
        }
        var labels = Manifest.Labels;
        var predictions = new List<Prediction>(sequences.Count);
        model.Encoder.Network.eval();
        using var _ = no_grad();
        foreach (var batch in encoded.Chunk(batchSize))
        {
            using var scope = NewDisposeScope();
            var outputs = FineTuner.Readable(model.Outputs(model.Features(batch)), labels).ToList();
            int next = 0;
            foreach (var e in batch)
            {
                int units = Manifest.TaskType == FineTuneTask.ResidueClassification ? e.Residues : 1;
                var mine = outputs.GetRange(next, units);
                next += units;
                predictions.Add(new Prediction(FineTuner.Describe(labels, mine), mine));
            }
            progress?.Invoke(predictions.Count);
        }
        return predictions;
    }

    /// <summary>
    /// Writes the run's encoder as a plain Hugging Face checkpoint: base weights with the LoRA adapters folded in (or
    /// the fully trained encoder). A frozen run has nothing to merge.
    /// </summary>
    public static void MergeEncoder(string runDirectory, string output, ComputeOptions compute)
    {
        var manifest = FineTuneManifest.Load(runDirectory);
        if (manifest.EncoderMode == "frozen")
            throw new BioForgeException($"{runDirectory}: the encoder was frozen; its base model {manifest.BaseModel} is already the encoder");
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any())
            throw new BioForgeException($"--out {output} already exists and is not empty");
        using var encoder = LoadEncoder(runDirectory, manifest, compute.Device);
        string temp = $"{output.TrimEnd('/')}.{Environment.ProcessId}.tmp";
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        encoder.Save(temp);
        if (Directory.Exists(output)) Directory.Delete(output);
        Directory.Move(temp, output);
    }

    private static SequenceEncoder LoadEncoder(string runDirectory, FineTuneManifest manifest, Device device)
    {
        if (manifest.EncoderMode == "full") return SequenceEncoder.Load(Path.Combine(runDirectory, FineTuner.EncoderDirectory), device);
        if (!Directory.Exists(manifest.BaseModel))
            throw new BioForgeException($"{runDirectory}: base model {manifest.BaseModel} (named in {FineTuneManifest.FileName}, relative to where the run was started) not found");
        var encoder = SequenceEncoder.Load(manifest.BaseModel, device);
        if (manifest.EncoderMode != "lora") return encoder;
        try
        {
            using var adapters = LoraAdapters.Load(encoder.Network, Path.Combine(runDirectory, FineTuner.AdapterDirectory));
            adapters.Merge();
            return encoder;
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
    }

    public void Dispose() => model.Dispose();
}
