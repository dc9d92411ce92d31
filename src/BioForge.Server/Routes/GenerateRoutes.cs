using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using BioForge.Chem;
using BioForge.Discovery;
using BioForge.Generation;
using BioForge.Models.Llama;
using BioForge.Runtime;
using BioForge.Tokenizers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using static TorchSharp.torch;

namespace BioForge.Server.Routes;

/// <summary>
/// MolMIM's <c>POST /generate</c>: molecules near a seed with a better QED or penalized logP. MolMIM searches its
/// latent space with CMA-ES; BioForge's SMILES model has no encoder, so the same request runs BioForge's
/// REINVENT-style optimizer instead: <c>particles</c> molecules per step for <c>iterations</c> steps, rewarded by the
/// property and by Tanimoto similarity to the seed (a sigmoid centred on <c>min_similarity</c>). <c>algorithm: none</c>
/// samples as many molecules from the prior without learning, a batch of <c>particles</c> at a time. The answer has MolMIM's shape: <c>molecules</c> is a
/// JSON-encoded string of <c>{sample, score}</c> objects (score = the property), with <c>similarity</c> added. A seed
/// given as a salt or a charged form starts from its neutral parent, as screening reads molecules.
/// </summary>
internal static class GenerateRoutes
{
    public sealed class GenerateRequest
    {
        /// <summary>The seed molecule (SMILES).</summary>
        [Required, Example("\"CC(=O)Oc1ccccc1C(=O)O\"")]
        public string? Smi { get; set; }

        [Example("2")]
        public int NumMolecules { get; set; } = 10;

        /// <summary><c>CMA-ES</c> (here: reinforcement learning; see the class summary) or <c>none</c>.</summary>
        [Example("\"none\"")]
        public string Algorithm { get; set; } = "CMA-ES";

        /// <summary><c>QED</c> or <c>plogP</c>.</summary>
        [Example("\"QED\"")]
        public string PropertyName { get; set; } = "QED";

        [Example("false")]
        public bool Minimize { get; set; }

        [Example("0.3")]
        public double MinSimilarity { get; set; } = 0.7;

        [Example("4")]
        public int Particles { get; set; } = 30;

        [Example("1")]
        public int Iterations { get; set; } = 10;

        /// <summary>MolMIM's latent-space radius; accepted for compatibility, without effect (there is no latent space here).</summary>
        [Example("1.0")]
        public double ScaledRadius { get; set; } = 1.0;

        /// <summary>Which SMILES model to start from (default: the one served).</summary>
        [ServedModelExample(ModelKind.Molecule)]
        public string? Model { get; set; }

        /// <summary>Any 64-bit signed integer, as <c>/v1/completions</c> takes it (a negative seed is the run's same 64 bits);
        /// absent, a fresh one (each call another search, as MolMIM's are), sent back in the answer to repeat it.</summary>
        [Example("1")]
        public long? Seed { get; set; }
    }

    public sealed record GeneratedMolecule(string Sample, double Score, double Similarity);

    public sealed record GenerateResponse(string Molecules, string ScoreType, int Iterations, int Sampled, long Seed);

    private const int MaxParticles = 256, MaxIterations = 100, MaxMolecules = 100;

    public static void Map(IEndpointRouteBuilder app, ServerState state)
    {
        app.MapPost("/generate", async (HttpContext context) =>
        {
            var request = await Json.ReadAsync<GenerateRequest>(context.Request);
            var (config, seed, prior) = Validate(request, state);
            var (molecules, scored) = await state.WithDeadline(context, token => state.LongWork.RunAsync(() => Run(config, seed, request, prior, token), token,
                new WorkSize("generate", (double)request.Particles * request.Iterations)), state.Options.JobTimeout);
            string encoded = JsonSerializer.Serialize(molecules, Json.Options);
            return Results.Json(new GenerateResponse(encoded, request.PropertyName, request.Iterations, scored, unchecked((long)config.Seed)), Json.Options);
        })
        .WithTags("molecule").WithSummary("MolMIM-compatible guided generation around a seed molecule")
        .Accepts<GenerateRequest>("application/json").Produces<GenerateResponse>().ProducesErrors(400, 404, 422, 501, 503, 504)
        .Serves(model => model.Kind == ModelKind.Molecule);
    }

    /// <summary>Tokens of the molecules the optimizer samples and breeds, the seed's among them.</summary>
    private const int SeedMaxTokens = 100;

    /// <summary>The optimizer's run for a valid request, and the seed's canonical SMILES; 4xx naming the field otherwise.</summary>
    private static (OptimizeConfig Config, string Seed, LlamaCheckpoint Prior) Validate(GenerateRequest r, ServerState state)
    {
        if (string.IsNullOrWhiteSpace(r.Smi)) throw ApiError.BadRequest("smi is required: the seed molecule as SMILES", "smi");
        Smiles.CheckLength(r.Smi, "smi", state);
        if (!Molecule.TryFromSmiles(r.Smi, out var seed, out string? error)) throw ApiError.Invalid($"smi: '{r.Smi}' is not a valid SMILES: {error}", "smi");
        // A salt or a charged form is read as screening reads it (the neutral parent): the model writes parents, and a
        // counter-ion would only dilute the similarity that keeps the answers near the seed.
        string canonical;
        using (seed)
        using (var standardized = seed!.Standardized())
            canonical = (standardized ?? seed).ToSmiles();
        if (r.NumMolecules is < 1 or > MaxMolecules) throw ApiError.Invalid($"num_molecules must be 1–{MaxMolecules} (got {r.NumMolecules})", "num_molecules");
        if (r.Algorithm is not ("CMA-ES" or "none")) throw ApiError.Invalid($"algorithm must be CMA-ES or none (got '{r.Algorithm}')", "algorithm");
        if (r.PropertyName is not ("QED" or "plogP")) throw ApiError.Invalid($"property_name must be QED or plogP (got '{r.PropertyName}')", "property_name");
        if (r.MinSimilarity is < 0 or > 1) throw ApiError.Invalid($"min_similarity must be 0–1 (got {r.MinSimilarity})", "min_similarity");
        if (r.Particles is < 2 or > MaxParticles) throw ApiError.Invalid($"particles must be 2–{MaxParticles} (got {r.Particles})", "particles");
        if (r.Iterations is < 1 or > MaxIterations) throw ApiError.Invalid($"iterations must be 1–{MaxIterations} (got {r.Iterations})", "iterations");
        if (r.ScaledRadius <= 0) throw ApiError.Invalid($"scaled_radius must be positive (got {r.ScaledRadius})", "scaled_radius");
        var prior = r.Model is null ? state.Models.Prior ?? throw ApiError.Invalid("no SMILES model is served (start the server with --models DIR of a SMILES Llama checkpoint)", "model")
            : state.Models.Language(r.Model, "model", ModelKind.Molecule);
        // The seed starts the optimizer's memory in the prior's tokens: one it cannot spell is the request's fault, named so
        // (sampling without the optimizer only compares molecules with it).
        int maxTokens = Math.Min(SeedMaxTokens, prior.Llama!.Config.MaxPositionEmbeddings - 1);
        if (r.Algorithm == "CMA-ES" && prior.Llama.Vocabulary is { } vocabulary && vocabulary.Encode(canonical) is var ids && (ids.Contains(SmilesVocabulary.UnkId) || ids.Length - 2 > maxTokens))
            throw ApiError.Invalid($"smi: '{canonical}' cannot be written in the model's SMILES tokens within {maxTokens} tokens"
                + (ids.Contains(SmilesVocabulary.UnkId) ? $" (it holds a token the model never saw: {vocabulary.FirstUnknown(canonical)})" : ""), "smi");

        var property = r.PropertyName == "QED"
            ? new ComponentSettings { Type = "qed", Name = "QED", Transform = r.Minimize ? new TransformSettings { Kind = "reverse_sigmoid", Low = 0, High = 1 } : new TransformSettings() }
            : new ComponentSettings { Type = "plogp", Name = "plogP", Transform = new TransformSettings { Kind = r.Minimize ? "reverse_sigmoid" : "sigmoid", Low = -6, High = 6 } };
        double low = Math.Max(0, r.MinSimilarity - 0.3);
        var similarity = new ComponentSettings
        {
            Type = "similarity",
            Name = "similarity",
            Smiles = [canonical],
            Transform = new TransformSettings { Kind = "sigmoid", Low = low, High = Math.Min(1, r.MinSimilarity + 0.1) },
        };
        var config = new OptimizeConfig
        {
            Seed = unchecked((ulong)(r.Seed ?? RequestSeed.Fresh())),
            Prior = new OptimizeConfig.PriorSection { Model = prior.Directory },
            Sampling = new OptimizeConfig.SamplingSection { BatchSize = r.Particles, MaxLength = maxTokens },
            // The default optimizer (Augmented Hill-Climb with genetic exploration), its children half the batch as in bench
            // pmo; the seed molecule starts the replay memory (inception), so the first step already breeds its analogues.
            Learning = new OptimizeConfig.LearningSection
            {
                Lr = 5e-4,
                Sigma = 120,
                ReplaySize = 50,
                ReplaySamples = 5,
                GeneticOffspring = Math.Max(1, r.Particles / 2),
                Inception = [canonical],
            },
            DiversityFilter = new OptimizeConfig.DiversityFilterSection { Kind = "none" },
            Output = new OptimizeConfig.OutputSection { CheckpointEvery = int.MaxValue, Ranked = 10_000 },
            Stages =
            [
                new OptimizeConfig.StageSection
                {
                    Name = "generate",
                    MaxSteps = r.Algorithm == "none" ? 1 : r.Iterations,
                    MinSteps = 1,
                    Aggregate = "geometric",
                    Components = [property, similarity],
                },
            ],
        };
        return (config, canonical, prior.Llama!);
    }

    /// <summary>The answer's molecules, and how many distinct molecules other than the seed the search scored (sampled, and bred by the optimizer).</summary>
    private static (List<GeneratedMolecule> Molecules, int Scored) Run(OptimizeConfig config, string seed, GenerateRequest request, LlamaCheckpoint prior, CancellationToken cancellation)
    {
        var scored = request.Algorithm == "none" ? Sample(config, request, prior, cancellation) : Optimize(config, prior, cancellation);
        var distinct = scored.Where(m => m.Smiles != seed).GroupBy(m => m.Smiles).Select(g => g.First()).ToList();
        // Molecules that meet min_similarity first (by the objective), then the nearest misses: MolMIM's constraint where it can be met.
        return ([.. distinct.OrderByDescending(m => m.Similarity >= request.MinSimilarity).ThenByDescending(m => m.Objective).ThenBy(m => m.Smiles, StringComparer.Ordinal)
            .Take(request.NumMolecules).Select(m => new GeneratedMolecule(m.Smiles, Math.Round(m.Property, 4), Math.Round(m.Similarity, 4)))], distinct.Count);
    }

    private sealed record Candidate(string Smiles, double Objective, double Property, double Similarity);

    /// <summary>
    /// <c>CMA-ES</c>: the reinforcement-learning optimizer in memory, its agent a float32 copy of the served model (and
    /// the prior itself in float32 for the augmented likelihood); nothing is written to disk.
    /// </summary>
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

    /// <summary><c>none</c>: <c>iterations</c> batches of <c>particles</c> molecules from the prior, scored, no learning.</summary>
    private static List<Candidate> Sample(OptimizeConfig config, GenerateRequest request, LlamaCheckpoint prior, CancellationToken cancellation)
    {
        using var scoring = new ScoringFunction(config.Stages[0].Components, config.Stages[0].Aggregate, prior.Device);
        var generator = new SmilesGenerator(prior);
        var result = new List<Candidate>();
        for (int i = 0; i < request.Iterations; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            var batch = generator.Generate(request.Particles, new SamplingOptions { MaxNewTokens = config.Sampling.MaxLength, Grammar = config.Sampling.Grammar == "smiles" ? generator.Grammar : null },
                StatelessRandom.Hash(config.Seed, i, 0x6E6F6E65),
                request.Particles, validOnly: false);
            var valid = batch.Where(m => m.Valid).Select(m => m.Canonical!).Distinct().ToList();
            result.AddRange(scoring.Score(valid).Select(m => new Candidate(m.Canonical!, m.Score, m.Raw[0], m.Raw[1])));
        }
        return result;
    }
}
