using System.CommandLine;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using BioForge.Runtime;

namespace BioForge.Cli;

/// <summary>
/// <c>bioforge bench completions</c>: open-loop load on a running server's <c>/v1/completions</c>. Request i leaves at
/// i / rate seconds whatever the answers, asks for n samples (n drawn from 1…max-n by the seed), streamed, so the time
/// to the first token is seen; reports generated tokens/s, requests/s, TTFT and latency percentiles as one JSON line.
/// </summary>
internal static class CompletionsBenchCommand
{
    private sealed record Outcome(int Status, double Seconds, double FirstToken, int Tokens);

    public static Command Create(TextWriter output, TextWriter error)
    {
        var url = new Option<string>("--url") { Description = "the server", DefaultValueFactory = _ => "http://127.0.0.1:8000" };
        var model = new Option<string>("--model") { Description = "decoder model", DefaultValueFactory = _ => "smiles-llama-small" };
        var rate = new Option<double>("--rate") { Description = "requests per second (open loop)", Required = true };
        var requests = Options.Int("--requests", "requests to send", 200);
        var seconds = new Option<double>("--seconds") { Description = "stop sending after this long", DefaultValueFactory = _ => 60 };
        var maxN = Options.Int("--max-n", "samples per request are drawn from 1 … this", 16);
        var maxTokens = Options.Int("--max-tokens", "max_tokens of each request (0: the server's default, until the end token)", 0);
        var seed = new Option<ulong>("--seed") { Description = "seed of the request mix (and of each request's samples)", DefaultValueFactory = _ => 0 };
        var label = new Option<string>("--label") { Description = "a name for this run in the JSON line", DefaultValueFactory = _ => "" };
        var command = new Command("completions", "Open-loop load test of /v1/completions: tokens/s, requests/s, time to first token, p50/p99 latency")
        {
            url, model, rate, requests, seconds, maxN, maxTokens, seed, label,
        };
        command.SetAction(result => Cli.Guard(error, () =>
        {
            double r = result.GetValue(rate);
            int count = result.GetValue(requests), top = result.GetValue(maxN), limit = result.GetValue(maxTokens);
            if (r <= 0 || count < 1 || top < 1 || limit < 0 || result.GetValue(seconds) <= 0)
                throw new BioForgeException("--rate, --requests, --max-n and --seconds must be positive, --max-tokens 0 or more");
            ulong mix = result.GetValue(seed);
            using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 4096 }) { BaseAddress = new Uri(result.GetValue(url)!), Timeout = TimeSpan.FromMinutes(5) };
            string name = result.GetValue(model)!;
            var bodies = Enumerable.Range(0, count).Select(i => JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["model"] = name,
                ["n"] = 1 + (int)(StatelessRandom.Hash(mix, i) % (ulong)top),
                ["seed"] = StatelessRandom.Hash(mix, i, 1) >> 12,
                ["stream"] = true,
                ["stream_options"] = new { include_usage = true },
                ["max_tokens"] = limit > 0 ? limit : null!,
            }.Where(kv => kv.Value is not null).ToDictionary())).ToArray();
            Send(client, bodies[0]).GetAwaiter().GetResult(); // warm-up, not counted
            var clock = Stopwatch.StartNew();
            var pending = new List<Task<Outcome>>();
            var window = TimeSpan.FromSeconds(result.GetValue(seconds));
            for (int i = 0; i < count && clock.Elapsed < window; i++)
            {
                var wait = TimeSpan.FromSeconds(i / r) - clock.Elapsed;
                if (wait > TimeSpan.Zero) Thread.Sleep(wait);
                pending.Add(Send(client, bodies[i]));
            }
            var outcomes = Task.WhenAll(pending).GetAwaiter().GetResult();
            double elapsed = clock.Elapsed.TotalSeconds;
            var ok = outcomes.Where(o => o.Status == 200).ToArray();
            var latency = ok.Select(o => o.Seconds).Order().ToArray();
            var firstToken = ok.Select(o => o.FirstToken).Order().ToArray();
            var report = new Dictionary<string, object?>
            {
                ["benchmark"] = "completions",
                ["label"] = result.GetValue(label),
                ["rate"] = r,
                ["sent"] = outcomes.Length,
                ["ok"] = ok.Length,
                ["shed_503"] = outcomes.Count(o => o.Status == 503),
                ["other"] = outcomes.Count(o => o.Status is not (200 or 503)),
                ["samples_requested"] = bodies.Take(outcomes.Length).Sum(b => JsonDocument.Parse(b).RootElement.GetProperty("n").GetInt32()),
                ["seconds"] = Math.Round(elapsed, 2),
                ["tokens_per_second"] = Math.Round(ok.Sum(o => o.Tokens) / elapsed, 1),
                ["requests_per_second"] = Math.Round(ok.Length / elapsed, 2),
                ["ttft_p50_ms"] = Percentile(firstToken, 0.50),
                ["ttft_p99_ms"] = Percentile(firstToken, 0.99),
                ["p50_ms"] = Percentile(latency, 0.50),
                ["p99_ms"] = Percentile(latency, 0.99),
            };
            output.WriteLine(JsonSerializer.Serialize(report));
            // Not one answered: a measurement of nothing (no server there, every request refused), which a script must not record.
            if (ok.Length == 0)
            {
                error.WriteLine($"error: none of the {outcomes.Length} requests was answered 200 (the report above says what they got)");
                return 1;
            }
            return 0;
        }));
        return command;
    }

    /// <summary>One streamed request: status, total seconds, seconds to the first event with text, generated tokens (usage).</summary>
    private static async Task<Outcome> Send(HttpClient client, string body)
    {
        var start = Stopwatch.GetTimestamp();
        double first = double.NaN;
        int tokens = 0;
        try
        {
            using var content = new StringContent(body, Encoding.UTF8);
            content.Headers.ContentType = MediaTypeHeaderValue.Parse("application/json");
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = content };
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            if (!response.IsSuccessStatusCode) return new Outcome((int)response.StatusCode, Stopwatch.GetElapsedTime(start).TotalSeconds, double.NaN, 0);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            bool done = false;
            while (await reader.ReadLineAsync() is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                if (line == "data: [DONE]")
                {
                    done = true;
                    break;
                }
                using var chunk = JsonDocument.Parse(line.AsMemory(6));
                if (double.IsNaN(first) && chunk.RootElement.GetProperty("choices").GetArrayLength() > 0) first = Stopwatch.GetElapsedTime(start).TotalSeconds;
                if (chunk.RootElement.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object) tokens = usage.GetProperty("completion_tokens").GetInt32();
            }
            // A stream that ended without [DONE] (an error event, a reset) is not a success.
            return new Outcome(done ? 200 : 0, Stopwatch.GetElapsedTime(start).TotalSeconds, first, tokens);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
        {
            return new Outcome(0, Stopwatch.GetElapsedTime(start).TotalSeconds, double.NaN, 0);
        }
    }

    /// <summary>The nearest-rank percentile, in milliseconds.</summary>
    private static double? Percentile(double[] sorted, double q) =>
        sorted.Length == 0 ? null : Math.Round(1000 * sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)], 2);
}
