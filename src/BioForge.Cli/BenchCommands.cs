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
        return bench;
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
            var records = Chem.MoleculeSource.Read(result.GetValue(input)!).ToList();
            int n = Math.Max(1, result.GetValue(copies)), q = Math.Max(1, result.GetValue(queries));
            int workers = result.GetValue(threads) > 0 ? result.GetValue(threads) : Environment.ProcessorCount;
            var clock = Stopwatch.StartNew();
            var index = Chem.FingerprintIndex.Build(Enumerable.Range(0, n).SelectMany(_ => records), 2, result.GetValue(bits), workers);
            double build = clock.Elapsed.TotalSeconds;
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

    private static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) torch.cuda.synchronize(device);
    }
}
