using BioForge.Chem;
using BioForge.Models.Llama;
using BioForge.Tokenizers;

namespace BioForge.Generation;

/// <summary>
/// A sampled molecule: its SMILES as sampled, the canonical SMILES when RDKit parses it (null when invalid or when the
/// generator does not check molecules), its log-likelihood.
/// </summary>
public sealed record GeneratedMolecule(string Smiles, string? Canonical, bool Finished, double LogLikelihood)
{
    public bool Valid => Canonical is not null;

    /// <summary>The sample's index i (sequence (seed, i) of the sampler): with valid-only sampling the last one's index + 1
    /// is the number of samples it took.</summary>
    public int Index { get; init; }
}

/// <summary>
/// De novo molecules from a SMILES language model: sampling through the <see cref="DecodeScheduler"/>, decoding through
/// the model's vocabulary, validity and canonical form from RDKit.
/// </summary>
public sealed class SmilesGenerator
{
    private readonly LlamaCheckpoint model;
    private readonly SmilesVocabulary vocabulary;

    private readonly bool checkMolecules;

    /// <param name="checkMolecules">
    /// Parse each sample with RDKit for its validity and canonical form. Off, nothing needs RDKit (a GPU node without
    /// it can still sample) and every <see cref="GeneratedMolecule.Canonical"/> is null.
    /// </param>
    public SmilesGenerator(LlamaCheckpoint model, bool checkMolecules = true)
    {
        this.model = model;
        this.checkMolecules = checkMolecules;
        vocabulary = model.Vocabulary ?? throw new BioForgeException($"the model has no {SmilesVocabulary.FileName}: it is not a SMILES language model");
        Grammar = new SmilesGrammar(vocabulary);
    }

    /// <summary>SMILES syntax over the model's vocabulary, for <see cref="SamplingOptions.Grammar"/>.</summary>
    public SmilesGrammar Grammar { get; }

    /// <summary>Samples a valid-only draw may take per molecule asked for (<c>generate --valid-only</c> and the server's
    /// <c>valid_only</c> alike) before it gives up on the model.</summary>
    public const int ValidOnlyAttempts = 100;

    /// <summary>
    /// Samples <paramref name="count"/> molecules, <paramref name="batchSize"/> sequences decoded at once (continuous
    /// batching: a finished sequence's slot goes to the next). Molecule i is sequence (seed, i) of
    /// <see cref="SequenceSampler"/>, so the result depends on the seed and options only, not on the batch size, and
    /// equals what the server's <c>/v1/completions</c> answers for the same seed. With <paramref name="validOnly"/>, the
    /// first <paramref name="count"/> valid molecules that ended (not cut at the length limit) in sequence order (at
    /// most <see cref="ValidOnlyAttempts"/> × count samples; count at temperature 0, whose samples are all the same). <paramref name="prompt"/> is a SMILES start every molecule continues.
    /// </summary>
    public IReadOnlyList<GeneratedMolecule> Generate(int count, SamplingOptions options, ulong seed, int batchSize, bool validOnly,
        IProgress<int>? progress = null, string prompt = "", CancellationToken cancellation = default)
    {
        if (validOnly && !checkMolecules) throw new ArgumentException("valid-only sampling needs a generator that checks molecules", nameof(validOnly));
        var promptIds = EncodePrompt(prompt);
        if (count < 1) throw new BioForgeException($"--n must be positive (got {count})");
        // At temperature 0 every sample is the one most probable sequence: a second attempt repeats the first.
        bool greedy = options.Temperature == 0;
        long limit = validOnly ? (long)count * (greedy ? 1 : ValidOnlyAttempts) : count;
        // Slots for the sequences in flight at most: all of them, or for valid-only what the look-ahead below lets out.
        using var scheduler = TextSampling.Scheduler(DecoderNetwork.Of(model.Model), promptIds, model.Config.MaxPositionEmbeddings,
            (int)Math.Min(Math.Min(limit, 2L * count + 16), int.MaxValue), options, batchSize);
        var samples = new List<SampledSequence?>();
        int next = 0, scanned = 0, cut = 0;
        var result = new List<GeneratedMolecule>(Math.Min(count, 1 << 16)); // grown as they come: --n may be far more than memory holds
        while (result.Count < count)
        {
            cancellation.ThrowIfCancellationRequested();
            // Keep the slots full; sequences are taken in index order, so the answer does not depend on timing. Not many
            // more than are still wanted, though: ten valid molecules need not cost a batch of 256.
            int ahead = (int)Math.Min(2L * batchSize, 2L * (count - result.Count) + 16); // in long: 2 × a count past 2^30 overflowed
            while (next < limit && next - scanned < ahead && scheduler.Waiting < scheduler.QueueCapacity)
            {
                int index = next++;
                samples.Add(null);
                var job = SequenceJob.Collecting(promptIds, options, seed, index, (tokens, reason, logLikelihood) =>
                    samples[index] = new SampledSequence([.. tokens.Select(t => (long)t)], reason == FinishReason.Stop, logLikelihood));
                if (!scheduler.TrySubmit([job])) throw new InvalidOperationException("the generator's own queue refused a sequence");
            }
            if (!scheduler.Busy)
                throw new BioForgeException($"only {result.Count} of {count} requested molecules were valid after {next} samples"
                    + (result.Count == 0 && prompt.Length > 0 ? $"; the prompt '{prompt}' may start no valid molecule (a ring it closes cannot be aromatic, say)"
                            + (2 * cut > next ? $", or {cut} cut at the length limit ({options.MaxNewTokens} tokens) ask for a larger --max-length" : "")
                        : 2 * cut > next ? $"; {cut} were cut at the length limit ({options.MaxNewTokens} tokens): raise --max-length"
                        : greedy ? "; at temperature 0 every sample is the same most probable sequence, and it is not a valid molecule: sample with a temperature above 0"
                        : "; the model is not trained well enough for --valid-only"));
            scheduler.Step();
            for (; scanned < samples.Count && samples[scanned] is { } sample && result.Count < count; scanned++)
            {
                var molecule = Describe(prompt, sample) with { Index = scanned };
                samples[scanned] = null;
                // A sample cut at the length limit is not the molecule the model was writing, even when RDKit reads it.
                if (!molecule.Finished) cut++;
                if (validOnly && !(molecule.Valid && molecule.Finished)) continue;
                result.Add(molecule);
                progress?.Report(1);
            }
        }
        return result;
    }

    /// <summary>Begin token and the prompt's tokens; a prompt with a token outside the vocabulary is refused.</summary>
    public int[] EncodePrompt(string prompt)
    {
        var ids = vocabulary.Encode(prompt);
        if (ids.Contains(SmilesVocabulary.UnkId)) throw new BioForgeException($"prompt '{prompt}' holds a token outside the model's vocabulary: {vocabulary.FirstUnknown(prompt)}");
        return ids[..^1];
    }

    private GeneratedMolecule Describe(string prompt, SampledSequence sample)
    {
        string smiles = prompt + vocabulary.DecodeRaw(sample.Tokens);
        string? canonical = null;
        if (checkMolecules && smiles.Length > 0 && Molecule.TryFromSmiles(smiles, out var molecule, out _))
            using (molecule) canonical = molecule!.ToSmiles();
        return new GeneratedMolecule(smiles, canonical, sample.Finished, sample.LogLikelihood);
    }
}
