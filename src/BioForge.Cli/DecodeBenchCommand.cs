using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using BioForge.Generation;
using BioForge.Models.Llama;
using BioForge.Tokenizers;

namespace BioForge.Cli;

/// <summary>
/// <c>bioforge bench decode</c>: the decode scheduler's own rate, without HTTP: a queue of de novo sequences (the same
/// seeds in every mode) decoded to their ends in each batching mode, modes alternated over the repeats so a busy
/// machine's drift falls on all of them. Separates what batching costs per row from what a server adds around it. An
/// unreported warm-up decodes a slot's worth of sequences in every mode first: in a fresh process .NET runs new code
/// unoptimised for a while (tiered compilation), which made the first mode measured pay several times the host work per
/// row of the others (the SMILES grammar's verdicts: ~50 against ~15 µs a row).
/// </summary>
internal static class DecodeBenchCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = Options.Required("--model", "a SMILES or protein decoder directory (Llama layout)");
        var sequences = Options.Int("--sequences", "sequences to decode in each run", 256);
        var slots = Options.Int("--slots", "key/value slots (sequences decoded at once)", 64);
        var modes = new Option<string>("--modes") { Description = "batching modes, comma-separated: continuous, static, padded, single", DefaultValueFactory = _ => "continuous,static" };
        var repeats = Options.Int("--repeats", "runs of every mode, alternated", 2);
        var compute = new ComputeOptionSet();
        var command = new Command("decode", "Decode-scheduler throughput (tokens/s, ms per row) of each batching mode, in process") { model, sequences, slots, modes, repeats };
        compute.AddTo(command);
        command.SetAction(result => Cli.Guard(error, () =>
        {
            var options = compute.Resolve(result);
            int count = result.GetValue(sequences), width = result.GetValue(slots), rounds = result.GetValue(repeats);
            if (count < 1 || width < 1 || rounds < 1) throw new BioForgeException("--sequences, --slots and --repeats must be positive");
            // By name only: Enum.TryParse also takes numbers, any number, and "7" ran as an unnamed mode.
            var known = Enum.GetValues<BatchingMode>().ToDictionary(mode => mode.ToString(), StringComparer.OrdinalIgnoreCase);
            var chosen = result.GetValue(modes)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                .Select(m => known.TryGetValue(m, out var mode) ? mode : throw new BioForgeException($"--modes: unknown batching mode '{m}' (continuous, static, padded, single)"))
                .ToList();
            if (chosen.Count == 0) throw new BioForgeException("--modes names no batching mode");
            using var checkpoint = LlamaCheckpoint.Load(result.GetValue(model)!, options.Device, options.DType);
            // The grammar the server applies by default, so the rows cost what they cost there.
            ITokenGrammar? grammar = checkpoint.IsProtein ? new ProteinGrammar(checkpoint.Residues!)
                : checkpoint.Vocabulary is { } vocabulary ? new SmilesGrammar(vocabulary) : null;
            var sampling = new SamplingOptions { MaxNewTokens = checkpoint.Config.MaxPositionEmbeddings, Grammar = grammar };
            var decoder = DecoderNetwork.Of(checkpoint.Model);
            string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(result.GetValue(model)!));
            foreach (var mode in chosen) Run(decoder, mode, Math.Min(count, mode == BatchingMode.Single ? 2 : width), width, sampling, options, name);
            for (int round = 0; round < rounds; round++)
                foreach (var mode in chosen)
                    output.WriteLine(JsonSerializer.Serialize(Run(decoder, mode, count, width, sampling, options, name)));
            return 0;
        }));
        return command;
    }

    private static object Run(DecoderNetwork decoder, BatchingMode mode, int count, int slots, SamplingOptions sampling, Runtime.ComputeOptions options, string model)
    {
        using var scheduler = new DecodeScheduler(decoder, slots, decoder.MaxPositions, mode, queueCapacity: count);
        long tokens = 0;
        var jobs = Enumerable.Range(0, count).Select(i => new SequenceJob
        {
            Prompt = [decoder.BosTokenId],
            Options = sampling,
            Seed = 0,
            Index = i,
            OnToken = _ =>
            {
                tokens++;
                return true;
            },
            OnFinished = (_, _) => { },
        }).ToList();
        if (!scheduler.TrySubmit(jobs)) throw new InvalidOperationException("the queue holds every sequence");
        long steps = 0, rows = 0, padding = 0;
        double host = 0;
        var clock = Stopwatch.StartNew(); // every step ends by reading its logits on the host: the clock sees the device's work
        while (scheduler.Busy)
        {
            var step = scheduler.Step();
            steps++;
            rows += step.Prefilled + step.Decoded;
            padding += step.Padding;
            host += step.HostSeconds;
        }
        double seconds = clock.Elapsed.TotalSeconds;
        return new
        {
            benchmark = "decode",
            model,
            mode = mode.ToString().ToLowerInvariant(),
            device = options.Device.ToString(),
            dtype = options.DType.ToString(),
            threads = options.Threads,
            sequences = count,
            slots = scheduler.Slots,
            steps,
            rows_per_step = Math.Round((double)rows / steps, 1),
            // Rows of ended sequences computed to their batch's end (padded batching); counted in rows_per_step.
            padding_rows_per_step = Math.Round((double)padding / steps, 1),
            tokens,
            seconds = Math.Round(seconds, 2),
            tokens_per_second = Math.Round(tokens / seconds, 1),
            ms_per_row = Math.Round(seconds * 1000 / rows, 3),
            // After the logits reach the host: grammar, draws, callbacks (what a faster device does not shorten).
            host_us_per_row = Math.Round(host * 1e6 / rows, 2),
        };
    }
}
