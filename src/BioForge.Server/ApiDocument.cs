using System.ComponentModel.DataAnnotations;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.OpenApi;

namespace BioForge.Server;

/// <summary>An example value (JSON) of a request field, for the OpenAPI document: clients and the tests build requests from it.</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class ExampleAttribute(string json) : Attribute
{
    public JsonNode? Value { get; } = JsonNode.Parse(json);
}

/// <summary>The example of a request's <c>model</c> field: the name of the first served model of this kind.</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class ServedModelExampleAttribute(ModelKind kind) : Attribute
{
    public ModelKind Kind { get; } = kind;
}

/// <summary>
/// The OpenAPI document (<c>/v1/openapi.json</c>) kept true to the server: request schemas use the names and number
/// rules the handlers deserialize with (<see cref="Json.Options"/>), refuse unknown fields as the server does, mark
/// required fields and carry examples; every operation lists the answers the middleware adds (400 for a Host not
/// served, 401 without the API key, 413/415 for bodies, 500 for a fault of ours); the API key is declared as a security
/// scheme.
/// </summary>
internal static class ApiDocument
{
    private const string Bearer = "bearer", HeaderKey = "api_key";

    public static void Add(IServiceCollection services, ServerOptions options, ModelCatalog models)
    {
        // The document's schemas come from these options; the handlers use the same settings through Json.Options.
        services.ConfigureHttpJsonOptions(o => Json.Configure(o.SerializerOptions));
        services.AddOpenApi("v1", o =>
        {
            o.AddDocumentTransformer((document, _, _) =>
            {
                document.Info = new() { Title = "BioForge inference service", Version = "v1", Description = "Embeddings, OpenAI-compatible completions, protein and molecule models, MolMIM-compatible generation and virtual screening." };
                document.Components ??= new OpenApiComponents();
                document.Components.SecuritySchemes = new Dictionary<string, IOpenApiSecurityScheme>
                {
                    [Bearer] = new OpenApiSecurityScheme { Type = SecuritySchemeType.Http, Scheme = "bearer", Description = "Authorization: Bearer KEY (bioforge serve --api-key)" },
                    [HeaderKey] = new OpenApiSecurityScheme { Type = SecuritySchemeType.ApiKey, In = ParameterLocation.Header, Name = "X-API-Key", Description = "X-API-Key: KEY, the same key" },
                };
                return Task.CompletedTask;
            });
            o.AddOperationTransformer((operation, context, _) =>
            {
                operation.Responses ??= [];
                Error(operation, 400, "Malformed request, or a Host header this server does not answer to (--allowed-hosts)", context.Document);
                if (options.ApiKey is not null && !context.Description.ActionDescriptor.EndpointMetadata.OfType<Routes.OpenWithoutKey>().Any())
                {
                    Error(operation, 401, "Missing or wrong API key", context.Document);
                    operation.Security =
                    [
                        new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(Bearer, context.Document)] = [] },
                        new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(HeaderKey, context.Document)] = [] },
                    ];
                }
                // Any route can fail in a way of ours; the answer names the id its log line carries.
                Error(operation, 500, "Internal error: the message names the id of the server log's line", context.Document);
                if (operation.RequestBody is not null)
                {
                    Error(operation, 413, $"The body is larger than the server takes (--max-request-bytes, {options.MaxRequestBytes:N0} here)", context.Document);
                    Error(operation, 415, "Content-Type is not application/json", context.Document);
                }
                return Task.CompletedTask;
            });
            o.AddSchemaTransformer((schema, context, _) =>
            {
                if (context.JsonPropertyInfo?.AttributeProvider is { } property)
                {
                    if (property.GetCustomAttributes(typeof(ExampleAttribute), false) is [ExampleAttribute example, ..]) schema.Examples = [example.Value!.DeepClone()];
                    if (property.GetCustomAttributes(typeof(ServedModelExampleAttribute), false) is [ServedModelExampleAttribute served, ..]
                        && models.FirstName(served.Kind) is { } name)
                        schema.Examples = [JsonValue.Create(name)];
                }
                else if (context.JsonTypeInfo.Kind == System.Text.Json.Serialization.Metadata.JsonTypeInfoKind.Object && context.JsonTypeInfo.Type.Namespace?.StartsWith("BioForge.Server", StringComparison.Ordinal) == true)
                {
                    // As Json.Options refuses them: a field the schema does not list is a 400, not ignored.
                    schema.AdditionalPropertiesAllowed = false;
                    foreach (var p in context.JsonTypeInfo.Properties)
                    {
                        if (p.AttributeProvider?.GetCustomAttributes(typeof(RequiredAttribute), false) is { Length: > 0 })
                            (schema.Required ??= new HashSet<string>()).Add(p.Name);
                        // Answers leave a null out (Json.Options, WhenWritingNull), whatever a record's constructor requires.
                        else if (p.IsGetNullable && p.AttributeProvider?.GetCustomAttributes(typeof(System.Text.Json.Serialization.JsonIgnoreAttribute), false)
                            is not [System.Text.Json.Serialization.JsonIgnoreAttribute { Condition: System.Text.Json.Serialization.JsonIgnoreCondition.Never }, ..])
                            schema.Required?.Remove(p.Name);
                        // A JsonElement field (embeddings' input) is "any JSON" to the generator; the handler takes a string or strings,
                        // and null for one that is not required (completions' prompt and stop: their defaults).
                        if (p.PropertyType == typeof(System.Text.Json.JsonElement) && schema.Properties?.TryGetValue(p.Name, out var any) == true)
                            schema.Properties[p.Name] = new OpenApiSchema
                            {
                                Description = any.Description,
                                OneOf = [new OpenApiSchema { Type = JsonSchemaType.String }, new OpenApiSchema { Type = JsonSchemaType.Array, Items = new OpenApiSchema { Type = JsonSchemaType.String } },
                                    .. schema.Required?.Contains(p.Name) == true ? Array.Empty<IOpenApiSchema>() : [new OpenApiSchema { Type = JsonSchemaType.Null }]],
                                Examples = p.AttributeProvider?.GetCustomAttributes(typeof(ExampleAttribute), false) is [ExampleAttribute e, ..] ? [e.Value!.DeepClone()] : null,
                            };
                    }
                }
                return Task.CompletedTask;
            });
        });
    }

    /// <summary>Declares a query or path parameter of one route as required, with an example (for requests built from the document).</summary>
    public static RouteHandlerBuilder Parameter<T>(this RouteHandlerBuilder builder, string name, T example, bool required) =>
        builder.AddOpenApiOperationTransformer((operation, _, _) =>
        {
            if (operation.Parameters?.OfType<OpenApiParameter>().FirstOrDefault(p => p.Name == name) is { } parameter)
            {
                parameter.Required = required;
                parameter.Example = JsonValue.Create(example);
            }
            return Task.CompletedTask;
        });

    private static void Error(OpenApiOperation operation, int status, string description, OpenApiDocument? document)
    {
        string key = status.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (operation.Responses!.ContainsKey(key)) return;
        operation.Responses[key] = new OpenApiResponse
        {
            Description = description,
            Content = new Dictionary<string, OpenApiMediaType> { ["application/json"] = new() { Schema = new OpenApiSchemaReference(nameof(ErrorResponse), document) } },
        };
    }
}
