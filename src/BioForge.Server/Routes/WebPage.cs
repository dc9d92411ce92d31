using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace BioForge.Server.Routes;

/// <summary>The web page: <c>/</c> and its scripts and styles under <c>/app/</c>, embedded in the assembly (nothing from a CDN).</summary>
internal static class WebPage
{
    private static readonly Assembly Assembly = typeof(WebPage).Assembly;

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapMethods("/", EndpointMetadataExtensions.Reads, () => File("index.html")).ExcludeFromDescription().AllowWithoutKey();
        app.MapMethods("/app/{name}", EndpointMetadataExtensions.Reads, (string name) => File(name)).ExcludeFromDescription().AllowWithoutKey();
    }

    private static IResult File(string name)
    {
        string? type = Path.GetExtension(name) switch
        {
            ".html" => "text/html; charset=utf-8",
            ".js" => "text/javascript; charset=utf-8",
            ".css" => "text/css; charset=utf-8",
            _ => null,
        };
        var stream = type is null ? null : Assembly.GetManifestResourceStream($"wwwroot/{name}");
        return stream is null ? throw ApiError.NotFound($"no page file '{name}'") : new Hardened(Results.Stream(stream, type));
    }

    /// <summary>The page's files with headers that keep them what they are: no type sniffing, no framing by other sites
    /// (the page holds the API key), scripts and styles from this server only (depictions arrive as blob images).</summary>
    private sealed class Hardened(IResult inner) : IResult
    {
        public Task ExecuteAsync(HttpContext context)
        {
            var headers = context.Response.Headers;
            headers.XContentTypeOptions = "nosniff";
            headers.XFrameOptions = "DENY";
            headers.ContentSecurityPolicy = "default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
            return inner.ExecuteAsync(context);
        }
    }
}
