using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace BioForge.Server;

/// <summary>
/// A request the service answers with a 4xx/5xx and one message, in OpenAI's error shape
/// (<c>{"error": {"message", "type", "param", "code"}}</c>): <see cref="Param"/> names the field that is wrong.
/// </summary>
internal sealed class ApiError(int status, string message, string? param = null) : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;

    /// <summary>Seconds a client should wait before retrying (503), or null.</summary>
    public int? RetryAfterSeconds { get; init; }

    public static ApiError BadRequest(string message, string? param = null) => new(StatusCodes.Status400BadRequest, message, param);

    /// <summary>Well-formed JSON whose values are wrong: an invalid residue, an unparsable SMILES, a number out of range.</summary>
    public static ApiError Invalid(string message, string? param = null) => new(StatusCodes.Status422UnprocessableEntity, message, param);

    public static ApiError NotFound(string message, string? param = null) => new(StatusCodes.Status404NotFound, message, param);

    public static ApiError Overloaded(string message) => new(StatusCodes.Status503ServiceUnavailable, message) { RetryAfterSeconds = 1 };

    /// <summary>
    /// What a client is told of a fault of ours: that it happened and where the operator finds it, not the exception
    /// (its message can carry the server's file paths and internals). The log line with the same reference has it.
    /// </summary>
    public static ApiError Internal(string reference) =>
        new(StatusCodes.Status500InternalServerError, $"internal error; the server's log has the details under {reference}");

    /// <summary>503 whose Retry-After is the predicted time until the queue has room (whole seconds, at least 1).</summary>
    public static ApiError Overloaded(string message, TimeSpan retryAfter) =>
        new(StatusCodes.Status503ServiceUnavailable, message) { RetryAfterSeconds = (int)Math.Clamp(Math.Ceiling(retryAfter.TotalSeconds), 1, 3600) };

    public string Type => Status switch
    {
        401 => "authentication_error",
        404 => "not_found_error",
        413 => "request_too_large",
        503 => "overloaded_error",
        504 => "timeout_error",
        >= 500 => "server_error",
        _ => "invalid_request_error",
    };

    public Task WriteAsync(HttpContext context)
    {
        context.Response.StatusCode = Status;
        if (RetryAfterSeconds is { } seconds) context.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (Status == StatusCodes.Status401Unauthorized) context.Response.Headers.WWWAuthenticate = "Bearer";
        return context.Response.WriteAsJsonAsync(new ErrorResponse(new ErrorDetail(Message, Type, Param, Status)), Json.Options);
    }
}

/// <summary>Every error answer's body.</summary>
internal sealed record ErrorResponse(ErrorDetail Error);

/// <param name="Param">Written as null when no field is to blame, as OpenAI's errors have it.</param>
/// <param name="Code">The HTTP status, as a number.</param>
internal sealed record ErrorDetail(string Message, string Type,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.Never)] string? Param, int Code);

internal static class EndpointErrors
{
    /// <summary>Declares, for the OpenAPI document, the error answers a route gives.</summary>
    public static RouteHandlerBuilder ProducesErrors(this RouteHandlerBuilder builder, params int[] statuses)
    {
        foreach (int status in statuses) builder.Produces<ErrorResponse>(status);
        return builder;
    }
}

/// <summary>The service's JSON conventions: snake_case names, unknown request fields refused.</summary>
internal static class Json
{
    public static JsonSerializerOptions Options { get; } = Frozen(Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web)));

    private static JsonSerializerOptions Frozen(JsonSerializerOptions options)
    {
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }

    /// <summary>
    /// The conventions, applied to <see cref="Options"/> and to ASP.NET's own options, from which the OpenAPI document
    /// describes the schemas, so the document names fields exactly as the handlers read them.
    /// </summary>
    public static JsonSerializerOptions Configure(JsonSerializerOptions options)
    {
        options.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        // Names are exact, as the document writes them: "topK" or "Top_K" is an unknown field, not top_k.
        options.PropertyNameCaseInsensitive = false;
        options.UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow;
        // A field given twice is ambiguous ({"input":"MK","input":"QQ"} embedded the last one): refused like an unknown one.
        options.AllowDuplicateProperties = false;
        options.DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull;
        // Numbers are JSON numbers: "0.5" or "NaN" as strings are refused (a string "NaN" once reached the optimizer as NaN).
        options.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.Strict;
        // Messages quote SMILES and residues: keep ' < > & readable instead of \u0027.
        options.Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
        return options;
    }

    private static string JsonType(string type) =>
        type.EndsWith("[]", StringComparison.Ordinal) ? "an array" : type == "System.String" ? "a string" : Spelling.ValueInWords(type) ?? "an object";

    /// <summary>
    /// The request body as <typeparamref name="T"/>: malformed JSON and wrong types answer 400 naming the JSON path
    /// (<c>$.num_molecules</c>), unknown fields 400 naming the field; an empty body is an empty object.
    /// </summary>
    public static async Task<T> ReadAsync<T>(HttpRequest request) where T : new()
    {
        // Required, not assumed, also for an empty body: a POST without it is a CORS "simple" request, which any web
        // page can send to a server on the visitor's machine (an empty one started a full-length sample).
        if (request.ContentType is not { } type || !type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            throw new ApiError(StatusCodes.Status415UnsupportedMediaType, $"Content-Type must be application/json (got '{request.ContentType ?? "none"}')");
        // A compressed body read as text was "not valid UTF-8": name what was sent.
        if (request.Headers.ContentEncoding is { Count: > 0 } encoding && !string.Equals(encoding.ToString(), "identity", StringComparison.OrdinalIgnoreCase))
            throw new ApiError(StatusCodes.Status415UnsupportedMediaType, $"Content-Encoding '{encoding}' is not accepted; send the JSON body uncompressed");
        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, request.HttpContext.RequestAborted);
        // A byte-order mark (files saved by older Windows editors start with one) is not JSON, but no reason to refuse the body.
        var read = buffer.GetBuffer().AsSpan(0, (int)buffer.Length);
        byte[] body = (read.StartsWith("\uFEFF"u8) ? read[3..] : read).ToArray();
        if (body.Length == 0) return new T();
        if (!System.Text.Unicode.Utf8.IsValid(body)) throw ApiError.BadRequest("the request body is not valid UTF-8");
        try
        {
            var value = JsonSerializer.Deserialize<T>(body, Options) ?? throw ApiError.BadRequest("the request body is JSON null; expected an object");
            // A field kept as JsonElement (input, prompt, stop) is decoded only when the handler reads it: a lone UTF-16
            // surrogate escape (\ud800) would fail there, as a 500.
            if (HasSurrogateEscape(body) && Undecodable(body) is { } where)
                throw ApiError.BadRequest($"malformed request body at {where}: a string with a lone UTF-16 surrogate (\\uD800–\\uDFFF unpaired)", where.TrimStart('$', '.'));
            return value;
        }
        catch (JsonException e)
        {
            string where = e.Path is { Length: > 0 } path ? path : "$";
            string reason = e.Message.Contains("could not be mapped", StringComparison.Ordinal) ? "unknown field"
                : e.Message.Contains("Duplicate", StringComparison.OrdinalIgnoreCase) ? "a field given twice" : e.Message.Split(" Path:", 2)[0];
            // In JSON's words, not .NET's: "The JSON value could not be converted to System.Double" is a number expected.
            if (System.Text.RegularExpressions.Regex.Match(reason, @"could not be converted to (\S+?)\.?$") is { Success: true } converted)
                reason = $"expected {JsonType(converted.Groups[1].Value)}";
            string field = where.TrimStart('$', '.');
            throw ApiError.BadRequest($"malformed request body at {where}: {reason}", field.Length > 0 ? field : null);
        }
    }

    /// <summary>
    /// Whether the body escapes a UTF-16 surrogate (<c>\uD800</c>–<c>\uDFFF</c>): the only way a JSON text can hold one
    /// unpaired, as valid UTF-8 encodes none. Most bodies do not, and are not parsed a second time.
    /// </summary>
    private static bool HasSurrogateEscape(byte[] body)
    {
        for (int i = body.AsSpan().IndexOf("\\u"u8); i >= 0 && i + 3 < body.Length;)
        {
            if (body[i + 2] is (byte)'d' or (byte)'D' && body[i + 3] is >= (byte)'8' and <= (byte)'9' or >= (byte)'a' and <= (byte)'f' or >= (byte)'A' and <= (byte)'F')
                return true;
            int next = body.AsSpan(i + 2).IndexOf("\\u"u8);
            i = next < 0 ? -1 : i + 2 + next;
        }
        return false;
    }

    private static string? Undecodable(byte[] body)
    {
        using var document = JsonDocument.Parse(body);
        return Undecodable(document.RootElement, "$");
    }

    /// <summary>The JSON path of the first name or string that is not decodable text, or null.</summary>
    private static string? Undecodable(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                return Decodes(() => element.GetString()) ? null : path;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    string name = "";
                    if (!Decodes(() => name = property.Name)) return path;
                    if (Undecodable(property.Value, $"{path}.{name}") is { } inner) return inner;
                }
                return null;
            case JsonValueKind.Array:
                int index = 0;
                foreach (var item in element.EnumerateArray())
                    if (Undecodable(item, $"{path}[{index++}]") is { } inner) return inner;
                return null;
            default:
                return null;
        }

        static bool Decodes(Action read)
        {
            try
            {
                read();
                return true;
            }
            catch (InvalidOperationException)
            {
                return false;
            }
        }
    }
}
