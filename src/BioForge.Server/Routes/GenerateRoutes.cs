using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using BioForge.Chem;
using BioForge.Discovery;
using BioForge.Tokenizers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace BioForge.Server.Routes;

/// <summary>
/// MolMIM's <c>POST /generate</c>: molecules near a seed with a better QED or penalized logP, found by
/// <see cref="NearSeedGeneration"/> (BioForge's optimizer where MolMIM runs CMA-ES in its latent space):
/// <c>particles</c> molecules per step for <c>iterations</c> steps; <c>algorithm: none</c> samples as many from the
/// prior without learning. The answer has MolMIM's shape: <c>molecules</c> is a JSON-encoded string of
/// <c>{sample, score}</c> objects (score = the property), with <c>similarity</c> added. A seed given as a salt or a
/// charged form starts from its neutral parent, as screening reads molecules.
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
            var (search, prior) = Validate(request, state);
            var (molecules, scored) = await state.WithDeadline(context, token => state.LongWork.RunAsync(() => NearSeedGeneration.Run(search, prior.Llama!, prior.Directory, token), token,
                new WorkSize("generate", (double)request.Particles * request.Iterations)), state.Options.JobTimeout);
            string encoded = JsonSerializer.Serialize(molecules.Select(m => new GeneratedMolecule(m.Smiles, m.Property, m.Similarity)), Json.Options);
            return Results.Json(new GenerateResponse(encoded, request.PropertyName, request.Iterations, scored, unchecked((long)search.RandomSeed)), Json.Options);
        })
        .WithTags("molecule").WithSummary("MolMIM-compatible guided generation around a seed molecule")
        .Accepts<GenerateRequest>("application/json").Produces<GenerateResponse>().ProducesErrors(400, 404, 422, 501, 503, 504)
        .Serves(model => model.Kind == ModelKind.Molecule);
    }

    /// <summary>The search a valid request asks for, and the model it starts from; 4xx naming the field otherwise.</summary>
    private static (NearSeedRequest Search, LanguageModel Prior) Validate(GenerateRequest r, ServerState state)
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
        int maxTokens = NearSeedGeneration.TokenLimit(prior.Llama!);
        bool learn = r.Algorithm == "CMA-ES";
        if (learn && prior.Llama!.Vocabulary is { } vocabulary && vocabulary.Encode(canonical) is var ids && (ids.Contains(SmilesVocabulary.UnkId) || ids.Length - 2 > maxTokens))
            throw ApiError.Invalid($"smi: '{canonical}' cannot be written in the model's SMILES tokens within {maxTokens} tokens"
                + (ids.Contains(SmilesVocabulary.UnkId) ? $" (it holds a token the model never saw: {vocabulary.FirstUnknown(canonical)})" : ""), "smi");
        var search = new NearSeedRequest(canonical, r.PropertyName, r.Minimize, r.MinSimilarity, r.Particles, r.Iterations, learn, r.NumMolecules,
            unchecked((ulong)(r.Seed ?? RequestSeed.Fresh())));
        return (search, prior);
    }
}
