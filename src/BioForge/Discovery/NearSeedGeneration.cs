using BioForge.Generation;
using BioForge.Models.Llama;
using BioForge.Runtime;
using static TorchSharp.torch;

namespace BioForge.Discovery;

/// <summary>What a near-seed search asks for (MolMIM's <c>/generate</c> fields, checked by the caller).</summary>
/// <param name="Seed">The seed molecule's canonical SMILES (the neutral parent of a salt).</param>
/// <param name="Property"><c>QED</c> or <c>plogP</c>.</param>
/// <param name="Learn">Reinforcement learning (MolMIM's <c>CMA-ES</c>); false samples the prior without learning.</param>
/// <param name="Particles">Molecules sampled a step.</param>
/// <param name="Iterations">Steps (or, without learning, batches).</param>
/// <param name="Molecules">Molecules in the answer, at most.</param>
public sealed record NearSeedRequest(string Seed, string Property, bool Minimize, double MinSimilarity, int Particles, int Iterations, bool Learn,
    int Molecules, ulong RandomSeed);

/// <summary>A molecule found near the seed: its property (QED or penalized logP) and its Tanimoto similarity to the seed.</summary>
public sealed record NearSeedMolecule(string Smiles, double Property, double Similarity);

/// <summary>
/// Molecules near a seed with a better QED or penalized logP: MolMIM's guided generation, which searches a latent
/// space with CMA-ES. BioForge's SMILES model has no encoder, so the search is the optimizer's instead — the default
/// Augmented Hill-Climb with genetic children, its memory started from the seed (inception) so the first step
/// already breeds its analogues — rewarded by the property and by similarity to the seed (a sigmoid centred near
/// <see cref="NearSeedRequest.MinSimilarity"/>), in memory: nothing is written to disk.
/// </summary>
public static class NearSeedGeneration
{
    /// <summary>Tokens of the molecules the search samples and breeds, the seed's among them.</summary>
    private const int MaxTokens = 100;

    /// <summary>The longest SMILES, in tokens, the search writes with this prior (the seed must fit too).</summary>
    public static int TokenLimit(LlamaCheckpoint prior) => Math.Min(MaxTokens, prior.Config.MaxPositionEmbeddings - 1);

    /// <summary>The answer's molecules — those at <see cref="NearSeedRequest.MinSimilarity"/> or closer first, by the
    /// objective, then the nearest misses — and how many distinct molecules other than the seed the search scored.</summary>
    public static (IReadOnlyList<NearSeedMolecule> Molecules, int Scored) Run(NearSeedRequest request, LlamaCheckpoint prior, string priorDirectory,
        CancellationToken cancellation = default)
    {
        Check(request);
        var config = Config(request, priorDirectory, TokenLimit(prior));
        var scored = request.Learn ? Optimize(config, prior, cancellation) : Sample(config, request, prior, cancellation);
        return Rank(scored, request);
    }

    /// <summary>The request's ranges (the server names its own fields before it gets here).</summary>
    private static void Check(NearSeedRequest r)
    {
        if (r.Property is not ("QED" or "plogP")) throw new BioForgeException($"near-seed search: the property must be QED or plogP (got '{r.Property}')");
        if (!(r.MinSimilarity is >= 0 and <= 1)) throw new BioForgeException($"near-seed search: the minimum similarity must be 0–1 (got {r.MinSimilarity})");
        if (r.Particles < 2 || r.Iterations < 1 || r.Molecules < 1)
            throw new BioForgeException($"near-seed search: at least 2 particles, 1 iteration and 1 molecule (got {r.Particles}, {r.Iterations}, {r.Molecules})");
    }

    /// <summary>A scored molecule of the search: its objective (what the search maximized), property and similarity.</summary>
    internal sealed record Candidate(string Smiles, double Objective, double Property, double Similarity);

    /// <summary>Distinct molecules other than the seed: those at the minimum similarity or closer first, by the objective,
    /// then the nearest misses, as many as asked for; and how many distinct ones there were.</summary>
    internal static (IReadOnlyList<NearSeedMolecule> Molecules, int Scored) Rank(IEnumerable<Candidate> scored, NearSeedRequest request)
    {
        var distinct = scored.Where(m => m.Smiles != request.Seed).GroupBy(m => m.Smiles).Select(g => g.First()).ToList();
        return ([.. distinct.OrderByDescending(m => m.Similarity >= request.MinSimilarity).ThenByDescending(m => m.Objective).ThenBy(m => m.Smiles, StringComparer.Ordinal)
            .Take(request.Molecules).Select(m => new NearSeedMolecule(m.Smiles, Math.Round(m.Property, 4), Math.Round(m.Similarity, 4)))], distinct.Count);
    }

    /// <summary>The optimizer's run for a request: the property and the similarity to the seed, their geometric mean.</summary>
    private static OptimizeConfig Config(NearSeedRequest r, string priorDirectory, int maxTokens)
    {
        var property = r.Property == "QED"
            ? new ComponentSettings { Type = "qed", Name = "QED", Transform = r.Minimize ? new TransformSettings { Kind = "reverse_sigmoid", Low = 0, High = 1 } : new TransformSettings() }
            : new ComponentSettings { Type = "plogp", Name = "plogP", Transform = new TransformSettings { Kind = r.Minimize ? "reverse_sigmoid" : "sigmoid", Low = -6, High = 6 } };
        var similarity = new ComponentSettings
        {
            Type = "similarity",
            Name = "similarity",
            Smiles = [r.Seed],
            Transform = new TransformSettings { Kind = "sigmoid", Low = Math.Max(0, r.MinSimilarity - 0.3), High = Math.Min(1, r.MinSimilarity + 0.1) },
        };
        return new OptimizeConfig
        {
            Seed = r.RandomSeed,
            Prior = new OptimizeConfig.PriorSection { Model = priorDirectory },
            Sampling = new OptimizeConfig.SamplingSection { BatchSize = r.Particles, MaxLength = maxTokens },
            // Short searches: a faster rate and a smaller σ and memory than a long run's defaults; children half the
            // batch, as in bench pmo.
            Learning = new OptimizeConfig.LearningSection
            {
                Lr = 5e-4,
                Sigma = 120,
                ReplaySize = 50,
                ReplaySamples = 5,
                GeneticOffspring = Math.Max(1, r.Particles / 2),
                Inception = [r.Seed],
            },
            DiversityFilter = new OptimizeConfig.DiversityFilterSection { Kind = "none" },
            Output = new OptimizeConfig.OutputSection { CheckpointEvery = int.MaxValue, Ranked = 10_000 },
            Stages =
            [
                new OptimizeConfig.StageSection
                {
                    Name = "generate",
                    MaxSteps = r.Learn ? r.Iterations : 1,
                    MinSteps = 1,
                    Aggregate = "geometric",
                    Components = [property, similarity],
                },
            ],
        };
    }

    /// <summary>The optimizer in memory, its agent a float32 copy of the prior (and the prior itself in float32 for the augmented likelihood).</summary>
    private static List<Candidate> Optimize(OptimizeConfig config, LlamaCheckpoint served, CancellationToken cancellation)
    {
        using var float32 = served.Model.parameters().First().dtype == ScalarType.Float32 ? null : served.Copy(ScalarType.Float32);
        var prior = float32 ?? served;
        using var session = new OptimizationSession(config, prior, prior.Copy(ScalarType.Float32));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!session.Finished)
        {
            cancellation.ThrowIfCancellationRequested();
            session.Step(clock.Elapsed);
        }
        return [.. session.Ranked(config.Output.Ranked).Select(m => new Candidate(m.Canonical, m.Score, m.Raw[0], m.Raw[1]))];
    }

    /// <summary>Without learning: <c>iterations</c> batches of <c>particles</c> molecules from the prior, scored.</summary>
    private static List<Candidate> Sample(OptimizeConfig config, NearSeedRequest request, LlamaCheckpoint prior, CancellationToken cancellation)
    {
        using var scoring = new ScoringFunction(config.Stages[0].Components, config.Stages[0].Aggregate, prior.Device);
        var generator = new SmilesGenerator(prior);
        var result = new List<Candidate>();
        for (int i = 0; i < request.Iterations; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            var batch = generator.Generate(request.Particles, new SamplingOptions { MaxNewTokens = config.Sampling.MaxLength, Grammar = config.Sampling.Grammar == "smiles" ? generator.Grammar : null },
                StatelessRandom.Hash(config.Seed, i, 0x6E6F6E65), request.Particles, validOnly: false);
            var valid = batch.Where(m => m.Valid).Select(m => m.Canonical!).Distinct().ToList();
            result.AddRange(scoring.Score(valid).Select(m => new Candidate(m.Canonical!, m.Score, m.Raw[0], m.Raw[1])));
        }
        return result;
    }
}
