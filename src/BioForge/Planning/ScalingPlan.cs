using BioForge.Models;
namespace BioForge.Planning;

/// <summary>The machines: how many GPUs, how they are split, and how fast their links are.</summary>
public sealed record ClusterSpec
{
    public int Gpus { get; init; } = 1;
    public int DataParallel { get; init; } = 1;
    public int TensorParallel { get; init; } = 1;
    public int GpusPerNode { get; init; } = 8;
    /// <summary>Between nodes, per GPU (each GPU its own NIC share), gigabits per second.</summary>
    public double LinkGbps { get; init; } = 200;
    /// <summary>Within a node, per GPU, gigabits per second (all-reduce bus bandwidth).</summary>
    public double NodeGbps { get; init; } = 2400;
    /// <summary>Latency of one step of a ring collective, microseconds.</summary>
    public double AlphaMicroseconds { get; init; } = 10;
    /// <summary>Fraction of the gradient reduction hidden behind the backward pass (0: BioForge today; Megatron/NeMo overlap).</summary>
    public double Overlap { get; init; }
    /// <summary>
    /// Memory a process can use per GPU, in GB of 10⁹ bytes as every figure here: an "80 GB" H100 reports 81,559 MiB
    /// (85.5 GB), of which about 78 GiB (83 GB) is left once the CUDA context is up.
    /// </summary>
    public double GpuMemoryGb { get; init; } = 83;
}

/// <summary>What each step does: sequence length, micro-batch, accumulation, precision and memory savers.</summary>
public sealed record WorkloadSpec
{
    public int SequenceLength { get; init; } = 1024;
    /// <summary>Tokens per micro-batch and data-parallel replica.</summary>
    public long TokensPerMicroBatch { get; init; } = 16384;
    public int Accumulation { get; init; } = 1;
    /// <summary><c>fp32</c> or <c>bf16-mixed</c>.</summary>
    public string Precision { get; init; } = "bf16-mixed";
    public int ZeroStage { get; init; }
    public bool ActivationCheckpointing { get; init; }
    public bool VocabularySplit { get; init; }
    /// <summary>Bytes per gradient value in the data-parallel reduction: 4 (float32, BioForge) or 2 (bf16, Megatron's default).</summary>
    public int GradientReductionBytes { get; init; } = 4;
    /// <summary>Gradient buckets (BioForge's train.bucket_mb): the last one cannot overlap the backward pass.</summary>
    public double BucketMb { get; init; } = 25;
}

/// <summary>
/// One device's measured speed: the seconds one training micro-batch (forward + backward, no communication) takes on
/// one whole device, or the model TFLOP/s it sustains. The planner never invents this number.
/// </summary>
public sealed record DeviceSpeed(double? MicroBatchSeconds, double? Tflops);

public sealed record MemoryEstimate(double WeightsGb, double GradientsGb, double OptimizerGb, double ActivationsGb)
{
    public double TotalGb => WeightsGb + GradientsGb + OptimizerGb + ActivationsGb;
}

public sealed record PlanEstimate(
    long Parameters,
    long ParametersPerGpu,
    double TrainingFlopsPerToken,
    double ComputeSeconds,
    double TensorParallelSeconds,
    double GradientReductionSeconds,
    double ExposedReductionSeconds,
    double StepSeconds,
    long TokensPerStep,
    double TokensPerSecond,
    double SingleDeviceTokensPerSecond,
    double ScalingEfficiency,
    MemoryEstimate Memory,
    IReadOnlyList<string> Assumptions,
    IReadOnlyList<string> Warnings)
{
    public double TokensPerSecondPerGpu(int gpus) => TokensPerSecond / gpus;
}

/// <summary>
/// Step time, throughput, memory per GPU and scaling efficiency of a data × tensor-parallel run on machines we cannot
/// run, from one device's measured speed and an alpha-beta model of ring collectives (Hockney; Patarasuk &amp; Yuan
/// 2009): a ring all-reduce of M bytes over p ranks costs 2(p−1)·α + 2(p−1)/p · M/β.
/// </summary>
public static class ScalingPlan
{
    public static PlanEstimate Estimate(ModelShape model, ClusterSpec cluster, WorkloadSpec work, DeviceSpeed speed)
    {
        Validate(model, cluster, work, speed);
        var warnings = new List<string>();
        int d = cluster.DataParallel, t = cluster.TensorParallel;
        bool mixed = work.Precision == "bf16-mixed";
        int activationBytes = mixed ? 2 : 4;
        double tokensPerMicro = work.TokensPerMicroBatch;
        double sequences = tokensPerMicro / work.SequenceLength;

        // Compute: one device's micro-batch time, divided evenly across the tensor-parallel ranks (optimistic for
        // small per-rank matrices, which run below the device's best rate).
        double flopsPerToken = 3 * model.ForwardFlopsPerToken(work.SequenceLength);
        double deviceMicro = speed.MicroBatchSeconds ?? tokensPerMicro * flopsPerToken / (speed.Tflops!.Value * 1e12);
        if (work.ActivationCheckpointing && speed.MicroBatchSeconds is null) deviceMicro *= 4.0 / 3; // the forward pass runs twice
        double computeMicro = deviceMicro / t;

        // Tensor parallelism: per layer two all-reduces of the [tokens, hidden] activations forward (attention and MLP
        // outputs) and two backward (their inputs), two more when activations are recomputed; over NVLink when the
        // group fits in a node.
        bool tensorInNode = t <= cluster.GpusPerNode;
        if (!tensorInNode) warnings.Add($"tensor-parallel groups of {t} span nodes (GPUs per node: {cluster.GpusPerNode}): their per-layer all-reduces cross the {cluster.LinkGbps} Gb/s link");
        double tensorBandwidth = Gbps(tensorInNode ? cluster.NodeGbps : cluster.LinkGbps);
        int perLayer = work.ActivationCheckpointing ? 6 : 4;
        double tensorMicro = t == 1 ? 0 : model.Layers * perLayer * RingAllReduce(tokensPerMicro * model.Hidden * activationBytes, t, tensorBandwidth, cluster.AlphaMicroseconds);

        // Data parallelism: the float32 gradient buffer of one rank's parameters, once per step, across the replicas;
        // across nodes when the replicas do not fit in one.
        long perGpu = model.ParametersPerRank(t, work.VocabularySplit);
        bool dataInNode = (long)d * t <= cluster.GpusPerNode;
        double dataBandwidth = Gbps(dataInNode ? cluster.NodeGbps : cluster.LinkGbps);
        double gradientBytes = perGpu * (double)work.GradientReductionBytes;
        double reduction = d == 1 ? 0 : RingAllReduce(gradientBytes, d, dataBandwidth, cluster.AlphaMicroseconds);
        double lastBucket = d == 1 ? 0 : RingAllReduce(Math.Min(gradientBytes, work.BucketMb * (1 << 20)), d, dataBandwidth, cluster.AlphaMicroseconds);
        double backward = (computeMicro + tensorMicro) * 2 / 3; // the last micro-batch's backward pass
        double hidden = Math.Min(cluster.Overlap * reduction, Math.Max(0, backward));
        double exposed = d == 1 ? 0 : Math.Max(reduction - hidden, cluster.Overlap > 0 ? lastBucket : reduction);

        double step = work.Accumulation * (computeMicro + tensorMicro) + exposed;
        long tokensPerStep = (long)(tokensPerMicro * work.Accumulation * d);
        double throughput = tokensPerStep / step;
        double single = tokensPerMicro / deviceMicro;
        double efficiency = throughput / (cluster.Gpus * single);

        var memory = Memory(model, cluster, work, perGpu, sequences, activationBytes);
        if (memory.TotalGb > cluster.GpuMemoryGb)
            warnings.Add($"about {memory.TotalGb:F1} GB per GPU does not fit in {cluster.GpuMemoryGb} GB: raise --tp, use ZeRO-1, activation checkpointing or a smaller micro-batch");

        var assumptions = new List<string>
        {
            speed.MicroBatchSeconds is not null
                ? $"one device runs a micro-batch of {tokensPerMicro:N0} tokens in {deviceMicro:F4} s (measured, given)"
                : $"one device sustains {speed.Tflops} model TFLOP/s (given) on {flopsPerToken / 1e9:F2} GFLOP per token (3 × forward: 2 per weight of each matrix product, attention 4·s·width per layer)",
            $"tensor parallelism divides compute evenly by {t}; per layer {perLayer} all-reduces of {tokensPerMicro:N0} × {model.Hidden} activations ({activationBytes} bytes each)",
            $"ring collectives: 2(p−1)·α + 2(p−1)/p · M/β with α = {cluster.AlphaMicroseconds} µs; β = {cluster.NodeGbps} Gb/s within a node of {cluster.GpusPerNode} GPUs, {cluster.LinkGbps} Gb/s per GPU between nodes",
            $"gradients reduced once per step, {work.GradientReductionBytes} bytes each ({gradientBytes / 1e9:F2} GB per rank), {cluster.Overlap:P0} of it hidden behind the backward pass (never the last {work.BucketMb} MB bucket)",
            "not modelled: the optimizer step, data loading, stragglers, contention between ranks sharing a machine, kernel efficiency of small split matrices",
            "memory: weights in the parameter type, a float32 gradient sum (plus bf16 gradients in mixed precision; with ZeRO-1 the rank's float32 slice of the reduced sum), AdamW moments (+ float32 master weights), activations per Korthikanti et al. 2022 "
                + "without the attention scores, which fused attention does not keep (s·b·h·(10 + 24/t) bytes per layer at 16 bits for ESM-2, the MLP's share scaled to its width and gating; "
                + "a float32 log-sum-exp per head and token; 2·s·b·h with recomputation), float32 logits twice",
        };
        return new PlanEstimate(model.Parameters, perGpu, flopsPerToken, work.Accumulation * computeMicro, work.Accumulation * tensorMicro, reduction, exposed,
            step, tokensPerStep, throughput, single, efficiency, memory, assumptions, warnings);
    }

    /// <summary>Seconds for a ring all-reduce of <paramref name="bytes"/> over <paramref name="ranks"/> at <paramref name="bytesPerSecond"/> bus bandwidth.</summary>
    public static double RingAllReduce(double bytes, int ranks, double bytesPerSecond, double alphaMicroseconds) =>
        ranks <= 1 ? 0 : 2.0 * (ranks - 1) * alphaMicroseconds * 1e-6 + 2.0 * (ranks - 1) / ranks * bytes / bytesPerSecond;

    private static double Gbps(double gigabits) => gigabits * 1e9 / 8;

    private static MemoryEstimate Memory(ModelShape model, ClusterSpec cluster, WorkloadSpec work, long perGpu, double sequences, int activationBytes)
    {
        bool mixed = work.Precision == "bf16-mixed";
        double weights = perGpu * (mixed ? 2.0 : 4.0);
        // ZeRO-1 adds the float32 buffer its reduce-scatter writes the rank's slice of the summed gradients into.
        double gradients = perGpu * (mixed ? 6.0 : 4.0) + (work.ZeroStage == 1 ? perGpu * 4.0 / cluster.DataParallel : 0);
        double optimizer = perGpu * (mixed ? 12.0 : 8.0) / (work.ZeroStage == 1 ? cluster.DataParallel : 1);
        double s = work.SequenceLength, b = sequences, h = model.Hidden;
        int t = cluster.TensorParallel;
        double scale = activationBytes / 2.0; // the count is of 16-bit activations
        double layer = s * b * (model.ActivationBytesPerToken(t) * scale + model.AttentionStatisticBytesPerToken(t));
        double layers = work.ActivationCheckpointing ? model.Layers * 2 * s * b * h * scale + layer : model.Layers * layer;
        double logits = 2.0 * s * b * model.Vocabulary * 4 / (work.VocabularySplit ? t : 1);
        return new MemoryEstimate(weights / 1e9, gradients / 1e9, optimizer / 1e9, (layers + logits) / 1e9);
    }

    private const double MaxTokensPerStep = 1e12;

    private static void Validate(ModelShape model, ClusterSpec cluster, WorkloadSpec work, DeviceSpeed speed)
    {
        void Require(bool ok, string message)
        {
            if (!ok) throw new BioForgeException(message);
        }
        Require(cluster.Gpus >= 1 && cluster.DataParallel >= 1 && cluster.TensorParallel >= 1, "--gpus, --dp and --tp must be at least 1");
        Require((long)cluster.DataParallel * cluster.TensorParallel == cluster.Gpus,
            $"--dp {cluster.DataParallel} × --tp {cluster.TensorParallel} = {(long)cluster.DataParallel * cluster.TensorParallel}, not the {cluster.Gpus} GPUs of --gpus");
        Require(cluster.GpusPerNode >= 1, "--gpus-per-node must be at least 1");
        Require(cluster.LinkGbps > 0 && cluster.NodeGbps > 0, "--link-gbps and --node-gbps must be positive");
        Require(cluster.AlphaMicroseconds >= 0, "--alpha-us must be >= 0");
        Require(cluster.Overlap is >= 0 and <= 1, $"--overlap must be in [0, 1] (got {cluster.Overlap})");
        Require(cluster.GpuMemoryGb > 0, "--gpu-memory-gb must be positive");
        Require(work.SequenceLength >= 1 && work.TokensPerMicroBatch >= work.SequenceLength,
            $"a micro-batch of {work.TokensPerMicroBatch} tokens holds no sequence of {work.SequenceLength}");
        Require(work.Accumulation >= 1, "accumulation must be at least 1");
        // Far past any run (Llama 3: 16M tokens a step), short of the 64-bit products the plan forms from them.
        Require((double)work.TokensPerMicroBatch * work.Accumulation * cluster.DataParallel <= MaxTokensPerStep,
            $"--micro-tokens × --accumulation × data-parallel replicas = {(double)work.TokensPerMicroBatch * work.Accumulation * cluster.DataParallel:G3} tokens a step, more than the {MaxTokensPerStep:N0} planned for");
        Require(work.GradientReductionBytes is 2 or 4, $"gradients are reduced in 2 (bf16) or 4 (float32) bytes (got {work.GradientReductionBytes})");
        Require(work.Precision is "fp32" or "bf16-mixed", $"precision must be fp32 or bf16-mixed (got '{work.Precision}')");
        // Bounded far past any device (a B200 sustains about 2,000 bf16 TFLOP/s), short of speeds whose plan divides to infinity.
        Require(speed.MicroBatchSeconds is null or (>= 1e-6 and <= 1e6), $"--step-seconds must be from 1e-6 to 1e6 seconds (got {speed.MicroBatchSeconds})");
        Require(speed.Tflops is null or (> 0 and <= 1e5), $"--device-tflops must be above 0 and at most 100,000 (got {speed.Tflops})");
        Require(speed.MicroBatchSeconds is null ^ speed.Tflops is null,
            "give one device's measured speed: --step-seconds (one micro-batch, e.g. from `bioforge bench train`) or --device-tflops");
        Require(work.ZeroStage is 0 or 1, $"--zero-stage must be 0 or 1 (got {work.ZeroStage})");
        int t = cluster.TensorParallel;
        Distributed.TensorParallelism.RequireDivisible(model.Heads, t, "num_attention_heads");
        Distributed.TensorParallelism.RequireDivisible(model.KeyValueHeads, t, "num_key_value_heads");
        Distributed.TensorParallelism.RequireDivisible(model.Intermediate, t, "intermediate_size");
        // As the trainer rules (train.vocab_parallel): a family that keeps its vocabulary whole (ESM-2's 33 tokens) is refused.
        if (work.VocabularySplit && ModelRegistry.Find(model.Architecture) is { SplitsVocabulary: false } family)
            throw new BioForgeException($"--vocab-parallel: the {family.ModelType} family keeps its vocabulary whole (the trainer refuses train.vocab_parallel for it)");
        if (work.VocabularySplit) Distributed.TensorParallelism.RequireDivisible(model.Vocabulary, t, "vocab_size");
    }
}
