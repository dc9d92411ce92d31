using System.Diagnostics;
using BioForge.Generation;
using BioForge.IO;
using BioForge.Models.Llama;

namespace BioForge.Cli;

/// <summary><c>bioforge generate</c> with a protein language model: FASTA records <c>gen-1</c>, <c>gen-2</c>, ….</summary>
internal static class ProteinSamples
{
    public static int Run(TextWriter output, LlamaCheckpoint checkpoint, int n, SamplingOptions sampling, ulong seed, int batch, string prompt, string target)
    {
        var generator = new ProteinGenerator(checkpoint);
        var clock = Stopwatch.StartNew();
        var samples = ProgressDisplay.Run("proteins", n, progress => generator.Generate(n, sampling, seed, batch, progress, prompt));
        double seconds = clock.Elapsed.TotalSeconds;
        AtomicFile.WriteText(target, Fasta(samples));
        int finished = samples.Count(s => s.Finished);
        output.WriteLine($"{samples.Count} proteins -> {target} in {seconds:F1} s ({samples.Count / Math.Max(seconds, 1e-9):F1} proteins/s); "
            + $"mean length {samples.Average(s => s.Text.Length):F0}; {100.0 * finished / samples.Count:F1}% ended with <eos>, the rest at --max-length");
        return 0;
    }

    /// <summary>One record per sample, the sequence on one line; the header says whether it ended and its log-likelihood.</summary>
    public static string Fasta(IReadOnlyList<GeneratedText> samples) =>
        string.Concat(samples.Select((s, i) => FormattableString.Invariant(
            $">gen-{i + 1} length={s.Text.Length} finished={(s.Finished ? "yes" : "no")} log_likelihood={s.LogLikelihood:F3}\n{s.Text}\n")));
}
