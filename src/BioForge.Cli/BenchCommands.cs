using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using BioForge.Models.Esm;
using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.Cli;

/// <summary><c>bioforge bench embed</c>: inference throughput of an ESM-2 size with random weights.</summary>
internal static class BenchCommands
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var size = new Option<string>("--size") { Description = $"ESM-2 size: {string.Join(", ", EsmConfig.Esm2Sizes.Keys)}", DefaultValueFactory = _ => "8M" };
        size.AcceptOnlyFromAmong([.. EsmConfig.Esm2Sizes.Keys]);
        var length = Options.Int("--length", "residues per sequence", 512);
        var batch = Options.Int("--batch", "sequences per batch", 64);
        var steps = Options.Int("--steps", "timed batches", 10);
        var warmup = Options.Int("--warmup", "untimed batches first", 2);
        var kernel = new Option<string>("--kernel") { Description = "fused (scaled_dot_product_attention) or explicit", DefaultValueFactory = _ => "fused" };
        kernel.AcceptOnlyFromAmong("fused", "explicit");
        var compute = new ComputeOptionSet();
        var embed = new Command("embed", "Embedding throughput (sequences/s, tokens/s), mean pooling, no gradients") { size, length, batch, steps, warmup, kernel };
        compute.AddTo(embed);
        embed.SetAction(result => Cli.Guard(error, () =>
        {
            var options = compute.Resolve(result);
            var config = EsmConfig.Esm2Sizes[result.GetValue(size)!];
            int b = result.GetValue(batch), t = result.GetValue(length), n = result.GetValue(steps), w = result.GetValue(warmup);
            if (b < 1 || t < 1 || n < 1 || w < 0) throw new BioForgeException("--batch, --length and --steps must be positive, --warmup non-negative");
            if (t > config.MaxResidues) throw new BioForgeException($"--length {t}: ESM-2 takes at most {config.MaxResidues} residues");
            using var esm = EsmCheckpoint.Random(config, options.Device, options.DType, seed: 0);
            var forward = new EsmForwardOptions { Kernel = Enum.Parse<Models.Esm.AttentionKernel>(result.GetValue(kernel)!, ignoreCase: true) };
            using var ids = torch.randint(4, 24, [b, t + 2], dtype: ScalarType.Int64, device: options.Device);
            using var mask = torch.ones_like(ids);
            double seconds = 0;
            for (int i = 0; i < w + n; i++)
            {
                Synchronize(options.Device);
                var clock = Stopwatch.StartNew();
                using (var scope = NewDisposeScope())
                using (no_grad())
                {
                    var hidden = esm.Model.Forward(ids, mask, forward).LastHiddenState;
                    hidden.narrow(1, 1, t).mean([1L]).to(ScalarType.Float32).cpu();
                }
                Synchronize(options.Device);
                if (i >= w) seconds += clock.Elapsed.TotalSeconds;
            }
            long parameters = esm.Model.parameters().Sum(p => p.numel());
            var report = new
            {
                benchmark = "embed",
                size = result.GetValue(size),
                parameters,
                device = options.Device.ToString(),
                dtype = options.DType.ToString(),
                threads = options.Threads,
                kernel = forward.Kernel.ToString().ToLowerInvariant(),
                batch = b,
                length = t,
                steps = n,
                seqs_per_s = Math.Round(n * b / seconds, 2),
                tokens_per_s = Math.Round(n * b * (double)(t + 2) / seconds, 0),
            };
            output.WriteLine(JsonSerializer.Serialize(report));
            return 0;
        }));
        var bench = new Command("bench", "Throughput benchmarks");
        bench.Subcommands.Add(embed);
        bench.Subcommands.Add(Similarity(output, error));
        bench.Subcommands.Add(Train(output, error));
        bench.Subcommands.Add(Matmul(output, error));
        bench.Subcommands.Add(ServeBenchCommand.Create(output, error));
        bench.Subcommands.Add(CompletionsBenchCommand.Create(output, error));
        bench.Subcommands.Add(DecodeBenchCommand.Create(output, error));
        bench.Subcommands.Add(PmoBenchCommand.Create(output, error));
        return bench;
    }

    /// <summary>
    /// <c>bioforge bench train</c>: training throughput of a run configuration (a short run into a scratch directory that
    /// writes no model or checkpoint), with model FLOPs per token ≈ 6 · parameters + 12 · layers · hidden · sequence length (PaLM's estimate).
    /// </summary>
    private static Command Train(TextWriter output, TextWriter error)
    {
        var config = Options.Required("--config", "run configuration (YAML)");
        var overrides = new Argument<string[]>("overrides") { Description = "section.key=value settings", Arity = ArgumentArity.ZeroOrMore };
        var steps = Options.Int("--steps", "timed optimizer steps", 20);
        var warmup = Options.Int("--warmup", "untimed steps first", 3);
        var command = new Command("train", "Training throughput (tokens/s, model TFLOP/s) of a run configuration") { config, overrides, steps, warmup };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            int n = result.GetValue(steps), w = result.GetValue(warmup);
            if (n < 1 || w < 0) throw new BioForgeException("--steps must be positive and --warmup non-negative");
            string scratch = Path.Combine(Path.GetTempPath(), $"bioforge-bench-{Environment.ProcessId}");
            try
            {
                var run = Training.RunConfig.Load(result.GetValue(config)!, [.. result.GetValue(overrides) ?? [],
                    $"train.steps={n + w}", $"train.output_dir={scratch}", "train.log_every=1", "validation.every=0",
                    "validation.max_batches=1", "checkpoint.every=0"]);
                long tokens = 0;
                double seconds = 0;
                var trained = Training.Trainer.Run(run, new Training.TrainerOptions
                {
                    WriteModel = false,
                    OnStep = r =>
                    {
                        if (r.Step <= w) return;
                        tokens += r.Tokens;
                        seconds += r.Tokens / r.TokensPerSecond;
                    },
                });
                long parameters = trained.Shape.Parameters;
                var corpus = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(run.Data.Dir, "summary.json")))!;
                double meanLength = run.Data.Packing ? run.Data.MaxLength : Math.Min(run.Data.MaxLength, corpus["train"]!["mean_length"]!.GetValue<double>());
                double flopsPerToken = 6.0 * parameters + 12.0 * trained.Shape.Layers * trained.Shape.Hidden * meanLength;
                output.WriteLine(JsonSerializer.Serialize(new
                {
                    benchmark = "train",
                    config = result.GetValue(config),
                    model = run.Model.Type,
                    parameters,
                    precision = run.Train.Precision,
                    tokens_per_batch = run.Data.TokensPerBatch,
                    mean_length = Math.Round(meanLength, 1),
                    steps = n,
                    tokens_per_s = Math.Round(tokens / seconds, 0),
                    model_gflops_per_s = Math.Round(tokens / seconds * flopsPerToken / 1e9, 1),
                    // The process's peak resident memory (model, optimizer and activations on the CPU; on a GPU the host side only).
                    peak_rss_mib = PeakResidentMiB(),
                }));
                return 0;
            }
            finally
            {
                if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
            }
        }));
        return command;
    }

    /// <summary><c>bioforge bench matmul</c>: the machine's float32 (or bf16) matrix-multiply rate, the yardstick for model FLOP/s.</summary>
    private static Command Matmul(TextWriter output, TextWriter error)
    {
        var size = Options.Int("--size", "square matrix size", 2048);
        var repeats = Options.Int("--repeats", "timed products", 10);
        var compute = new ComputeOptionSet();
        var command = new Command("matmul", "Dense matrix-multiply rate (GFLOP/s)") { size, repeats };
        compute.AddTo(command);
        command.SetAction(result => Cli.Guard(error, () =>
        {
            var options = compute.Resolve(result);
            int n = result.GetValue(size), r = result.GetValue(repeats);
            if (n < 1 || r < 1) throw new BioForgeException("--size and --repeats must be positive");
            using var a = torch.randn([n, n], options.DType, options.Device);
            using var b = torch.randn([n, n], options.DType, options.Device);
            using (var warm = a.matmul(b)) Synchronize(options.Device);
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < r; i++)
                using (var c = a.matmul(b)) { }
            Synchronize(options.Device);
            double seconds = clock.Elapsed.TotalSeconds;
            output.WriteLine(JsonSerializer.Serialize(new
            {
                benchmark = "matmul",
                size = n,
                device = options.Device.ToString(),
                dtype = options.DType.ToString(),
                threads = options.Threads,
                gflops_per_s = Math.Round(2.0 * n * n * n * r / seconds / 1e9, 1),
            }));
            return 0;
        }));
        return command;
    }

    /// <summary><c>bioforge bench similarity</c>: bulk Tanimoto comparisons per second over a fingerprint index.</summary>
    private static Command Similarity(TextWriter output, TextWriter error)
    {
        var input = Options.Required("--in", "molecules (.smi, .csv or .sdf)");
        var copies = Options.Int("--copies", "repeat the library this many times (to reach a million fingerprints)", 1);
        var queries = Options.Int("--queries", "searches to time (the first molecules of the file)", 20);
        var bits = Options.Int("--bits", "fingerprint bits", 2048);
        var threads = Options.Int("--threads", "threads (default: all cores)", 0);
        var command = new Command("similarity", "Top-10 Tanimoto search throughput (comparisons/s) over Morgan fingerprints") { input, copies, queries, bits, threads };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            Chem.Fingerprints.CheckMorgan(2, result.GetValue(bits), "--radius", "--bits");
            var records = Chem.MoleculeSource.Read(result.GetValue(input)!).ToList();
            int n = result.GetValue(copies), q = result.GetValue(queries);
            if (n is < 1 or > 10_000) throw new BioForgeException($"--copies {n}: must be 1 to 10,000");
            if (q < 1) throw new BioForgeException($"--queries {q}: must be positive");
            int workers = result.GetValue(threads) > 0 ? result.GetValue(threads) : Environment.ProcessorCount;
            var clock = Stopwatch.StartNew();
            var index = Chem.FingerprintIndex.Build(Enumerable.Range(0, n).SelectMany(_ => records), 2, result.GetValue(bits), workers);
            double build = clock.Elapsed.TotalSeconds;
            if (index.Count == 0) throw new BioForgeException($"{result.GetValue(input)}: none of its {records.Count} molecules could be read");
            var probes = Enumerable.Range(0, Math.Min(q, index.Count)).Select(i => index[i].ToArray()).ToList();
            index.Search(probes[0], 10, workers); // warm-up
            clock.Restart();
            foreach (var probe in probes) index.Search(probe, 10, workers);
            double seconds = clock.Elapsed.TotalSeconds;
            output.WriteLine(JsonSerializer.Serialize(new
            {
                benchmark = "similarity",
                fingerprints = index.Count,
                bits = index.Bits,
                threads = workers,
                queries = probes.Count,
                build_s = Math.Round(build, 1),
                comparisons_per_s = Math.Round(probes.Count * (double)index.Count / seconds, 0),
            }));
            return 0;
        }));
        return command;
    }

    /// <summary>VmHWM of /proc/self/status, in MiB (null where the file does not exist).</summary>
    private static double? PeakResidentMiB()
    {
        const string path = "/proc/self/status";
        if (!File.Exists(path)) return null;
        string? line = File.ReadLines(path).FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return line is null ? null : Math.Round(long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 1024.0, 1);
    }

    private static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) torch.cuda.synchronize(device);
    }
}
