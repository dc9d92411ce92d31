using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace BioForge.Server.Routes;

/// <summary>A route answered without the API key (the probes carry no secrets; the page sends the key on its calls).</summary>
internal sealed class OpenWithoutKey
{
    public static readonly OpenWithoutKey Instance = new();

    private OpenWithoutKey()
    {
    }

    public static bool On(Endpoint? endpoint) => endpoint?.Metadata.GetMetadata<OpenWithoutKey>() is not null;
}

/// <summary>Which served models a route answers for: <c>/v1/models</c> lists each model's routes from these, so a
/// route says what it serves where it is declared.</summary>
internal sealed class ServesModels(Func<LanguageModel, bool>? language, bool affinity = false)
{
    public bool Serves(LanguageModel model) => language?.Invoke(model) == true;

    public bool ServesAffinityModels => affinity;
}

internal static class EndpointMetadataExtensions
{
    /// <summary>
    /// The methods of a route that only reads: HEAD as well as GET, since uptime monitors, load balancers and
    /// <c>curl -I</c> ask with HEAD (Kestrel sends the GET answer's status and headers, no body).
    /// </summary>
    public static readonly IReadOnlyList<string> Reads = [HttpMethods.Get, HttpMethods.Head];

    public static TBuilder AllowWithoutKey<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(OpenWithoutKey.Instance);

    public static TBuilder Serves<TBuilder>(this TBuilder builder, Func<LanguageModel, bool> models) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new ServesModels(models));

    public static TBuilder ServesAffinityModels<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new ServesModels(null, affinity: true));
}
