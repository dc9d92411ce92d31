using System.CommandLine;
using System.Diagnostics;
using BioForge.Chem;
using BioForge.Generation;
using BioForge.IO;
using BioForge.Models;
using BioForge.Models.Gpt2;
using BioForge.Models.Llama;
using BioForge.Tokenizers;

namespace BioForge.Cli;

/// <summary><c>bioforge generate</c>: de novo SMILES from a chemical language model, or proteins (FASTA) from a protein one.</summary>
internal static class GenerateCommand
{
    private static readonly string[] FastaExtensions = [".fasta", ".fa", ".faa"];

    /// <summary>How a sample of no tokens before its end is written: the token it was (no SMILES reads it).</summary>
    private const string EmptySample = "<eos>";

    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = Options.Required("--model", "SMILES language model directory (config.json, model.safetensors, vocab.json), a protein one (vocab.txt), or a GPT-2 checkpoint with its tokenizer");
        var count = new Option<int>("--n") { Description = "number of molecules (sequences from a protein model)", Required = true };
        var outPath = Options.Required("--out", "output .smi: one SMILES per line; FASTA (records gen-1, gen-2, …) for a protein model");
        var temperature = new Option<double>("--temperature") { Description = "softmax temperature (< 1: safer, > 1: more diverse; 0: the most probable token)", DefaultValueFactory = _ => 1.0 };
        var topK = Options.Int("--top-k", "sample among the k most probable tokens (0 or -1 = all)", 0);
        var topP = new Option<double>("--top-p") { Description = "nucleus sampling mass (1 = off)", DefaultValueFactory = _ => 1.0 };
        var repetition = new Option<double>("--repetition-penalty")
        {
            Description = "CTRL/Hugging Face repetition penalty on tokens already in the sequence (1 = off; ProtGPT2 samples with 1.2)",
            DefaultValueFactory = _ => 1.0,
        };
        var presence = new Option<double>("--presence-penalty") { Description = "OpenAI's presence penalty, −2 to 2 (0 = off)", DefaultValueFactory = _ => 0.0 };
        var frequency = new Option<double>("--frequency-penalty") { Description = "OpenAI's frequency penalty, −2 to 2 (0 = off)", DefaultValueFactory = _ => 0.0 };
        var seed = new Option<ulong>("--seed") { Description = "random seed", DefaultValueFactory = _ => 0 };
        var batch = Options.Int("--batch", "samples drawn together", 256);
        var maxLength = new Option<int?>("--max-length") { Description = $"maximum tokens per sample (default: {SmilesMaxTokens} for a SMILES or GPT-2 model, a protein model's whole context)" };
        var prompt = new Option<string>("--prompt") { Description = "a start every sample continues: a SMILES start, or residues such as M for a protein model (default: none)", DefaultValueFactory = _ => "" };
        var validOnly = new Option<bool>("--valid-only") { Description = "keep only RDKit-valid molecules, written canonical, until --n are found" };
        var grammar = new Option<string>("--grammar")
        {
            Description = "smiles (a SMILES model's default): decode under SMILES syntax (branches and rings always closed, valences kept, aromatic rings kekulizable; likelihoods renormalised over allowed tokens); "
                + "protein (a protein model's default): residue letters and <eos> only; none: the model's raw distribution",
        };
        grammar.AcceptOnlyFromAmong("smiles", "protein", "none");
        var compute = new ComputeOptionSet();
        var minLength = Options.Int("--min-length", "tokens each sample generates before its end token may be drawn (0 = any time; proteins: a minimum length in residues)", 0);
        var command = new Command("generate", "Sample molecules from a SMILES language model, or proteins from a protein language model") { model, count, outPath, temperature, topK, topP, repetition, presence, frequency, seed, batch, maxLength, minLength, prompt, validOnly, grammar };
        compute.AddTo(command);
        command.SetAction(result => Cli.Guard(error, () =>
        {
            var options = compute.Resolve(result);
            // What every model family samples with; each sets its grammar and length.
            var common = new SamplingOptions
            {
                Temperature = result.GetValue(temperature),
                TopK = result.GetValue(topK),
                TopP = result.GetValue(topP),
                MaxNewTokens = result.GetValue(maxLength) ?? SmilesMaxTokens,
                MinNewTokens = result.GetValue(minLength),
                RepetitionPenalty = result.GetValue(repetition),
                PresencePenalty = result.GetValue(presence),
                FrequencyPenalty = result.GetValue(frequency),
            };
            if (common.FirstProblem() is { } problem)
                throw new BioForgeException($"{problem.Setting switch
                {
                    SamplingSetting.Temperature => "--temperature",
                    SamplingSetting.TopP => "--top-p",
                    SamplingSetting.TopK => "--top-k",
                    SamplingSetting.MaxNewTokens => "--max-length",
                    SamplingSetting.MinNewTokens => "--min-length",
                    SamplingSetting.RepetitionPenalty => "--repetition-penalty",
                    SamplingSetting.PresencePenalty => "--presence-penalty",
                    _ => "--frequency-penalty",
                }} {problem.Problem}");
            // Against the length each model family samples to (its default where --max-length is not given).
            void CheckMinimum(SamplingOptions sampling)
            {
                if (sampling.MinNewTokens > sampling.MaxNewTokens)
                    throw new BioForgeException($"--min-length {sampling.MinNewTokens} is more than the {sampling.MaxNewTokens} tokens a sample may have "
                        + (result.GetValue(maxLength) is null ? "(--max-length's default for this model: raise it)" : $"(--max-length {sampling.MaxNewTokens})"));
            }
            // A length the model could never reach (its begin token and the prompt take positions) is refused when asked for, as
            // the server refuses max_tokens past the prompt's room; the default is cut to the model, as sampling does.
            void CheckLength(long positions, int promptTokens, SamplingOptions sampling)
            {
                long room = positions - promptTokens;
                string held = $"the model takes {positions} positions, {promptTokens} of them for its begin token{(promptTokens > 1 ? " and the prompt" : "")}, so at most {room} tokens follow";
                if (result.GetValue(maxLength) is not null && sampling.MaxNewTokens > room)
                    throw new BioForgeException($"--max-length {sampling.MaxNewTokens}: {held}");
                if (sampling.MinNewTokens > room)
                    throw new BioForgeException($"--min-length {sampling.MinNewTokens}: {held}");
            }
            if (ModelRegistry.Of(result.GetValue(model)!) is Gpt2Family)
            {
                TextSamples.RefuseSmilesOptions(result, validOnly, grammar);
                CheckMinimum(common);
                return TextSamples.Run(output, result.GetValue(model)!, options, result.GetValue(count), common, result.GetValue(seed), result.GetValue(batch), result.GetValue(prompt)!,
                    result.GetValue(outPath)!, CheckLength);
            }
            using var checkpoint = LlamaCheckpoint.Load(result.GetValue(model)!, options.Device, options.DType);
            CheckLength(checkpoint.Config.MaxPositionEmbeddings, 1, common);
            if (!checkpoint.IsProtein && checkpoint.Vocabulary is null)
                throw new BioForgeException($"--model {result.GetValue(model)}: no {SmilesVocabulary.FileName}, {LlamaCheckpoint.ResidueFileName} or BioForge {SmilesVocabulary.HuggingFaceTokenizerFile}: "
                    + "not a SMILES or protein language model BioForge can tokenize for (a GPT-2 checkpoint brings its own byte-level tokenizer)");
            // The file's name must not say the other format (a .fasta of SMILES lines, a .smi of FASTA records).
            string written = result.GetValue(outPath)!;
            if (checkpoint.IsProtein ? written.EndsWith(".smi", StringComparison.OrdinalIgnoreCase) : FastaExtensions.Any(e => written.EndsWith(e, StringComparison.OrdinalIgnoreCase)))
                throw new BioForgeException($"--out {written}: a {(checkpoint.IsProtein ? "protein model writes FASTA (name a .fasta file)" : "SMILES model writes one SMILES a line (name a .smi file)")}");
            if (checkpoint.IsProtein)
            {
                TextSamples.RefuseSmilesOptions(result, validOnly, grammar, "a protein model's amino-acid vocabulary", protein: true);
                var protein = common with
                {
                    // Residue letters and <eos> only unless --grammar none asks for the raw distribution.
                    Grammar = result.GetValue(grammar) == "none" ? null : new ProteinGrammar(checkpoint.Residues!),
                    // A protein is longer than a molecule: unless asked otherwise, sample up to the model's whole context.
                    MaxNewTokens = result.GetValue(maxLength) ?? checkpoint.Config.MaxPositionEmbeddings - 1,
                };
                CheckMinimum(protein);
                CheckLength(checkpoint.Config.MaxPositionEmbeddings, OfPrompt(() => checkpoint.EncodeProteinPrompt(result.GetValue(prompt)!)).Length, protein);
                return ProteinSamples.Run(output, checkpoint, result.GetValue(count), protein, result.GetValue(seed), result.GetValue(batch), result.GetValue(prompt)!, result.GetValue(outPath)!);
            }
            bool onlyValid = result.GetValue(validOnly);
            // Without --valid-only RDKit only reports validity: a machine without it (a bare GPU node) still samples.
            string? noRdkit = onlyValid ? null : Molecule.Unavailable();
            var generator = new SmilesGenerator(checkpoint, checkMolecules: noRdkit is null);
            if (result.GetValue(grammar) == "protein") throw new BioForgeException($"--grammar protein applies to protein models, not to the SMILES model {result.GetValue(model)}");
            var sampling = common with { Grammar = result.GetValue(grammar) is null or "smiles" ? generator.Grammar : null };
            CheckMinimum(sampling);
            int[] promptIds = OfPrompt(() => generator.EncodePrompt(result.GetValue(prompt)!)); // a token outside the vocabulary: no grammar helps
            CheckLength(checkpoint.Config.MaxPositionEmbeddings, promptIds.Length, sampling);
            if (sampling.Grammar is { } smiles)
            {
                try
                {
                    smiles.StartAfter(promptIds.AsSpan(1));
                }
                catch (BioForgeException e)
                {
                    throw new BioForgeException($"--prompt: {e.Message}; --grammar none continues it anyway");
                }
                if (sampling.MinNewTokens > 0 && smiles.ForcedTokens(promptIds.AsSpan(1), checkpoint.Config.EosTokenId) is { } forced && forced < sampling.MinNewTokens)
                    throw new BioForgeException($"--min-length {sampling.MinNewTokens}: after --prompt {result.GetValue(prompt)} the {smiles.Name} grammar allows "
                        + $"{(forced == 0 ? "only the end" : $"{forced} more token(s), then only the end")}; lower --min-length, or --grammar none");
            }
            int n = result.GetValue(count);
            var clock = Stopwatch.StartNew();
            var molecules = ProgressDisplay.Run("molecules", n, progress =>
                generator.Generate(n, sampling, result.GetValue(seed), result.GetValue(batch), onlyValid, progress, prompt: result.GetValue(prompt)!));
            double seconds = clock.Elapsed.TotalSeconds;
            string target = result.GetValue(outPath)!;
            // A sample that is only the end token is written as that token, not as a blank line readers skip: a line per
            // sample, as MOSES counts them (an empty sample is an invalid one).
            AtomicFile.WriteText(target, string.Concat(molecules.Select(m => (onlyValid ? m.Canonical : m.Smiles.Length == 0 ? EmptySample : m.Smiles) + "\n")));
            int valid = molecules.Count(m => m.Valid);
            int cut = molecules.Count(m => !m.Finished);
            int unique = molecules.Where(m => m.Valid).Select(m => m.Canonical).Distinct().Count();
            output.WriteLine($"{molecules.Count} molecules -> {target} in {seconds:F1} s ({molecules.Count / Math.Max(seconds, 1e-9):F0} molecules/s); "
                + (onlyValid ? $"{molecules[^1].Index + 1} samples for {molecules.Count} valid, unique {100.0 * unique / valid:F1}%"
                    : noRdkit is null ? $"valid {100.0 * valid / molecules.Count:F1}%" + (valid > 0 ? $", unique among valid {100.0 * unique / valid:F1}%" : "")
                    : $"validity not checked: {noRdkit}")
                // A sample cut at the length limit may still parse (a prefix of a molecule is often one): counted, but named.
                + (cut > 0 ? $"; {cut} cut at --max-length {sampling.MaxNewTokens} (unfinished)" : ""));
            return 0;
        }));
        return command;
    }

    private const int SmilesMaxTokens = 128;

    /// <summary>The prompt's token ids; a prompt the model cannot read is an error naming the option.</summary>
    private static int[] OfPrompt(Func<int[]> encode)
    {
        try
        {
            return encode();
        }
        catch (BioForgeException e)
        {
            throw new BioForgeException($"--prompt: {e.Message}");
        }
    }
}
