using System.Text.Json.Nodes;
using BioForge.IO;
using BioForge.Models;

namespace BioForge.Training;

/// <summary>
/// One training run, as written in a YAML file: data, model, optimizer, schedule, precision, validation and
/// checkpointing. Keys are snake_case; unknown keys are errors; <c>section.key=value</c> overrides apply on top.
/// Relative paths are relative to the working directory.
/// </summary>
public sealed record RunConfig
{
    public ulong Seed { get; init; }
    public DataSection Data { get; init; } = new();
    public ModelSection Model { get; init; } = new();
    public OptimizerSection Optimizer { get; init; } = new();
    public ScheduleSection Schedule { get; init; } = new();
    public TrainSection Train { get; init; } = new();
    public ValidationSection Validation { get; init; } = new();
    public CheckpointSection Checkpoint { get; init; } = new();

    public sealed record DataSection
    {
        /// <summary>A directory written by <c>bioforge data prepare</c>.</summary>
        public string Dir { get; init; } = "";
        public int TokensPerBatch { get; init; } = 16384;
        public int MaxLength { get; init; } = 1024;
        /// <summary>Causal objective only: concatenate documents into full rows instead of padding.</summary>
        public bool Packing { get; init; }
        /// <summary>Causal SMILES objective only: train on a random SMILES of each molecule, new every epoch.</summary>
        public bool RandomizeSmiles { get; init; }
        /// <summary>Each epoch draws one member per cluster (a corpus prepared with --clusters).</summary>
        public bool ClusterSampling { get; init; }
    }

    public sealed record ModelSection
    {
        /// <summary>A registered family's <c>model_type</c>: <c>esm</c> (masked LM) or <c>llama</c> (causal LM).</summary>
        public string Type { get; init; } = "";
        /// <summary>Start from this Hugging Face checkpoint directory instead of random weights.</summary>
        public string? Init { get; init; }
        /// <summary>Hugging Face <c>config.json</c> keys of a new network (vocab_size comes from the data).</summary>
        public JsonObject? Config { get; init; }
    }

    public sealed record OptimizerSection
    {
        public double Lr { get; init; } = 4e-4;
        public double Beta1 { get; init; } = 0.9;
        public double Beta2 { get; init; } = 0.98;
        public double Eps { get; init; } = 1e-8;
        public double WeightDecay { get; init; } = 0.01;
        /// <summary>Global gradient-norm limit; 0 disables clipping.</summary>
        public double GradClip { get; init; } = 1.0;
    }

    public sealed record ScheduleSection
    {
        public long WarmupSteps { get; init; } = 2000;
        /// <summary><c>constant</c>, <c>linear</c> or <c>cosine</c>.</summary>
        public string Decay { get; init; } = "linear";
        public double MinLrRatio { get; init; } = 0.1;
    }

    public sealed record TrainSection
    {
        public long Steps { get; init; }
        /// <summary>Micro-batches per optimizer step and data-parallel rank (the global batch is this × ranks × tokens_per_batch).</summary>
        public int Accumulation { get; init; } = 1;
        /// <summary>Data parallelism: gradients are summed across ranks in buckets of this many megabytes (float32).</summary>
        public double BucketMb { get; init; } = 25;
        /// <summary>1: ZeRO stage 1, the optimizer state sharded across data-parallel ranks; 0: every rank holds all of it.</summary>
        public int ZeroStage { get; init; }
        /// <summary>Ranks that split each layer (attention heads, MLP columns) between them; the world size must divide by it.</summary>
        public int TensorParallel { get; init; } = 1;
        /// <summary>With tensor parallelism, also split the token embedding and output projection by vocabulary rows (Llama only).</summary>
        public bool VocabParallel { get; init; }
        /// <summary><c>fp32</c>, or <c>bf16-mixed</c> (bf16 compute, float32 master weights and optimizer state).</summary>
        public string Precision { get; init; } = "fp32";
        /// <summary>Recompute each layer's activations in the backward pass: less memory, about a third more compute.</summary>
        public bool ActivationCheckpointing { get; init; }
        public string Device { get; init; } = "auto";
        public int Threads { get; init; }
        /// <summary>Run directory: resolved config, metrics.jsonl, checkpoints/, model/.</summary>
        public string OutputDir { get; init; } = "";
        public int LogEvery { get; init; } = 10;
    }

    public sealed record ValidationSection
    {
        /// <summary>Steps between validations; 0 validates only at the end.</summary>
        public int Every { get; init; }
        /// <summary>Validation batches per evaluation; 0 = the whole validation split.</summary>
        public int MaxBatches { get; init; }
    }

    public sealed record CheckpointSection
    {
        /// <summary>Steps between checkpoints; 0 writes one only at the end.</summary>
        public int Every { get; init; } = 1000;
        public int Keep { get; init; } = 3;
        /// <summary>
        /// Storage of the finished model's weights: <c>float32</c>, or <c>float16</c> (half the bytes, for a model shipped in
        /// the repository). Checkpoints stay float32 so that resuming is exact.
        /// </summary>
        public string ModelDtype { get; init; } = "float32";
    }

    public LearningRateSchedule LearningRate => new(Optimizer.Lr, Schedule.WarmupSteps, Train.Steps, LearningRateSchedule.DecayNames[Schedule.Decay], Schedule.MinLrRatio);

    /// <summary>The family <c>model.type</c> names (checked when the file is loaded).</summary>
    public ModelFamily Family => ModelRegistry.Get(Model.Type, "model.type");

    public AdamWOptions AdamW => new() { Beta1 = Optimizer.Beta1, Beta2 = Optimizer.Beta2, Epsilon = Optimizer.Eps, WeightDecay = Optimizer.WeightDecay };

    /// <summary>Reads <paramref name="path"/>, applies <c>a.b=value</c> overrides, checks keys and values.</summary>
    public static RunConfig Load(string path, IEnumerable<string>? overrides = null)
    {
        return YamlConfig.Load<RunConfig>(path, overrides, (config, require) => config.Validate(require));
    }

    public string ToJsonText() => YamlConfig.ToJsonText(this);

    private void Validate(Action<bool, string> require)
    {
        require(!string.IsNullOrWhiteSpace(Data.Dir), "data.dir is required (a directory written by `bioforge data prepare`)");
        require(Data.TokensPerBatch > 0, $"data.tokens_per_batch must be positive (got {Data.TokensPerBatch})");
        var family = ModelRegistry.Find(Model.Type);
        require(family is not null, $"model.type must be one of {ModelRegistry.Known} (got '{Model.Type}')");
        require(family is null or { Trainable: true }, $"model.type {Model.Type}: {family?.Title} checkpoints are loaded for inference; BioForge does not train them");
        require(Model.Init is null || Model.Config is null, "give model.init (a checkpoint) or model.config (a new network), not both (to start a run file that has model.config from a checkpoint, add model.config=null)");
        require(!Data.Packing || family is null or { Objective: TrainingObjective.CausalLanguageModel }, $"data.packing applies to the causal objective only, not to {family?.Title}");
        require(!Data.RandomizeSmiles || family is null or { Alphabet: SequenceAlphabet.Smiles }, $"data.randomize_smiles applies to SMILES models only, not to {family?.Title}");
        require(!(Data.RandomizeSmiles && Data.Packing), "data.randomize_smiles rewrites whole molecules and cannot be combined with data.packing");
        require(Train.Steps > 0, $"train.steps must be positive (got {Train.Steps})");
        require(Train.Threads >= 0, $"train.threads must be 0 (all cores) or positive (got {Train.Threads})");
        require(Train.Accumulation >= 1, $"train.accumulation must be at least 1 (got {Train.Accumulation})");
        require(Train.BucketMb >= 0.001, $"train.bucket_mb must be at least 0.001 (1 kB: a bucket holds whole float32 gradients; got {Train.BucketMb})");
        require(Train.ZeroStage is 0 or 1, $"train.zero_stage must be 0 or 1 (got {Train.ZeroStage})");
        require(Train.TensorParallel >= 1, $"train.tensor_parallel must be at least 1 (got {Train.TensorParallel})");
        require(!Train.VocabParallel || family is null or { SplitsVocabulary: true }, $"train.vocab_parallel: a {family?.Title} does not split its vocabulary (ESM-2's 33 tokens do not split evenly and are few)");
        require(Checkpoint.ModelDtype is "float32" or "float16", $"checkpoint.model_dtype must be float32 or float16 (got '{Checkpoint.ModelDtype}')");
        require(Train.Precision is "fp32" or "bf16-mixed", $"train.precision must be fp32 or bf16-mixed (got '{Train.Precision}')");
        require(!string.IsNullOrWhiteSpace(Train.OutputDir), "train.output_dir is required");
        require(Train.LogEvery >= 1, $"train.log_every must be at least 1 (got {Train.LogEvery})");
        LearningRateSchedule.RequireDecay(Schedule.Decay, "schedule.decay", require);
        AdamW.Validate(Optimizer.GradClip, require);
        require(Validation.Every >= 0 && Validation.MaxBatches >= 0, "validation.every and max_batches must be >= 0");
        require(Checkpoint.Every >= 0, $"checkpoint.every must be >= 0 (got {Checkpoint.Every})");
        require(Checkpoint.Keep >= 1, $"checkpoint.keep must be at least 1 (got {Checkpoint.Keep})");
        try
        {
            LearningRate.Validate();
        }
        catch (BioForgeException e)
        {
            require(false, e.Message);
        }
    }
}
