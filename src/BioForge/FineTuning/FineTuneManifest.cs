using System.Text.Json;
using BioForge.IO;

namespace BioForge.FineTuning;

/// <summary>
/// <c>finetune.json</c>: what a fine-tuned run needs to predict again (task, labels, encoder and how it was adapted)
/// and what it measured. Metrics that are undefined (say AUROC with one class present) are null.
/// </summary>
public sealed record FineTuneManifest
{
    public const string FileName = "finetune.json";

    public string Task { get; init; } = "";
    public string ModelType { get; init; } = "";
    /// <summary>The pre-trained checkpoint as the configuration named it (relative to the working directory of the run).</summary>
    public string BaseModel { get; init; } = "";
    public string EncoderMode { get; init; } = "";
    public string Pooling { get; init; } = "";
    public int HeadHidden { get; init; }
    public int MaxLength { get; init; }
    public string SequenceColumn { get; init; } = "";
    public string LabelColumn { get; init; } = "";
    public string[] Classes { get; init; } = [];
    public double TargetMean { get; init; }
    public double TargetStd { get; init; } = 1;
    public int BestEpoch { get; init; }
    public int EpochsRun { get; init; }
    public long TrainableParameters { get; init; }
    public Dictionary<string, int> Examples { get; init; } = [];
    public Dictionary<string, double?> Valid { get; init; } = [];
    public Dictionary<string, double?> Test { get; init; } = [];
    /// <summary>The test metrics of a model that always predicts the training mean / class frequencies.</summary>
    public Dictionary<string, double?> TestBaseline { get; init; } = [];

    [System.Text.Json.Serialization.JsonIgnore] // read from "task"; written, it would repeat it as a number
    public FineTuneTask TaskType => Task switch
    {
        "classification" => FineTuneTask.Classification,
        "residue_classification" => FineTuneTask.ResidueClassification,
        _ => FineTuneTask.Regression,
    };

    [System.Text.Json.Serialization.JsonIgnore] // the fields above, together
    public LabelSpace Labels => new(TaskType, Classes, TargetMean, TargetStd);

    public static Dictionary<string, double?> Finite(IReadOnlyDictionary<string, double> metrics) =>
        metrics.ToDictionary(kv => kv.Key, kv => double.IsFinite(kv.Value) ? Math.Round(kv.Value, 6) : (double?)null);

    public void Save(string directory) => AtomicFile.WriteText(Path.Combine(directory, FileName), YamlConfig.ToJsonText(this) + "\n");

    public static FineTuneManifest Load(string runDirectory)
    {
        if (!Directory.Exists(runDirectory)) throw new BioForgeException($"{runDirectory}: no such directory (a `bioforge finetune` run)");
        string path = Path.Combine(runDirectory, FileName);
        if (!File.Exists(path)) throw new BioForgeException($"{runDirectory}: no {FileName} (not a `bioforge finetune` run directory)");
        try
        {
            return JsonSerializer.Deserialize<FineTuneManifest>(File.ReadAllText(path), YamlConfig.Serializer)
                ?? throw new BioForgeException($"{path}: empty");
        }
        catch (JsonException e)
        {
            throw new BioForgeException($"{path}: not a fine-tuning manifest ({e.Message})");
        }
    }
}
