using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace BioForge.Server;

/// <summary>
/// The service's counters, gauges and histograms, written in Prometheus' text exposition format (version 0.0.4) at
/// <c>/v1/metrics</c>. One instance per server: no process-wide registry.
/// </summary>
internal sealed class ServerMetrics
{
    private static readonly double[] LatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    private static readonly double[] BatchSizeBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

    private readonly ConcurrentDictionary<(string Route, int Status), Counter> requests = new();
    private readonly ConcurrentDictionary<string, Histogram> latency = new();
    private readonly ConcurrentDictionary<string, Histogram> batchSizes = new();
    private readonly ConcurrentDictionary<string, Histogram> batchSeconds = new();
    private readonly ConcurrentDictionary<string, Counter> tokens = new();
    private readonly ConcurrentDictionary<string, Counter> dropped = new();
    private readonly ConcurrentDictionary<string, Counter> cancelled = new();
    private readonly ConcurrentDictionary<string, Counter> rejected = new();
    private readonly ConcurrentDictionary<string, Func<int>> queueDepth = new();
    private readonly ConcurrentDictionary<string, Func<int>> queueBusy = new();
    private readonly ConcurrentDictionary<string, Histogram> firstToken = new();
    private readonly ConcurrentDictionary<(string Name, string Model), (string Help, Func<int> Value)> gauges = new();

    public void Request(string route, int status, double seconds)
    {
        requests.GetOrAdd((route, status), _ => new Counter()).Add(1);
        latency.GetOrAdd(route, _ => new Histogram(LatencyBuckets)).Observe(seconds);
    }

    public void Batch(string model, int size, long batchTokens, double seconds)
    {
        batchSizes.GetOrAdd(model, _ => new Histogram(BatchSizeBuckets)).Observe(size);
        batchSeconds.GetOrAdd(model, _ => new Histogram(LatencyBuckets)).Observe(seconds);
        tokens.GetOrAdd(model, _ => new Counter()).Add(batchTokens);
    }

    /// <summary>A request cancelled (client gone, timed out) before its batch ran: never computed.</summary>
    public void Dropped(string model, int count = 1) => dropped.GetOrAdd(model, _ => new Counter()).Add(count);

    /// <summary>Sequences stopped while decoding because their client left or timed out (their slots freed at once).</summary>
    public void Cancelled(string model, int count) => cancelled.GetOrAdd(model, _ => new Counter()).Add(count);

    /// <summary>A request refused because a queue was full.</summary>
    public void Rejected(string queue) => rejected.GetOrAdd(queue, _ => new Counter()).Add(1);

    public void QueueDepth(string queue, Func<int> depth) => queueDepth[queue] = depth;

    /// <summary>Whether a queue of this name reports already (a model named after a worker would overwrite its gauges).</summary>
    public bool HasQueue(string queue) => queueDepth.ContainsKey(queue);

    /// <summary>1 while the queue's worker runs a piece of work, 0 when idle (averaged over time: its utilisation).</summary>
    public void QueueBusy(string queue, Func<int> busy) => queueBusy[queue] = busy;

    /// <summary>Time from a completion request to its first generated token.</summary>
    public void FirstToken(string model, double seconds) => firstToken.GetOrAdd(model, _ => new Histogram(LatencyBuckets)).Observe(seconds);

    /// <summary>A gauge read when the metrics are rendered, labelled by model.</summary>
    public void Gauge(string name, string help, string model, Func<int> value) => gauges[(name, model)] = (help, value);

    public string Render()
    {
        var text = new StringBuilder();
        Family(text, "bioforge_requests_total", "counter", "HTTP requests by route and status");
        foreach (var ((route, status), c) in requests.OrderBy(kv => kv.Key.Route, StringComparer.Ordinal).ThenBy(kv => kv.Key.Status))
            Sample(text, "bioforge_requests_total", $"route=\"{Escape(route)}\",status=\"{status}\"", c.Value);
        Family(text, "bioforge_request_duration_seconds", "histogram", "time from request to response, by route");
        foreach (var (route, h) in latency.OrderBy(kv => kv.Key, StringComparer.Ordinal)) h.Render(text, "bioforge_request_duration_seconds", $"route=\"{Escape(route)}\"");
        Family(text, "bioforge_batch_size", "histogram", "requests per executed batch, by model");
        foreach (var (model, h) in batchSizes.OrderBy(kv => kv.Key, StringComparer.Ordinal)) h.Render(text, "bioforge_batch_size", $"model=\"{Escape(model)}\"");
        Family(text, "bioforge_batch_duration_seconds", "histogram", "compute time of one batch on the device, by model");
        foreach (var (model, h) in batchSeconds.OrderBy(kv => kv.Key, StringComparer.Ordinal)) h.Render(text, "bioforge_batch_duration_seconds", $"model=\"{Escape(model)}\"");
        Family(text, "bioforge_tokens_total", "counter", "tokens computed, by model (rate() gives tokens/s)");
        foreach (var (model, c) in tokens.OrderBy(kv => kv.Key, StringComparer.Ordinal)) Sample(text, "bioforge_tokens_total", $"model=\"{Escape(model)}\"", c.Value);
        Family(text, "bioforge_queue_depth", "gauge", "requests waiting, by queue");
        foreach (var (queue, depth) in queueDepth.OrderBy(kv => kv.Key, StringComparer.Ordinal)) Sample(text, "bioforge_queue_depth", $"queue=\"{Escape(queue)}\"", depth());
        Family(text, "bioforge_queue_busy", "gauge", "1 while the queue's worker runs a piece of work (avg_over_time: utilisation), by queue");
        foreach (var (queue, busy) in queueBusy.OrderBy(kv => kv.Key, StringComparer.Ordinal)) Sample(text, "bioforge_queue_busy", $"queue=\"{Escape(queue)}\"", busy());
        Family(text, "bioforge_requests_dropped_total", "counter", "inputs of requests cancelled before they were computed (an embeddings request of 100 inputs counts 100), by model");
        foreach (var (model, c) in dropped.OrderBy(kv => kv.Key, StringComparer.Ordinal)) Sample(text, "bioforge_requests_dropped_total", $"model=\"{Escape(model)}\"", c.Value);
        Family(text, "bioforge_sequences_cancelled_total", "counter", "sequences stopped mid-decode because their client left or timed out, by model");
        foreach (var (model, c) in cancelled.OrderBy(kv => kv.Key, StringComparer.Ordinal)) Sample(text, "bioforge_sequences_cancelled_total", $"model=\"{Escape(model)}\"", c.Value);
        Family(text, "bioforge_requests_rejected_total", "counter", "requests refused with 503 because a queue was full or its predicted wait too long, by queue");
        foreach (var (queue, c) in rejected.OrderBy(kv => kv.Key, StringComparer.Ordinal)) Sample(text, "bioforge_requests_rejected_total", $"queue=\"{Escape(queue)}\"", c.Value);
        Family(text, "bioforge_time_to_first_token_seconds", "histogram", "time from a completion request to its first token, by model");
        foreach (var (model, h) in firstToken.OrderBy(kv => kv.Key, StringComparer.Ordinal)) h.Render(text, "bioforge_time_to_first_token_seconds", $"model=\"{Escape(model)}\"");
        foreach (var group in gauges.GroupBy(kv => kv.Key.Name).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            Family(text, group.Key, "gauge", group.First().Value.Help);
            foreach (var (key, (_, value)) in group.OrderBy(kv => kv.Key.Model, StringComparer.Ordinal)) Sample(text, group.Key, $"model=\"{Escape(key.Model)}\"", value());
        }
        Family(text, "bioforge_process_resident_bytes", "gauge", "resident memory of the process");
        Sample(text, "bioforge_process_resident_bytes", "", Environment.WorkingSet);
        Family(text, "bioforge_managed_heap_bytes", "gauge", "bytes on the .NET heap");
        Sample(text, "bioforge_managed_heap_bytes", "", GC.GetTotalMemory(false));
        return text.ToString();
    }

    private static void Family(StringBuilder text, string name, string type, string help) =>
        text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n').Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    private static void Sample(StringBuilder text, string name, string labels, double value) =>
        text.Append(name).Append(labels.Length > 0 ? $"{{{labels}}}" : "").Append(' ').Append(Format(value)).Append('\n');

    /// <summary>The shortest text that reads back as the same double: bucket bounds read as written (<c>le="0.0025"</c>), as Prometheus's own clients write them.</summary>
    private static string Format(double value) => value switch
    {
        double.PositiveInfinity => "+Inf",
        double.NegativeInfinity => "-Inf",
        _ => value.ToString("R", CultureInfo.InvariantCulture),
    };

    private static string Escape(string label) => label.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private sealed class Counter
    {
        private long value;
        public double Value => Interlocked.Read(ref value);
        public void Add(long amount) => Interlocked.Add(ref value, amount);
    }

    private sealed class Histogram(double[] bounds)
    {
        private readonly long[] counts = new long[bounds.Length + 1];
        private double sum;
        private long count;
        private readonly Lock gate = new();

        public void Observe(double value)
        {
            int bucket = Array.FindIndex(bounds, b => value <= b);
            lock (gate)
            {
                counts[bucket < 0 ? bounds.Length : bucket]++;
                sum += value;
                count++;
            }
        }

        public void Render(StringBuilder text, string name, string labels)
        {
            lock (gate)
            {
                long cumulative = 0;
                for (int i = 0; i <= bounds.Length; i++)
                {
                    cumulative += counts[i];
                    string le = i < bounds.Length ? Format(bounds[i]) : "+Inf";
                    Sample(text, name + "_bucket", $"{labels},le=\"{le}\"", cumulative);
                }
                Sample(text, name + "_sum", labels, sum);
                Sample(text, name + "_count", labels, count);
            }
        }
    }
}
