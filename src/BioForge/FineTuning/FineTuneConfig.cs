using BioForge.IO;
using BioForge.Training;

namespace BioForge.FineTuning;

public enum FineTuneTask { Regression, Classification, ResidueClassification }

public enum EncoderMode { Frozen, Full, Lora }

public enum Pooling { Mean, Cls, Last }

/// <summary>
/// One fine-tuning run, as written in a YAML file: a labelled CSV, a pre-trained encoder (ESM-2 or a Llama-style SMILES
/// model), the task head, how the encoder is adapted (frozen, fully trained or LoRA), optimizer and schedule.
/// </summary>
public sealed record FineTuneConfig
{
    public ulong Seed { get; init; }
    public DataSection Data { get; init; } = new();
    public ModelSection Model { get; init; } = new();
    public TaskSection Task { get; init; } = new();
    public EncoderSection Encoder { get; init; } = new();
    public OptimizerSection Optimizer { get; init; } = new();
    public TrainSection Train { get; init; } = new();

    public sealed record DataSection
    {
        /// <summary>CSV with a header row; its rows are split into train/valid/test unless <see cref="Valid"/>/<see cref="Test"/> are given.</summary>
        public string Train { get; init; } = "";
        public string? Valid { get; init; }
        public string? Test { get; init; }
        public string SequenceColumn { get; init; } = "sequence";
        public string LabelColumn { get; init; } = "label";
        /// <summary>
        /// <c>random</c>; <c>scaffold</c> (SMILES: whole Bemis–Murcko scaffold groups per part, largest groups in train);
        /// or <c>scaffold_balanced</c> (Chemprop's: large groups in train, the rest in seeded random order).
        /// </summary>
        public string Split { get; init; } = "random";
        public double ValidFraction { get; init; } = 0.1;
        public double TestFraction { get; init; } = 0.1;
        /// <summary>Tokens per sequence including the special ones; longer sequences are cut at the end.</summary>
        public int MaxLength { get; init; } = 1024;
        public int BatchSize { get; init; } = 32;
    }

    public sealed record ModelSection
    {
        /// <summary>A Hugging Face ESM-2 or Llama checkpoint directory (the type is read from its config.json).</summary>
        public string Init { get; init; } = "";
    }

    public sealed record TaskSection
    {
        /// <summary><c>regression</c>, <c>classification</c> (one label per sequence) or <c>residue_classification</c> (one per residue or SMILES token).</summary>
        public string Type { get; init; } = "regression";
        /// <summary>Sequence tasks: <c>mean</c> over residues, <c>cls</c> (the first token; encoders only) or <c>last</c> (the end token).</summary>
        public string Pooling { get; init; } = "mean";
        /// <summary>0: a linear head; otherwise one hidden layer of this width (GELU).</summary>
        public int HeadHidden { get; init; }
        public double HeadDropout { get; init; } = 0.1;
    }

    public sealed record EncoderSection
    {
        /// <summary><c>frozen</c>, <c>full</c> or <c>lora</c>.</summary>
        public string Mode { get; init; } = "frozen";
        public LoraSection Lora { get; init; } = new();
    }

    public sealed record LoraSection
    {
        public int Rank { get; init; } = 8;
        public double Alpha { get; init; } = 16;
        public double Dropout { get; init; }
        /// <summary>Linear layers to adapt, by name suffix; empty: the attention query and value projections.</summary>
        public string[] TargetModules { get; init; } = [];
    }

    public sealed record OptimizerSection
    {
        public double Lr { get; init; } = 1e-3;
        public double WeightDecay { get; init; } = 0.01;
        public double Beta1 { get; init; } = 0.9;
        public double Beta2 { get; init; } = 0.999;
        public double Eps { get; init; } = 1e-8;
        public double GradClip { get; init; } = 1.0;
        public double WarmupFraction { get; init; } = 0.05;
        /// <summary><c>constant</c>, <c>linear</c> or <c>cosine</c>.</summary>
        public string Decay { get; init; } = "cosine";
    }

    public sealed record TrainSection
    {
        public int Epochs { get; init; } = 20;
        /// <summary>Stop after this many epochs without a better validation loss; 0 trains all epochs.</summary>
        public int Patience { get; init; }
        public string Device { get; init; } = "auto";
        public int Threads { get; init; }
        /// <summary>Run directory: written whole at the end (head, adapters or encoder, metrics, test predictions).</summary>
        public string OutputDir { get; init; } = "";
    }

    public FineTuneTask TaskType => Task.Type switch
    {
        "classification" => FineTuneTask.Classification,
        "residue_classification" => FineTuneTask.ResidueClassification,
        _ => FineTuneTask.Regression,
    };

    public EncoderMode Mode => Encoder.Mode switch { "full" => EncoderMode.Full, "lora" => EncoderMode.Lora, _ => EncoderMode.Frozen };

    public Pooling PoolingMode => Task.Pooling switch { "cls" => Pooling.Cls, "last" => Pooling.Last, _ => Pooling.Mean };

    public AdamWOptions AdamW => new() { Beta1 = Optimizer.Beta1, Beta2 = Optimizer.Beta2, Epsilon = Optimizer.Eps, WeightDecay = Optimizer.WeightDecay };

    /// <summary>
    /// The rate of each of <paramref name="totalSteps"/> updates: warm-up, then decay towards 0 one step past the last, so
    /// the last update still moves the weights (at peak / (steps + 1 − warm-up); Hugging Face's linear schedule, which
    /// counts from 0, gives its last update peak / (steps − warm-up)).
    /// </summary>
    public LearningRateSchedule Schedule(long totalSteps) => new(Optimizer.Lr, (long)Math.Round(Optimizer.WarmupFraction * totalSteps), totalSteps + 1,
        LearningRateSchedule.DecayNames[Optimizer.Decay], 0.0);

    public static FineTuneConfig Load(string path, IEnumerable<string>? overrides = null)
    {
        return YamlConfig.Load<FineTuneConfig>(path, overrides, (config, require) => config.Validate(require));
    }

    public string ToJsonText() => YamlConfig.ToJsonText(this);

    private void Validate(Action<bool, string> require)
    {
        require(!string.IsNullOrWhiteSpace(Data.Train), "data.train is required (a CSV file with a header row)");
        require(!string.IsNullOrWhiteSpace(Data.SequenceColumn) && !string.IsNullOrWhiteSpace(Data.LabelColumn), "data.sequence_column and data.label_column must be named");
        require(Data.Split is "random" or "scaffold" or "scaffold_balanced", $"data.split must be random, scaffold or scaffold_balanced (got '{Data.Split}')");
        require(Data.ValidFraction is >= 0 and < 1 && Data.TestFraction is >= 0 and < 1 && Data.ValidFraction + Data.TestFraction < 1,
            $"data.valid_fraction and data.test_fraction must be in [0, 1) and sum below 1 (got {Data.ValidFraction} and {Data.TestFraction})");
        require(Data.MaxLength >= 3, $"data.max_length must be at least 3 (got {Data.MaxLength})");
        require(Train.Threads >= 0, $"train.threads must be 0 (all cores) or positive (got {Train.Threads})");
        require(Data.BatchSize >= 1, $"data.batch_size must be at least 1 (got {Data.BatchSize})");
        require(!string.IsNullOrWhiteSpace(Model.Init), "model.init is required (a pre-trained ESM-2 or Llama-style checkpoint directory)");
        require(Task.Type is "regression" or "classification" or "residue_classification",
            $"task.type must be regression, classification or residue_classification (got '{Task.Type}')");
        require(Task.Pooling is "mean" or "cls" or "last", $"task.pooling must be mean, cls or last (got '{Task.Pooling}')");
        require(Task.HeadHidden >= 0, $"task.head_hidden must be >= 0 (got {Task.HeadHidden})");
        require(Task.HeadDropout is >= 0 and < 1, $"task.head_dropout must be in [0, 1) (got {Task.HeadDropout})");
        require(Encoder.Mode is "frozen" or "full" or "lora", $"encoder.mode must be frozen, full or lora (got '{Encoder.Mode}')");
        require(Encoder.Lora.Rank >= 1, $"encoder.lora.rank must be at least 1 (got {Encoder.Lora.Rank})");
        require(Encoder.Lora.Alpha > 0, $"encoder.lora.alpha must be positive (got {Encoder.Lora.Alpha})");
        require(Encoder.Lora.Dropout is >= 0 and < 1, $"encoder.lora.dropout must be in [0, 1) (got {Encoder.Lora.Dropout})");
        require(Optimizer.Lr > 0, $"optimizer.lr must be positive (got {Optimizer.Lr})");
        AdamW.Validate(Optimizer.GradClip, require);
        require(Optimizer.WarmupFraction is >= 0 and < 1, $"optimizer.warmup_fraction must be in [0, 1) (got {Optimizer.WarmupFraction})");
        LearningRateSchedule.RequireDecay(Optimizer.Decay, "optimizer.decay", require);
        require(Train.Epochs >= 1, $"train.epochs must be at least 1 (got {Train.Epochs})");
        require(Train.Patience >= 0, $"train.patience must be >= 0 (got {Train.Patience})");
        require(!string.IsNullOrWhiteSpace(Train.OutputDir), "train.output_dir is required");
    }
}
