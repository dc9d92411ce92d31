using BioForge.Chem;
using BioForge.Models;
using BioForge.Runtime;
using BioForge.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.FineTuning;

/// <summary>One input's prediction: the text form (value, class, or one class per residue) and the raw outputs.</summary>
/// <remarks>An input that cannot be predicted has <see cref="Error"/> set, an empty text and no outputs.</remarks>
public sealed record Prediction(string Text, IReadOnlyList<double[]> Outputs, string? Error = null)
{
    public bool Valid => Error is null;

    /// <summary>The input was longer than the run's max_length and was cut to it (as in training): the prediction is of its start.</summary>
    public bool Truncated { get; init; }
}

/// <summary>
/// A finished <c>bioforge finetune</c> run, loaded for prediction: the base encoder (or the fully trained one), LoRA
/// adapters merged into its weights, and the head.
/// </summary>
public sealed class FineTunedModel : IDisposable
{
    private readonly TaskModel model;

    public FineTuneManifest Manifest { get; }

    /// <summary>What the inputs are: proteins or SMILES.</summary>
    public SequenceAlphabet Alphabet => model.Encoder.Alphabet;

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
    /// <param name="stopCodons">Whether a '*' ending a protein is its stop (false for FASTA records, read without theirs).</param>
    public List<Prediction> Predict(IReadOnlyList<string> sequences, int batchSize = 32, Action<int>? progress = null, bool stopCodons = true)
    {
        // As Chemprop: an input that cannot be predicted (invalid SMILES, letters the tokenizer does not know) keeps
        // its place with the reason, and the others are predicted; one bad row does not cost the whole file.
        var predictions = new Prediction?[sequences.Count];
        var encoded = new List<(int Index, EncodedSequence Sequence)>(sequences.Count);
        for (int i = 0; i < sequences.Count; i++)
        {
            try
            {
                if (model.Encoder.Alphabet == SequenceAlphabet.Smiles)
                {
                    if (!Molecule.TryFromSmiles(sequences[i], out var molecule, out string? invalid)) throw new BioForgeException($"invalid SMILES: {invalid}");
                    molecule!.Dispose();
                }
                encoded.Add((i, model.Encoder.Encode(sequences[i], stopCodons).Cut(Manifest.MaxLength)));
            }
            catch (BioForgeException e)
            {
                predictions[i] = new Prediction("", [], e.Message);
            }
        }
        var labels = Manifest.Labels;
        model.Encoder.Network.eval();
        using var _ = no_grad();
        int done = sequences.Count - encoded.Count;
        foreach (var batch in encoded.Chunk(batchSize))
        {
            using var scope = NewDisposeScope();
            var outputs = FineTuner.Readable(model.Outputs(model.Features([.. batch.Select(b => b.Sequence)])), labels).ToList();
            int next = 0;
            foreach (var (index, e) in batch)
            {
                int units = Manifest.TaskType == FineTuneTask.ResidueClassification ? e.Residues : 1;
                var mine = outputs.GetRange(next, units);
                next += units;
                predictions[index] = new Prediction(FineTuner.Describe(labels, mine), mine) { Truncated = e.Truncated };
            }
            done += batch.Length;
            progress?.Invoke(done);
        }
        return [.. predictions.Select(p => p!)];
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
        RunDirectory.Commit(output, encoder.Save); // whole or not at all: a hidden sibling, renamed into place
    }

    private static SequenceEncoder LoadEncoder(string runDirectory, FineTuneManifest manifest, Device device)
    {
        if (manifest.EncoderMode == "full") return SequenceEncoder.Load(Path.Combine(runDirectory, FineTuner.EncoderDirectory), device);
        if (!Directory.Exists(manifest.BaseModel))
            throw new BioForgeException($"{runDirectory}: base model {manifest.BaseModel} (named in {FineTuneManifest.FileName}; runs before 2026-12-05 name it relative to where they were started) not found");
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
