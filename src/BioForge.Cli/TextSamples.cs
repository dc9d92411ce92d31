using System.CommandLine;
using System.Diagnostics;
using BioForge.Generation;
using BioForge.IO;
using BioForge.Models.Gpt2;
using BioForge.Runtime;

namespace BioForge.Cli;

/// <summary><c>bioforge generate</c> with a GPT-2 checkpoint: samples decoded by the checkpoint's own tokenizer.</summary>
internal static class TextSamples
{
    /// <summary>
    /// Writes the samples one per line (line breaks inside a sample become spaces), or as FASTA records when
    /// <paramref name="target"/> ends in .fasta / .fa (white space removed: ProtGPT2 breaks its sequences every 60 residues).
    /// </summary>
    /// <param name="checkLength">Refuses a sample length the checkpoint's positions cannot hold after the prompt's tokens (its begin token included).</param>
    public static int Run(TextWriter output, string directory, ComputeOptions compute, int n, SamplingOptions sampling, ulong seed, int batch, string prompt, string target,
        Action<long, int, SamplingOptions> checkLength)
    {
        using var checkpoint = Gpt2Checkpoint.Load(directory, compute.Device, compute.DType);
        var generator = new TextGenerator(checkpoint);
        checkLength(checkpoint.Config.MaxPositions, generator.PromptTokens(prompt), sampling);
        var clock = Stopwatch.StartNew();
        var samples = ProgressDisplay.Run("samples", n, progress => generator.Generate(n, sampling, seed, batch, progress, prompt));
        double seconds = clock.Elapsed.TotalSeconds;
        bool fasta = target.EndsWith(".fasta", StringComparison.OrdinalIgnoreCase) || target.EndsWith(".fa", StringComparison.OrdinalIgnoreCase);
        // FASTA records as the protein decoders write them; a byte-level model's newlines and spaces are no residues.
        AtomicFile.WriteText(target, fasta
            ? ProteinSamples.Fasta([.. samples.Select(s => s with { Text = string.Concat(s.Text.Where(c => !char.IsWhiteSpace(c))) })])
            : string.Concat(samples.Select(s => s.Text.ReplaceLineEndings(" ") + "\n")));
        int finished = samples.Count(s => s.Finished);
        output.WriteLine($"{samples.Count} samples -> {target} in {seconds:F1} s ({samples.Count / Math.Max(seconds, 1e-9):F1} samples/s); "
            + $"{100.0 * finished / samples.Count:F1}% ended with the end token, the rest at --max-length");
        return 0;
    }

    /// <summary>Options that apply to SMILES models only, refused by name when given for another model (<paramref name="what"/>).</summary>
    public static void RefuseSmilesOptions(ParseResult result, Option<bool> validOnly, Option<string> grammar, string what = "a GPT-2 model's byte-level tokens", bool protein = false)
    {
        if (result.GetValue(validOnly)) throw new BioForgeException($"--valid-only applies to SMILES models with a SMILES vocabulary, not to {what}");
        if (result.GetValue(grammar) == "smiles")
            throw new BioForgeException($"--grammar smiles applies to SMILES models with a SMILES vocabulary, not to {what}");
        if (result.GetValue(grammar) == "protein" && !protein)
            throw new BioForgeException($"--grammar protein applies to protein models, not to {what}");
    }
}
