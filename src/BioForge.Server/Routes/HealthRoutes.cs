using BioForge.Chem;
using BioForge.Runtime;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace BioForge.Server.Routes;

/// <summary>NIM's operational routes: liveness, readiness, Prometheus metrics, the model list and metadata.</summary>
internal static class HealthRoutes
{
    /// <param name="Status">The state again, as the BioNeMo NIMs' probes answer it (<c>{"status": "ready"}</c>), for
    /// scripts that poll the body rather than the status code.</param>
    public sealed record HealthResponse(string Object, string Message, string Status)
    {
        public HealthResponse(string state) : this("health-response", state, state) { }
    }

    /// <param name="MaxModelLen">vLLM's field: the positions the model reads, begin and end tokens included (null for an affinity model).</param>
    public sealed record ModelCard(string Id, string Object, long Created, string OwnedBy, string Kind, IReadOnlyList<string> Routes, int? HiddenSize, int? MaxModelLen);

    public sealed record ModelList(string Object, IReadOnlyList<ModelCard> Data);

    public static void Map(IEndpointRouteBuilder app, ServerState state)
    {
        var v1 = app.MapGroup("/v1").WithTags("service");
        var probe = EndpointMetadataExtensions.Reads;
        v1.MapMethods("/health/live", probe, () => Results.Json(new HealthResponse("live"), Json.Options))
            .WithSummary("Liveness: the process answers").Produces<HealthResponse>().AllowWithoutKey();
        v1.MapMethods("/health/ready", probe, () => state.Ready
                ? Results.Json(new HealthResponse("ready"), Json.Options)
                : Results.Json(new HealthResponse("not ready"), Json.Options, statusCode: StatusCodes.Status503ServiceUnavailable))
            .WithSummary("Readiness: models loaded and not shutting down (503 otherwise)").Produces<HealthResponse>().Produces<HealthResponse>(503).AllowWithoutKey();
        v1.MapMethods("/metrics", probe, () => Results.Text(state.Metrics.Render(), "text/plain; version=0.0.4; charset=utf-8"))
            .WithSummary("Prometheus metrics: requests, latency, batch sizes, queue depth, tokens");
        v1.MapMethods("/models", probe, (EndpointDataSource endpoints) => Results.Json(new ModelList("list", Cards(state, endpoints)), Json.Options))
            .WithSummary("The served models (OpenAI shape)").Produces<ModelList>();
        v1.MapMethods("/models/{id}", probe, (string id, EndpointDataSource endpoints) =>
                Cards(state, endpoints).FirstOrDefault(c => c.Id == id) is { } card ? Results.Json(card, Json.Options)
                    : throw ApiError.NotFound($"model '{id}' is not served here; see /v1/models", "model"))
            .WithSummary("One served model (OpenAI shape)").Produces<ModelCard>().ProducesErrors(404).Parameter("id", "esm2-small", required: true);
        v1.MapMethods("/metadata", probe, () => Results.Json(Metadata(state), Json.Options))
            .WithSummary("Versions, device, batching settings and models");
    }

    /// <summary>Each model with the routes that say they serve it (<see cref="ServesModels"/>), in the order they are mapped.</summary>
    private static List<ModelCard> Cards(ServerState state, EndpointDataSource endpoints)
    {
        long created = state.Started.ToUnixTimeSeconds();
        var routes = endpoints.Endpoints.OfType<RouteEndpoint>()
            .Select(e => (Path: "/" + e.RoutePattern.RawText!.Trim('/'), Serves: e.Metadata.GetMetadata<ServesModels>()))
            .Where(r => r.Serves is not null).ToList();
        var cards = state.Models.LanguageModels.Select(m => new ModelCard(m.Name, "model", created, "bioforge", m.Kind.ToString().ToLowerInvariant(),
            [.. routes.Where(r => r.Serves!.Serves(m)).Select(r => r.Path).Distinct()], m.HiddenSize, m.Completions?.Length ?? m.MaxTokens)).ToList();
        string[] affinity = [.. routes.Where(r => r.Serves!.ServesAffinityModels).Select(r => r.Path).Distinct()];
        cards.AddRange(state.Models.AffinityModels.Select(a => new ModelCard(a.Name, "model", created, "bioforge", "affinity", affinity, null, null)));
        return cards;
    }

    private static object Metadata(ServerState state) => new
    {
        Service = "bioforge",
        // As `bioforge --version` prints it: the release and the commit it was built from.
        Version = typeof(HealthRoutes).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion,
        Libtorch = TorchRuntime.LibTorchDirectory,
        Rdkit = Molecule.Unavailable() is { } why ? $"unavailable: {why}" : Molecule.RDKitVersion,
        Device = state.Device.Name,
        Threads = state.Compute.Threads,
        Dtype = state.Compute.DType.ToString(),
        Batching = new
        {
            state.Options.Batching.MaxBatchTokens,
            state.Options.Batching.MaxBatchItems,
            MaxDelayMs = state.Options.Batching.MaxDelay.TotalMilliseconds,
            state.Options.Batching.QueueCapacity,
        },
        Decoding = state.Models.LanguageModels.Where(m => m.Completions is not null).Select(m => new
        {
            Model = m.Name,
            Mode = m.Completions!.Mode.ToString().ToLowerInvariant(),
            m.Completions.Slots,
            m.Completions.Length,
            m.Completions.CacheBytes,
        }).ToList(),
        RequestTimeoutSeconds = state.Options.RequestTimeout.TotalSeconds,
        state.Options.MaxRequestBytes,
        ModelInfo = state.Models.LanguageModels.Select(m => new { ShortName = m.Name, Kind = m.Kind.ToString().ToLowerInvariant(), Path = m.Directory })
            .Concat(state.Models.AffinityModels.Select(a => new { ShortName = a.Name, Kind = "affinity", Path = a.Directory })).ToList(),
        Started = state.Started.ToString("O"),
    };
}
