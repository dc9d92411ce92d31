using BioForge.Chem;
using BioForge.Models.Llama;
using BioForge.Tokenizers;

namespace BioForge.Generation;

/// <summary>A sampled molecule: its SMILES as sampled, the canonical SMILES when RDKit parses it, its log-likelihood.</summary>
public sealed record GeneratedMolecule(string Smiles, string? Canonical, bool Finished, double LogLikelihood)
{
    public bool Valid => Canonical is not null;
}

/// <summary>
/// De novo molecules from a SMILES language model: batched sampling with a key/value cache, decoding through the
/// model's vocabulary, validity and canonical form from RDKit.
/// </summary>
public sealed class SmilesGenerator
{
    private readonly LlamaCheckpoint model;
    private readonly SmilesVocabulary vocabulary;

    public SmilesGenerator(LlamaCheckpoint model)
    {
        this.model = model;
        vocabulary = model.Vocabulary ?? throw new BioForgeException($"the model has no {SmilesVocabulary.FileName}: it is not a SMILES language model");
        Grammar = new SmilesGrammar(vocabulary);
    }

    /// <summary>SMILES syntax over the model's vocabulary, for <see cref="SamplingOptions.Grammar"/>.</summary>
    public SmilesGrammar Grammar { get; }

    /// <summary>
    /// Samples <paramref name="count"/> molecules in batches of <paramref name="batchSize"/>. With
    /// <paramref name="validOnly"/>, sampling continues until <paramref name="count"/> valid molecules were found (at
    /// most <paramref name="maxAttemptsFactor"/> × count samples) and only those are returned. Reproducible for a seed
    /// and batch size (the draws are made on the host, so on any device up to floating-point differences in the model).
    /// </summary>
    public IReadOnlyList<GeneratedMolecule> Generate(int count, SamplingOptions options, ulong seed, int batchSize, bool validOnly,
        IProgress<int>? progress = null, int maxAttemptsFactor = 100)
    {
        if (count < 1) throw new BioForgeException($"--n must be positive (got {count})");
        if (batchSize < 1) throw new BioForgeException($"--batch must be positive (got {batchSize})");
        using var generator = Sampling.CreateGenerator(seed);
        var result = new List<GeneratedMolecule>(count);
        long attempts = 0, limit = (long)count * maxAttemptsFactor;
        while (result.Count < count)
        {
            if (validOnly && attempts >= limit)
                throw new BioForgeException($"only {result.Count} of {count} requested molecules were valid after {attempts} samples; the model is not trained well enough for --valid-only");
            int n = Math.Min(batchSize, validOnly ? batchSize : count - result.Count);
            attempts += n;
            foreach (var sample in Sampling.Sample(model.Model, n, options, generator))
            {
                var molecule = Describe(sample);
                if (validOnly && !molecule.Valid) continue;
                if (result.Count == count) break;
                result.Add(molecule);
                progress?.Report(1);
            }
        }
        return result;
    }

    private GeneratedMolecule Describe(SampledSequence sample)
    {
        string smiles = vocabulary.DecodeRaw(sample.Tokens);
        string? canonical = null;
        if (smiles.Length > 0 && Molecule.TryFromSmiles(smiles, out var molecule, out _))
            using (molecule) canonical = molecule!.ToSmiles();
        return new GeneratedMolecule(smiles, canonical, sample.Finished, sample.LogLikelihood);
    }
}
