using System.Collections.Frozen;
using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace BioForge.Discovery;

/// <summary>
/// A user's scoring program behind an <c>external_process</c> component, spoken to with REINVENT 4's ExternalProcess
/// protocol: one process per scoring batch, the SMILES on standard input one per line (invalid ones too: the program
/// decides what they are worth), and on standard output <c>{"version": 1, "payload": {"&lt;property&gt;": [one
/// number per input, in order]}}</c>. A value may be <c>null</c> or <c>NaN</c> (Python's <c>json.dumps</c> writes
/// <c>NaN</c>, <c>Infinity</c>, <c>-Infinity</c>, which strict JSON lacks): the program could not score that molecule,
/// and it scores 0 with the reason kept, as in REINVENT 4. Anything else — a missing property, a wrong count, output
/// that is not JSON, a string where a number belongs, a non-zero exit, a time-out — ends the run with one message
/// naming the component and quoting the program's stderr, because a silent zero would quietly steer the optimization
/// somewhere else.
/// </summary>
internal sealed class ExternalScorer
{
    private const int StderrTail = 2000;
    private readonly string executable;
    private readonly string[] arguments;
    private readonly string property;
    private readonly TimeSpan timeout;
    private readonly string where;

    public ExternalScorer(ComponentSettings component)
    {
        executable = component.Executable ?? "";
        arguments = [.. ShellWords.Split(component.Args ?? "")];
        property = component.Property ?? "";
        timeout = TimeSpan.FromSeconds(component.TimeoutS);
        where = $"component '{component.Label}' ({executable})";
        // Found now, not when the first batch is scored after the prior is loaded and sampled.
        if (Locate(executable) is null)
            throw new BioForgeException($"{where}: no such program{(executable.Contains('/') ? "" : " on PATH")}");
    }

    /// <summary>The file the program name runs: a path as given, a bare name looked up on PATH (as Process.Start does).</summary>
    private static string? Locate(string name)
    {
        if (name.Length == 0) return null;
        if (name.Contains('/')) return File.Exists(name) ? name : null;
        return (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, name)).FirstOrDefault(File.Exists);
    }

    /// <summary>One value per SMILES, in order, from one run of the program; NaN where it gave null or NaN.</summary>
    public double[] Score(IReadOnlyList<string> smiles)
    {
        if (smiles.Count == 0) return [];
        var start = new ProcessStartInfo(executable)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardInputEncoding = new UTF8Encoding(false),
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        using var process = new Process { StartInfo = start };
        try
        {
            process.Start();
        }
        catch (Exception e) when (e is Win32Exception or InvalidOperationException)
        {
            throw new BioForgeException($"{where}: cannot start the program ({e.Message})");
        }
        // Both pipes are drained while the input is written, so a program that answers as it reads never blocks on a full pipe.
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var input = new StringBuilder();
        foreach (string s in smiles) input.Append(s.ReplaceLineEndings(" ")).Append('\n');
        // Written on the side: a program that never reads would block a write larger than the pipe past the timeout.
        var written = Task.Run(() =>
        {
            try
            {
                process.StandardInput.Write(input.ToString());
                process.StandardInput.Close();
            }
            catch (IOException)
            {
                // The program stopped reading (it exited early or was killed); its exit status and stderr say why, below.
            }
        });
        if (!process.WaitForExit(timeout))
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // exited between the time-out and the kill
            }
            process.WaitForExit();
            written.Wait();
            throw Failure($"no answer within timeout_s = {timeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s; the program and its children were killed", Drain(stderr));
        }
        process.WaitForExit(); // let the pipes reach their end
        written.Wait();
        string output = Drain(stdout), errors = Drain(stderr);
        if (process.ExitCode != 0) throw Failure($"the program exited with status {process.ExitCode}", errors);
        return Parse(output, smiles.Count, errors);
    }

    private double[] Parse(string output, int count, string errors)
    {
        JsonElement payload;
        try
        {
            using var document = JsonDocument.Parse(WithPythonConstantsQuoted(output));
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw Failure($"the output is not a JSON object: {Excerpt(output)}", errors);
            if (root.TryGetProperty("version", out var version) && !(version.ValueKind == JsonValueKind.Number && version.GetDouble() == 1))
                throw Failure($"protocol version {version.GetRawText()} is not supported (only 1)", errors);
            if (!root.TryGetProperty("payload", out var found) || found.ValueKind != JsonValueKind.Object)
                throw Failure($"the output has no \"payload\" object: {Excerpt(output)}", errors);
            payload = found.Clone();
        }
        catch (JsonException e)
        {
            throw Failure($"the output is not JSON ({e.Message}): {Excerpt(output)}", errors);
        }
        if (!payload.TryGetProperty(property, out var values))
            throw Failure($"the payload has no property '{property}' (it has: {string.Join(", ", payload.EnumerateObject().Select(p => p.Name))})", errors);
        if (values.ValueKind != JsonValueKind.Array) throw Failure($"payload.{property} is not an array", errors);
        if (values.GetArrayLength() != count)
            throw Failure($"payload.{property} has {values.GetArrayLength()} values for {count} SMILES (one per input line, in order)", errors);
        var result = new double[count];
        int i = 0;
        foreach (var value in values.EnumerateArray())
        {
            result[i] = value.ValueKind switch
            {
                JsonValueKind.Number => value.GetDouble(),
                JsonValueKind.Null => double.NaN,
                JsonValueKind.String when value.GetString() is { } text && PythonConstants.TryGetValue(text, out double constant) => constant,
                _ => throw Failure($"payload.{property}[{i}] is {value.GetRawText()}, not a number (or null for no score)", errors),
            };
            i++;
        }
        return result;
    }

    // Sentinel strings the output's bare constants become; a string the program wrote itself keeps its quotes, so it
    // cannot be mistaken for one (the sentinels hold a character JSON text outside strings never has).
    private static readonly FrozenDictionary<string, double> PythonConstants = new Dictionary<string, double>(StringComparer.Ordinal)
    {
        ["\u0001NaN"] = double.NaN,
        ["\u0001Infinity"] = double.PositiveInfinity,
        ["\u0001-Infinity"] = double.NegativeInfinity,
    }.ToFrozenDictionary(StringComparer.Ordinal);

    /// <summary>The output with Python's bare <c>NaN</c>, <c>Infinity</c> and <c>-Infinity</c> (outside strings) quoted as sentinels.</summary>
    private static string WithPythonConstantsQuoted(string output)
    {
        if (!output.Contains("NaN", StringComparison.Ordinal) && !output.Contains("Infinity", StringComparison.Ordinal)) return output;
        var text = new StringBuilder(output.Length + 16);
        bool inString = false;
        for (int i = 0; i < output.Length; i++)
        {
            char c = output[i];
            if (inString)
            {
                text.Append(c);
                if (c == '\\' && i + 1 < output.Length) text.Append(output[++i]);
                else if (c == '"') inString = false;
                continue;
            }
            string? constant = c == '"' ? null
                : string.CompareOrdinal(output, i, "NaN", 0, 3) == 0 ? "NaN"
                : string.CompareOrdinal(output, i, "Infinity", 0, 8) == 0 ? "Infinity"
                : string.CompareOrdinal(output, i, "-Infinity", 0, 9) == 0 ? "-Infinity"
                : null;
            if (constant is not null)
            {
                text.Append("\"\\u0001").Append(constant).Append('"');
                i += constant.Length - 1;
                continue;
            }
            if (c == '"') inString = true;
            text.Append(c);
        }
        return text.ToString();
    }

    private BioForgeException Failure(string what, string errors)
    {
        string tail = errors.Trim();
        if (tail.Length > StderrTail) tail = "…" + tail[^StderrTail..];
        return new BioForgeException($"{where}: {what}; stderr: {(tail.Length == 0 ? "(empty)" : tail)}");
    }

    private static string Excerpt(string text)
    {
        string trimmed = text.Trim();
        return trimmed.Length == 0 ? "(empty)" : Spelling.Excerpt(trimmed, 200);
    }

    private static string Drain(Task<string> reader) => reader.Wait(TimeSpan.FromSeconds(5)) ? reader.Result : "";
}

/// <summary>Splits an argument string the way a POSIX shell (and Python's <c>shlex.split</c>, which REINVENT 4 uses) does.</summary>
internal static class ShellWords
{
    /// <summary>
    /// Whitespace separates words; single quotes keep everything literally; double quotes keep everything but a
    /// backslash before <c>\ " $ `</c> or a newline; outside quotes a backslash keeps the next character.
    /// </summary>
    public static List<string> Split(string text)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        bool inWord = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsWhiteSpace(c))
            {
                if (inWord) words.Add(word.ToString());
                word.Clear();
                inWord = false;
                continue;
            }
            inWord = true;
            switch (c)
            {
                case '\'':
                    int close = text.IndexOf('\'', i + 1);
                    if (close < 0) throw new BioForgeException($"args: unclosed single quote at character {i + 1} of \"{text}\"");
                    word.Append(text, i + 1, close - i - 1);
                    i = close;
                    break;
                case '"':
                    i++;
                    for (; i < text.Length && text[i] != '"'; i++)
                    {
                        if (text[i] == '\\' && i + 1 < text.Length && text[i + 1] is '\\' or '"' or '$' or '`' or '\n') i++;
                        word.Append(text[i]);
                    }
                    if (i >= text.Length) throw new BioForgeException($"args: unclosed double quote in \"{text}\"");
                    break;
                case '\\':
                    if (i + 1 >= text.Length) throw new BioForgeException($"args: a backslash ends \"{text}\" (nothing to escape)");
                    i++;
                    if (text[i] != '\n') word.Append(text[i]);
                    break;
                default:
                    word.Append(c);
                    break;
            }
        }
        if (inWord) words.Add(word.ToString());
        return words;
    }
}
