using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using BioForge.Distributed;
using BioForge.Models;
using BioForge.Models.Esm;
using BioForge.Models.Llama;
using BioForge.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.Cli;

/// <summary>
/// <c>bioforge dist check|bench</c>: verify the process group's collectives and measure all-reduce bandwidth, under
/// <c>mpirun</c>/<c>srun</c> (or alone, as a world of one). Only rank 0 prints results.
/// </summary>
internal static class DistributedCommands
{
    public static Command Create(TextWriter output, TextWriter error) =>
        new("dist", "Distributed runtime: check the collectives, benchmark all-reduce") { Check(output, error), Bench(output, error) };

    private static Command Check(TextWriter output, TextWriter error)
    {
        var stallRank = Options.Int("--stall-rank", "make this rank sleep instead of joining (to see the timeout at work); -1 = none", -1);
        var stallSeconds = Options.Int("--stall-seconds", "how long the stalled rank sleeps", 60);
        var freeze = new Option<bool>("--freeze") { Description = "the stalled rank stops its whole process (SIGSTOP) instead of sleeping: it looks dead" };
        var inGroup = new Option<bool>("--stall-in-group") { Description = "the others wait in a group split from the world (as a data × tensor-parallel grid's collectives do), not in the world" };
        var model = new Option<string?>("--model") { Description = "also split this ESM-2 or Llama checkpoint across the ranks (tensor parallelism) and compare logits and gradients with the whole model" };
        var device = new Option<string>("--device") { Description = "cpu (MPI), or cuda: also run the collectives on CUDA tensors over NCCL", DefaultValueFactory = _ => "cpu" };
        var command = new Command("check", "Run every collective on known values and compare the results on every rank") { stallRank, stallSeconds, freeze, inGroup, model, device };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            if (result.GetValue(stallSeconds) < 0) throw new BioForgeException($"--stall-seconds must be 0 or more (got {result.GetValue(stallSeconds)})");
            if (result.GetValue(inGroup) && result.GetValue(stallRank) < 0) throw new BioForgeException("--stall-in-group needs --stall-rank: the rank that stalls");
            TorchRuntime.EnsureLoaded();
            var world = ProcessGroup.World;
            int r = world.Rank, n = world.Size;
            if (result.GetValue(stallRank) is int stalled and >= 0 && stalled >= n)
                throw new BioForgeException($"--stall-rank {stalled}: the world has ranks 0–{n - 1}");
            // The group's ranks run in reverse, so its ranks are not the world's: messages must name the world's.
            using (var group = result.GetValue(stallRank) >= 0 && result.GetValue(inGroup) ? world.Split(color: 0, key: n - 1 - r) : null)
            {
                if (result.GetValue(stallRank) == r)
                {
                    error.WriteLine($"rank {r}: {(result.GetValue(freeze) ? "freezing" : $"stalling for {result.GetValue(stallSeconds)} s")}");
                    if (result.GetValue(freeze)) Process.Start("kill", ["-STOP", Environment.ProcessId.ToString(CultureInfo.InvariantCulture)])!.WaitForExit();
                    Thread.Sleep(TimeSpan.FromSeconds(result.GetValue(stallSeconds)));
                }
                using var one = ones(1, ScalarType.Float32);
                group?.AllReduce(one);
            }
            var failures = new List<string>();
            void Expect(string what, Tensor actual, Tensor expected)
            {
                if (!actual.shape.SequenceEqual(expected.shape))
                {
                    failures.Add($"{what} (shape [{string.Join(", ", actual.shape)}], expected [{string.Join(", ", expected.shape)}])");
                    return;
                }
                // Relative to the tensor's largest value: a split reduction sums float32 products in another order, and
                // how far that moves a result depends on the CPU's kernels (a row-parallel gradient moved by 6e-5 on an AMD EPYC).
                using var a = actual.to(ScalarType.Float64, CPU);
                using var b = expected.to(ScalarType.Float64, CPU);
                double difference = b.numel() == 0 ? 0 : (a - b).abs().max().item<double>();
                double scale = Math.Max(1, b.numel() == 0 ? 0 : b.abs().max().item<double>());
                if (!(difference <= 1e-5 * scale))
                    failures.Add($"{what} (max |difference| {difference:G3}, allowed {1e-5 * scale:G3})");
            }
            using var scope = NewDisposeScope();
            // Rank r contributes r + 1 + i at index i (float32, float64, int64; a large tensor sent in one piece).
            double ranksSum = n * (n + 1) / 2.0;
            foreach (var type in new[] { ScalarType.Float32, ScalarType.Float64, ScalarType.Int64, ScalarType.BFloat16 })
            {
                var t = arange(8, ScalarType.Float64).add(r + 1).to(type);
                world.AllReduce(t);
                Expect($"all-reduce sum {type}", t, arange(8, ScalarType.Float64).mul(n).add(ranksSum));
            }
            var big = full([3_000_001], r + 1.0, ScalarType.Float32);
            world.AllReduce(big, ReduceOp.Average);
            Expect("all-reduce average (3M floats)", big, full([3_000_001], ranksSum / n, ScalarType.Float64));
            var integers = full([3], r + 1L, ScalarType.Int64);
            world.AllReduce(integers, ReduceOp.Average);
            Expect("all-reduce average (int64, truncated)", integers, full([3], (double)((n + 1) / 2), ScalarType.Float64));
            // Exactly, not within a tolerance: a float32 copy would round 2^24 + 1 to 2^24.
            var counts = full([2], (1L << 24) + 1 + r, ScalarType.Int32);
            world.AllReduce(counts);
            long countsSum = n * ((1L << 24) + 1) + n * (n - 1L) / 2;
            if (counts.min().item<int>() != countsSum || counts.max().item<int>() != countsSum)
                failures.Add($"all-reduce sum int32 ({counts[0].item<int>()}, expected {countsSum})");
            var nothing = empty([0], ScalarType.Float32); // a rank with no gradients of a kind still takes part
            world.AllReduce(nothing);
            Expect("all-reduce of an empty tensor", world.AllGather(nothing), empty([0], ScalarType.Float64));
            var max = tensor(new[] { (float)r, -r });
            world.AllReduce(max, ReduceOp.Max);
            Expect("all-reduce max", max, tensor(new[] { n - 1.0, 0.0 }));
            var strided = arange(12, ScalarType.Float32).reshape(3, 4).t().add(r); // not contiguous: staged through a copy
            world.AllReduce(strided);
            Expect("all-reduce of a transposed view", strided, arange(12, ScalarType.Float64).reshape(3, 4).t().mul(n).add(ranksSum - n));
            var whole = arange(10, ScalarType.Float32);
            using (var slice = whole.narrow(0, 3, 4)) world.AllReduce(slice); // a view with a storage offset, reduced in place
            Expect("all-reduce of a slice", whole, arange(10, ScalarType.Float64).index_put_(arange(3, 7, ScalarType.Float64).mul(n), [TensorIndex.Slice(3, 7)]));
            var broadcast = full([5], (double)r, ScalarType.Float32);
            world.Broadcast(broadcast, root: n - 1);
            Expect("broadcast from the last rank", broadcast, full([5], n - 1.0, ScalarType.Float64));
            var gathered = world.AllGather(full([2, 3], (double)r, ScalarType.Float32));
            Expect("all-gather", gathered, arange(n, ScalarType.Float64).repeat_interleave(2).unsqueeze(1).expand(2 * n, 3));
            var scattered = world.ReduceScatter(arange(2 * n, ScalarType.Float32).add(r));
            Expect("reduce-scatter", scattered, tensor(new[] { 2.0 * r * n + ranksSum - n, (2.0 * r + 1) * n + ranksSum - n }));
            using (var pairs = world.Split(color: r % 2, key: r))
            {
                var t = ones(1, ScalarType.Float32);
                pairs.AllReduce(t);
                Expect("all-reduce in a split group", t, full([1], (double)((n + 1 - r % 2) / 2), ScalarType.Float64));
            }
            if (16 % n == 0)
            {
                CheckTensorParallelMlp(world, Expect);
                CheckVocabularyParallel(world, Expect);
            }
            if (result.GetValue(model) is { } checkpoint) CheckTensorParallelModel(world, checkpoint, Expect);
            string backends = world.Backend;
            if (GpuDevice(result.GetValue(device)!) is { } gpu)
            {
                using var nccl = NcclCommunicator.Create(world, gpu);
                CheckOnGpu(nccl, gpu, Expect);
                backends += $" + nccl {nccl.Version} on {gpu}";
            }
            world.Barrier();
            var failed = tensor(new[] { (long)failures.Count });
            world.AllReduce(failed);
            if (failures.Count > 0) error.WriteLine($"rank {r}: wrong results: {string.Join("; ", failures)}");
            if (failed.item<long>() > 0) return 1;
            if (r == 0)
            {
                output.WriteLine($"collectives ok: {n} rank(s), backend {backends}, launcher {ProcessGroup.Launch.Launcher}");
                if (result.GetValue(model) is { } compared)
                    output.WriteLine($"tensor-parallel model ok: {compared} split over {n} rank(s), logits and gradients equal to the whole model's");
            }
            return 0;
        }));
        return command;
    }

    /// <summary>The GPU this rank uses for <c>--device cuda</c> (one per process, by local rank); null for cpu.</summary>
    private static Device? GpuDevice(string text)
    {
        var compute = ComputeOptions.Resolve(text, "fp32", 0);
        return compute.Device.type == DeviceType.CUDA ? ParallelGrid.LocalDevice(compute.Device, ProcessGroup.Launch) : null;
    }

    /// <summary>The NCCL path on CUDA tensors: sum (float32, bf16), average, max, broadcast, all-gather, reduce-scatter, a split group.</summary>
    private static void CheckOnGpu(Communicator nccl, Device gpu, Action<string, Tensor, Tensor> expect)
    {
        using var scope = NewDisposeScope();
        int r = nccl.Rank, n = nccl.Size;
        double ranksSum = n * (n + 1) / 2.0;
        foreach (var type in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            var t = arange(8, ScalarType.Float32, gpu).add(r + 1).to(type);
            nccl.AllReduce(t);
            expect($"NCCL all-reduce sum {type}", t, arange(8, ScalarType.Float64).mul(n).add(ranksSum));
        }
        var big = full([3_000_001], r + 1.0, ScalarType.Float32, gpu);
        nccl.AllReduce(big, ReduceOp.Average);
        expect("NCCL all-reduce average (3M floats)", big, full([3_000_001], ranksSum / n, ScalarType.Float64));
        var max = tensor(new[] { (float)r, -r }, device: gpu);
        nccl.AllReduce(max, ReduceOp.Max);
        expect("NCCL all-reduce max", max, tensor(new[] { n - 1.0, 0.0 }));
        var broadcast = full([5], (double)r, ScalarType.Float32, gpu);
        nccl.Broadcast(broadcast, root: n - 1);
        expect("NCCL broadcast from the last rank", broadcast, full([5], n - 1.0, ScalarType.Float64));
        var gathered = nccl.AllGather(full([2, 3], (double)r, ScalarType.Float32, gpu));
        expect("NCCL all-gather", gathered, arange(n, ScalarType.Float64).repeat_interleave(2).unsqueeze(1).expand(2 * n, 3));
        var scattered = nccl.ReduceScatter(arange(2 * n, ScalarType.Float32, gpu).add(r));
        expect("NCCL reduce-scatter", scattered, tensor(new[] { 2.0 * r * n + ranksSum - n, (2.0 * r + 1) * n + ranksSum - n }));
        using var pairs = nccl.Split(color: r % 2, key: r);
        var one = ones(1, ScalarType.Float32, gpu);
        pairs.AllReduce(one);
        expect("NCCL all-reduce in a split group", one, full([1], (double)((n + 1 - r % 2) / 2), ScalarType.Float64));
    }

    /// <summary>
    /// A two-layer MLP split Megatron-style (column-parallel, GELU, row-parallel) must give the outputs and gradients
    /// of the unsharded MLP, which every rank also computes on its own from the same seeded weights.
    /// </summary>
    private static void CheckTensorParallelMlp(Communicator world, Action<string, Tensor, Tensor> expect)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(11);
        var w1 = randn([16, 8], generator: generator);
        var b1 = randn([16], generator: generator);
        var w2 = randn([8, 16], generator: generator);
        var b2 = randn([8], generator: generator);
        var input = randn([4, 8], generator: generator);

        var x = input.clone().requires_grad_(true);
        var v1 = w1.clone().requires_grad_(true);
        var v2 = w2.clone().requires_grad_(true);
        var reference = nn.functional.linear(nn.functional.gelu(nn.functional.linear(x, v1, b1)), v2, b2);
        reference.square().sum().backward();

        using var column = new ColumnParallelLinear(8, 16, hasBias: true, world);
        using var row = new RowParallelLinear(16, 8, hasBias: true, world);
        column.LoadShard(w1, b1);
        row.LoadShard(w2, b2);
        var xs = input.clone().requires_grad_(true);
        var output = row.call(nn.functional.gelu(column.call(xs)));
        output.square().sum().backward();

        long part = 16 / world.Size;
        expect("tensor-parallel MLP output", output, reference);
        expect("tensor-parallel MLP input gradient", xs.grad!, x.grad!);
        expect("column-parallel weight gradient", column.WeightShard.grad!, v1.grad!.narrow(0, world.Rank * part, part));
        expect("row-parallel weight gradient", row.WeightShard.grad!, v2.grad!.narrow(1, world.Rank * part, part));
        expect("row-parallel weight gathered", row.FullWeight(), w2);
        expect("column-parallel weight gathered", column.FullWeight(), w1);
    }

    /// <summary>Vocabulary-parallel embedding and cross-entropy against their unsharded forms, values and gradients.</summary>
    private static void CheckVocabularyParallel(Communicator world, Action<string, Tensor, Tensor> expect)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(12);
        var table = randn([16, 6], generator: generator);
        var ids = randint(0, 16, [3, 5], generator: generator);
        var logitsFull = randn([7, 16], generator: generator);
        var targets = tensor(new long[] { 0, 15, 7, -100, 8, 3, 12 });
        long part = 16 / world.Size;

        var fullTable = table.clone().requires_grad_(true);
        var referenceEmbedding = fullTable.index_select(0, ids.reshape(-1)).reshape(3, 5, 6);
        referenceEmbedding.square().sum().backward();
        using var embedding = new VocabParallelEmbedding(16, 6, world);
        embedding.LoadShard(table);
        var embedded = embedding.call(ids);
        embedded.square().sum().backward();
        expect("vocabulary-parallel embedding", embedded, referenceEmbedding);
        expect("vocabulary-parallel embedding gradient", embedding.WeightShard.grad!, fullTable.grad!.narrow(0, world.Rank * part, part));

        var fullLogits = logitsFull.clone().requires_grad_(true);
        var referenceLoss = nn.functional.cross_entropy(fullLogits, targets, ignore_index: -100, reduction: nn.Reduction.Sum);
        referenceLoss.backward();
        var localLogits = logitsFull.narrow(1, world.Rank * part, part).clone().requires_grad_(true);
        var loss = TensorParallelism.VocabParallelCrossEntropySum(localLogits, targets, world);
        loss.backward();
        expect("vocabulary-parallel cross-entropy", loss, referenceLoss);
        expect("vocabulary-parallel cross-entropy gradient", localLogits.grad!, fullLogits.grad!.narrow(1, world.Rank * part, part));
    }

    /// <summary>
    /// The checkpoint (ESM-2 or Llama) loaded whole and split across the ranks (heads and MLP columns): same logits,
    /// and every parameter's gradient equal to the matching slice of the whole model's.
    /// </summary>
    private static void CheckTensorParallelModel(Communicator world, string directory, Action<string, Tensor, Tensor> expect)
    {
        using var scope = NewDisposeScope();
        var layout = new ParallelLayout(world);
        bool esm = ModelRegistry.Of(directory) is EsmFamily;
        var ids = tensor(new long[,] { { 0, 5, 9, 11, 7, 12, 2 }, { 0, 13, 6, 8, 2, 1, 1 } });
        var mask = tensor(new long[,] { { 1, 1, 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 1, 0, 0 } });
        (nn.Module Network, Tensor Logits) Run(ParallelLayout? split)
        {
            if (esm)
            {
                var model = EsmCheckpoint.Load(directory, CPU, ScalarType.Float32, split).Model;
                return (model, model.Forward(ids, mask, new EsmForwardOptions { Logits = true }).Logits!);
            }
            var llama = LlamaForCausalLM.Load(directory, CPU, ScalarType.Float32, split);
            return (llama, llama.Forward(ids, mask).Logits);
        }
        var (whole, reference) = Run(null);
        reference.square().mean().backward();
        var (parallel, logits) = Run(layout);
        logits.square().mean().backward();
        string kind = esm ? "ESM-2" : "Llama";
        expect($"tensor-parallel {kind} logits", logits, reference);
        var sharded = ShardedParameters.Of(parallel, layout);
        var wholeGradients = whole.named_parameters().Where(p => p.parameter.grad is not null).ToDictionary(p => p.name, p => p.parameter.grad!);
        int compared = 0;
        foreach (var (name, parameter) in parallel.named_parameters())
        {
            if (!wholeGradients.TryGetValue(name, out var expected)) continue; // unused by this loss (the contact head)
            expect($"tensor-parallel {kind} gradient {name}", parameter.grad!, sharded.Shard(name, expected));
            compared++;
        }
        // Names that stopped matching between the two models would otherwise compare nothing and pass.
        if (compared != wholeGradients.Count)
            throw new BioForgeException($"tensor-parallel {kind}: {compared} of the whole model's {wholeGradients.Count} gradients have a parameter of the same name in the split model");
        whole.Dispose();
        parallel.Dispose();
    }

    private static Command Bench(TextWriter output, TextWriter error)
    {
        var sizes = new Option<string>("--sizes") { Description = "message sizes in bytes (K, M, G suffixes), comma-separated", DefaultValueFactory = _ => "8K,1M,16M,64M" };
        var repeats = Options.Int("--repeats", "timed all-reduces per size", 20);
        var warmup = Options.Int("--warmup", "untimed all-reduces first", 3);
        var device = new Option<string>("--device") { Description = "cpu (MPI), or cuda (NCCL, one GPU per rank)", DefaultValueFactory = _ => "cpu" };
        var command = new Command("bench", "All-reduce (sum, float32) bandwidth per message size, as nccl-tests reports it") { sizes, repeats, warmup, device };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            TorchRuntime.EnsureLoaded();
            var gpu = GpuDevice(result.GetValue(device)!);
            using var nccl = gpu is null ? null : NcclCommunicator.Create(ProcessGroup.World, gpu);
            Communicator world = nccl ?? ProcessGroup.World;
            int n = result.GetValue(repeats), w = result.GetValue(warmup);
            if (n < 1 || w < 0) throw new BioForgeException("--repeats must be positive and --warmup non-negative");
            foreach (long bytes in result.GetValue(sizes)!.Split(',').Select(ParseBytes).ToList()) // every size checked before the first runs
            {
                using var buffer = ones([Math.Max(1, bytes / 4)], ScalarType.Float32, gpu ?? CPU);
                double seconds = 0;
                for (int i = 0; i < w + n; i++)
                {
                    world.Barrier();
                    var clock = Stopwatch.StartNew();
                    world.AllReduce(buffer);
                    if (i >= w) seconds += clock.Elapsed.TotalSeconds;
                }
                // The slowest rank's time is the collective's time.
                using var slowest = tensor(new[] { seconds / n });
                world.AllReduce(slowest, ReduceOp.Max);
                double time = slowest.item<double>(), algorithmic = buffer.numel() * 4 / time / 1e9;
                if (world.Rank == 0)
                    output.WriteLine(JsonSerializer.Serialize(new
                    {
                        benchmark = "allreduce",
                        backend = world.Backend,
                        ranks = world.Size,
                        bytes = buffer.numel() * 4,
                        microseconds = Math.Round(time * 1e6, 1),
                        // gigabytes per second, as nccl-tests reports (plan's --node-gbps takes gigabits: × 8)
                        algbw_GBps = Math.Round(algorithmic, 3),
                        busbw_GBps = Math.Round(algorithmic * 2 * (world.Size - 1) / world.Size, 3),
                    }));
            }
            return 0;
        }));
        return command;
    }

    private static long ParseBytes(string text)
    {
        string t = text.Trim().ToUpperInvariant();
        long unit = t.EndsWith('K') ? 1L << 10 : t.EndsWith('M') ? 1L << 20 : t.EndsWith('G') ? 1L << 30 : 1;
        string digits = unit == 1 ? t : t[..^1];
        if (!long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long value) || value <= 0)
            throw new BioForgeException($"--sizes: '{text}' is not a size in bytes (e.g. 8K, 1M, 64M)");
        // A float32 tensor of that many bytes: up to 2^62 bytes (LibTorch's sizes are int64).
        return value <= (long.MaxValue / 2) / unit ? value * unit : throw new BioForgeException($"--sizes: '{text}' is larger than any tensor (at most {long.MaxValue / 2 / (1L << 30)}G)");
    }
}
