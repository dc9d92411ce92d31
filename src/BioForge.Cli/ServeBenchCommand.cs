using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace BioForge.Cli;

/// <summary>
/// <c>bioforge bench serve</c>: a load generator for a running <c>bioforge serve</c> (loopback). Closed loop
/// (<c>--concurrency</c> clients, each sending its next request when the last is answered) or open loop
/// (<c>--rate</c> requests/s whatever the answers, the way overload arrives). Bounded by request count and time; reports
/// throughput and latency percentiles of accepted requests, and the shed ones apart, as one JSON line.
/// </summary>
internal static class ServeBenchCommand
{
    private sealed record Outcome(int Status, double Seconds);

    public static Command Create(TextWriter output, TextWriter error)
    {
        var url = new Option<string>("--url") { Description = "the server", DefaultValueFactory = _ => "http://127.0.0.1:8000" };
        var model = new Option<string>("--model") { Description = "embedding model", DefaultValueFactory = _ => "esm2-small" };
        var inputs = new Option<string>("--inputs") { Description = "FASTA (protein model) or .smi (SMILES model) file; one input per request, cycled", Required = true };
        var concurrency = Options.Int("--concurrency", "closed loop: clients with one request in flight each", 32);
        var rate = new Option<double>("--rate") { Description = "open loop: requests per second (overrides --concurrency)", DefaultValueFactory = _ => 0 };
        var requests = Options.Int("--requests", "requests to send", 2000);
        var seconds = new Option<double>("--seconds") { Description = "stop sending after this long", DefaultValueFactory = _ => 120 };
        var warmup = Options.Int("--warmup", "requests sent first and not counted", 50);
        var sample = new Option<double>("--sample-memory-s") { Description = "read the server's resident memory from /v1/metrics this often (0: never)", DefaultValueFactory = _ => 0 };
        var label = new Option<string>("--label") { Description = "a name for this run in the JSON line", DefaultValueFactory = _ => "" };
        var command = new Command("serve", "Load test of a running `bioforge serve`: throughput, p50/p99 latency, shed requests") { url, model, inputs, concurrency, rate, requests, seconds, warmup, sample, label };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            var texts = ReadInputs(result.GetValue(inputs)!);
            int n = result.GetValue(requests), c = result.GetValue(concurrency), w = result.GetValue(warmup);
            if (n < 1 || c < 1 || w < 0) throw new BioForgeException("--requests and --concurrency must be positive, --warmup non-negative");
            if (result.GetValue(rate) < 0 || result.GetValue(seconds) <= 0 || result.GetValue(sample) < 0)
                throw new BioForgeException("--rate and --sample-memory-s must be 0 or more, --seconds positive");
            using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 4096 }) { BaseAddress = new Uri(result.GetValue(url)!), Timeout = TimeSpan.FromMinutes(2) };
            string name = result.GetValue(model)!;
            var bodies = texts.Select(t => JsonSerializer.Serialize(new { model = name, input = t })).ToArray();
            Run(client, bodies, 0, w, c, 0, TimeSpan.FromMinutes(5));
            var memory = new List<(double Seconds, double Bytes)>();
            var clock = Stopwatch.StartNew();
            using var sampler = result.GetValue(sample) > 0 ? new Timer(_ => Sample(client, clock, memory), null, TimeSpan.Zero, TimeSpan.FromSeconds(result.GetValue(sample))) : null;
            var outcomes = Run(client, bodies, w, n, c, result.GetValue(rate), TimeSpan.FromSeconds(result.GetValue(seconds)));
            double elapsed = clock.Elapsed.TotalSeconds;
            sampler?.Dispose();
            Sample(client, clock, memory);
            var ok = outcomes.Where(o => o.Status == 200).Select(o => o.Seconds).Order().ToArray();
            var shed = outcomes.Where(o => o.Status is 429 or 503).Select(o => o.Seconds).Order().ToArray();
            var report = new Dictionary<string, object?>
            {
                ["benchmark"] = "serve",
                ["label"] = result.GetValue(label),
                ["mode"] = result.GetValue(rate) > 0 ? $"open loop {result.GetValue(rate)} req/s" : $"closed loop, {c} clients",
                ["sent"] = outcomes.Count,
                ["ok"] = ok.Length,
                ["shed_503_429"] = shed.Length,
                ["timeout_504"] = outcomes.Count(o => o.Status == 504),
                ["other"] = outcomes.Count(o => o.Status is not (200 or 429 or 503 or 504)),
                ["seconds"] = Math.Round(elapsed, 2),
                ["ok_per_second"] = Math.Round(ok.Length / elapsed, 1),
                ["p50_ms"] = Percentile(ok, 0.50),
                ["p90_ms"] = Percentile(ok, 0.90),
                ["p99_ms"] = Percentile(ok, 0.99),
                ["max_ms"] = Percentile(ok, 1.0),
                ["shed_p99_ms"] = Percentile(shed, 0.99),
                ["resident_mb"] = memory.Select(m => Math.Round(m.Bytes / 1e6, 1)).ToArray(),
            };
            output.WriteLine(JsonSerializer.Serialize(report));
            // Not one answered: a measurement of nothing (no server there, every request refused), which a script must not record.
            if (ok.Length == 0)
            {
                error.WriteLine($"error: none of the {outcomes.Count} requests was answered 200 (the report above says what they got)");
                return 1;
            }
            return 0;
        }));
        return command;
    }

    private static List<Outcome> Run(HttpClient client, string[] bodies, int offset, int count, int concurrency, double rate, TimeSpan limit)
    {
        var outcomes = new List<Outcome>(count);
        var deadline = Stopwatch.StartNew();
        int next = 0;
        async Task<Outcome> Send(int index)
        {
            var start = Stopwatch.GetTimestamp();
            using var content = new StringContent(bodies[(offset + index) % bodies.Length], Encoding.UTF8, "application/json");
            try
            {
                using var response = await client.PostAsync("/v1/embeddings", content);
                await response.Content.ReadAsByteArrayAsync();
                return new Outcome((int)response.StatusCode, Stopwatch.GetElapsedTime(start).TotalSeconds);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                return new Outcome(0, Stopwatch.GetElapsedTime(start).TotalSeconds); // refused, reset or timed out: counted under "other"
            }
        }
        if (rate > 0)
        {
            // Open loop: request i leaves at i / rate seconds, answered or not.
            var pending = new List<Task<Outcome>>();
            for (int i = 0; i < count && deadline.Elapsed < limit; i++)
            {
                var wait = TimeSpan.FromSeconds(i / rate) - deadline.Elapsed;
                if (wait > TimeSpan.Zero) Thread.Sleep(wait);
                pending.Add(Send(i));
            }
            outcomes.AddRange(Task.WhenAll(pending).GetAwaiter().GetResult());
            return outcomes;
        }
        var clients = Enumerable.Range(0, concurrency).Select(async _ =>
        {
            var mine = new List<Outcome>();
            while (deadline.Elapsed < limit)
            {
                int index = Interlocked.Increment(ref next) - 1;
                if (index >= count) break;
                mine.Add(await Send(index));
            }
            return mine;
        }).ToArray();
        foreach (var list in Task.WhenAll(clients).GetAwaiter().GetResult()) outcomes.AddRange(list);
        return outcomes;
    }

    private static void Sample(HttpClient client, Stopwatch clock, List<(double Seconds, double Bytes)> memory)
    {
        try
        {
            string text = client.GetStringAsync("/v1/metrics").GetAwaiter().GetResult();
            string? line = text.Split('\n').FirstOrDefault(l => l.StartsWith("bioforge_process_resident_bytes ", StringComparison.Ordinal));
            if (line is null) return;
            lock (memory) memory.Add((clock.Elapsed.TotalSeconds, double.Parse(line.Split(' ')[1], CultureInfo.InvariantCulture)));
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            // A sample missed while the server is saturated; the next one is taken on time.
        }
    }

    /// <summary>The nearest-rank percentile, in milliseconds.</summary>
    private static double? Percentile(double[] sorted, double q) =>
        sorted.Length == 0 ? null : Math.Round(1000 * sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)], 2);

    private static string[] ReadInputs(string path)
    {
        if (!File.Exists(path)) throw new BioForgeException($"--inputs {path}: file not found");
        using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(File.OpenRead(path), CompressionMode.Decompress) : File.OpenRead(path);
        using var reader = new StreamReader(stream);
        var lines = new List<string>();
        var fasta = new StringBuilder();
        bool isFasta = false;
        string? line;
        while ((line = reader.ReadLine()) != null)
        {
            line = line.Trim();
            if (line.StartsWith('>'))
            {
                isFasta = true;
                if (fasta.Length > 0) lines.Add(fasta.ToString());
                fasta.Clear();
            }
            else if (isFasta) fasta.Append(line);
            else if (line.Length > 0) lines.Add(line.Split([' ', '\t'], 2)[0]);
            if (lines.Count >= 10_000) break;
        }
        if (fasta.Length > 0) lines.Add(fasta.ToString());
        return lines.Count > 0 ? [.. lines] : throw new BioForgeException($"--inputs {path}: no sequence or SMILES");
    }
}
