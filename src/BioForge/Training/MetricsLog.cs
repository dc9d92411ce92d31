using System.Text.Json;
using System.Text.Json.Nodes;
using BioForge.IO;

namespace BioForge.Training;

/// <summary>A run's <c>metrics.jsonl</c>, open for appending one JSON object per line.</summary>
public sealed class MetricsLog : IDisposable
{
    private readonly StreamWriter writer;

    internal MetricsLog(string path, long resumedStep)
    {
        if (File.Exists(path))
        {
            var kept = File.ReadLines(path).Where(line => StepOf(line) is { } step && step <= resumedStep).ToList();
            AtomicFile.WriteText(path, kept.Count == 0 ? "" : string.Join("\n", kept) + "\n");
        }
        writer = new StreamWriter(path, append: true) { AutoFlush = true };
    }

    /// <summary>Appends a line; a value that is not a finite number (an undefined metric, a diverged loss) is written as null, JSON having no NaN.</summary>
    public void Write(JsonObject line)
    {
        foreach (var (key, value) in line.ToList())
            if (value is JsonValue number && number.TryGetValue(out double x) && !double.IsFinite(x)) line[key] = null;
        writer.WriteLine(line.ToJsonString());
    }

    internal static long? StepOf(string line)
    {
        try
        {
            return JsonNode.Parse(line)?["step"]?.GetValue<long>();
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            return null; // cut short by a kill, or not ours
        }
    }

    public void Dispose() => writer.Dispose();
}
