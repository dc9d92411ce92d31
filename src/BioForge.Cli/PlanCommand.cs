using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using BioForge.Models;
using BioForge.Planning;

namespace BioForge.Cli;

/// <summary><c>bioforge plan</c>: estimate a data × tensor-parallel training run on machines we cannot run here.</summary>
internal static class PlanCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = Options.Required("--model", "a run YAML (network + workload), a Hugging Face config.json or model directory, or esm2-SIZE (8M … 15B)");
        var gpus = Options.Int("--gpus", "GPUs in the run", 1);
        var dp = new Option<int?>("--dp") { Description = "data-parallel replicas (default: GPUs ÷ TP)" };
        var tp = Options.Int("--tp", "tensor-parallel size", 1);
        var link = Double("--link-gbps", "bandwidth between nodes per GPU, Gb/s (HDR InfiniBand: 200)", 200);
        var node = Double("--node-gbps", "all-reduce bus bandwidth within a node per GPU, Gb/s (measure it: nccl-tests or `bioforge dist bench`, whose busbw is in GB/s: × 8)", 2400);
        var alpha = Double("--alpha-us", "latency of one ring step, µs", 10);
        var perNode = Options.Int("--gpus-per-node", "GPUs per node", 8);
        var overlap = Double("--overlap", "fraction of the gradient reduction hidden behind the backward pass (BioForge today: 0)", 0);
        var memory = Double("--gpu-memory-gb", "memory a process can use per GPU, in GB of 10⁹ bytes as the estimate is written (an '80 GB' H100: 83 of its 85.5 once the CUDA context is up)", 83);
        var stepSeconds = new Option<double?>("--step-seconds") { Description = "measured: seconds one device takes for one training micro-batch (no communication)" };
        var tflops = new Option<double?>("--device-tflops") { Description = "measured: model TFLOP/s one device sustains in training without recomputation (instead of --step-seconds), counted as the plan counts FLOPs: 3 × forward, attention included (Megatron's count; a figure from 6 × parameters alone reads low)" };
        var sequence = new Option<int?>("--seq-len") { Description = "tokens per sequence (default: the run's data.max_length, else 1024)" };
        var microTokens = new Option<long?>("--micro-tokens") { Description = "tokens per micro-batch and replica (default: the run's data.tokens_per_batch, else 16384)" };
        var accumulation = new Option<int?>("--accumulation") { Description = "micro-batches per step and replica" };
        var precision = new Option<string?>("--precision") { Description = "fp32 or bf16-mixed" };
        var zero = new Option<int?>("--zero-stage") { Description = "1: optimizer state sharded across replicas" };
        var checkpointing = new Option<bool?>("--activation-checkpointing") { Description = "recompute activations in the backward pass" };
        var vocabulary = new Option<bool?>("--vocab-parallel") { Description = "split the embedding and output projection by vocabulary rows" };
        var reduceBytes = new Option<int?>("--reduce-bytes") { Description = "bytes per gradient value in the data-parallel reduction: 4 (float32, BioForge) or 2 (bf16, as Megatron/NeMo reduce)" };
        var json = new Option<bool>("--json") { Description = "one JSON object instead of the table" };
        var command = new Command("plan", "Estimate step time, tokens/s, memory per GPU and scaling efficiency of a data × tensor-parallel run")
        {
            model, gpus, dp, tp, link, node, alpha, perNode, overlap, memory, stepSeconds, tflops, sequence, microTokens, accumulation, precision, zero, checkpointing, vocabulary, reduceBytes, json,
        };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            var (shape, workload) = PlanInputs.Load(result.GetValue(model)!);
            workload = workload with
            {
                SequenceLength = result.GetValue(sequence) ?? workload.SequenceLength,
                TokensPerMicroBatch = result.GetValue(microTokens) ?? workload.TokensPerMicroBatch,
                Accumulation = result.GetValue(accumulation) ?? workload.Accumulation,
                Precision = result.GetValue(precision) ?? workload.Precision,
                ZeroStage = result.GetValue(zero) ?? workload.ZeroStage,
                ActivationCheckpointing = result.GetValue(checkpointing) ?? workload.ActivationCheckpointing,
                VocabularySplit = result.GetValue(vocabulary) ?? workload.VocabularySplit,
                GradientReductionBytes = result.GetValue(reduceBytes) ?? workload.GradientReductionBytes,
            };
            int n = result.GetValue(gpus), t = result.GetValue(tp);
            if (result.GetValue(dp) is null && t >= 1 && n % t != 0)
                throw new BioForgeException($"--gpus {n} is not a multiple of --tp {t}");
            var cluster = new ClusterSpec
            {
                Gpus = n,
                TensorParallel = t,
                DataParallel = result.GetValue(dp) ?? Math.Max(1, n / Math.Max(1, t)),
                GpusPerNode = result.GetValue(perNode),
                LinkGbps = result.GetValue(link),
                NodeGbps = result.GetValue(node),
                AlphaMicroseconds = result.GetValue(alpha),
                Overlap = result.GetValue(overlap),
                GpuMemoryGb = result.GetValue(memory),
            };
            var plan = ScalingPlan.Estimate(shape, cluster, workload, new DeviceSpeed(result.GetValue(stepSeconds), result.GetValue(tflops)));
            if (result.GetValue(json)) output.WriteLine(JsonSerializer.Serialize(Summary(plan, cluster)));
            else Print(output, shape, plan, cluster);
            return 0;
        }));
        return command;
    }

    private static Option<double> Double(string name, string description, double defaultValue) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue };

    private static Dictionary<string, object> Summary(PlanEstimate p, ClusterSpec c) => new()
    {
        ["parameters"] = p.Parameters,
        ["parameters_per_gpu"] = p.ParametersPerGpu,
        ["gpus"] = c.Gpus,
        ["data_parallel"] = c.DataParallel,
        ["tensor_parallel"] = c.TensorParallel,
        ["compute_seconds"] = Math.Round(p.ComputeSeconds, 6),
        ["tensor_parallel_seconds"] = Math.Round(p.TensorParallelSeconds, 6),
        ["gradient_reduction_seconds"] = Math.Round(p.GradientReductionSeconds, 6),
        ["exposed_reduction_seconds"] = Math.Round(p.ExposedReductionSeconds, 6),
        ["step_seconds"] = Math.Round(p.StepSeconds, 6),
        ["tokens_per_step"] = p.TokensPerStep,
        ["tokens_per_second"] = Math.Round(p.TokensPerSecond, 1),
        ["tokens_per_second_per_gpu"] = Math.Round(p.TokensPerSecondPerGpu(c.Gpus), 1),
        ["scaling_efficiency"] = Math.Round(p.ScalingEfficiency, 4),
        ["memory_per_gpu_gb"] = Math.Round(p.Memory.TotalGb, 2),
        ["warnings"] = p.Warnings,
    };

    private static void Print(TextWriter output, ModelShape shape, PlanEstimate p, ClusterSpec c)
    {
        string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
        output.WriteLine($"{shape.Architecture} {shape.Layers} layers × {shape.Hidden}, {F(p.Parameters / 1e6, "N1")} M parameters ({F(p.ParametersPerGpu / 1e6, "N1")} M per GPU)");
        output.WriteLine($"{c.Gpus} GPU(s) = {c.DataParallel} data-parallel × {c.TensorParallel} tensor-parallel, {c.GpusPerNode} per node");
        output.WriteLine($"  compute per step          {F(p.ComputeSeconds, "F4")} s");
        output.WriteLine($"  tensor-parallel traffic   {F(p.TensorParallelSeconds, "F4")} s");
        output.WriteLine($"  gradient reduction        {F(p.GradientReductionSeconds, "F4")} s ({F(p.ExposedReductionSeconds, "F4")} s not hidden)");
        output.WriteLine($"  step                      {F(p.StepSeconds, "F4")} s, {p.TokensPerStep:N0} tokens");
        output.WriteLine($"  throughput                {F(p.TokensPerSecond, "N0")} tokens/s ({F(p.TokensPerSecondPerGpu(c.Gpus), "N0")} per GPU; one GPU alone {F(p.SingleDeviceTokensPerSecond, "N0")})");
        output.WriteLine($"  scaling efficiency        {F(p.ScalingEfficiency * 100, "F1")} % of linear");
        var m = p.Memory;
        output.WriteLine($"  memory per GPU            {F(m.TotalGb, "F1")} GB (weights {F(m.WeightsGb, "F1")}, gradients {F(m.GradientsGb, "F1")}, optimizer {F(m.OptimizerGb, "F1")}, activations {F(m.ActivationsGb, "F1")}) of {F(c.GpuMemoryGb, "F1")} GB");
        foreach (string warning in p.Warnings) output.WriteLine($"warning: {warning}");
        output.WriteLine("assumptions:");
        foreach (string assumption in p.Assumptions) output.WriteLine($"  - {assumption}");
    }
}
