using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using BioForge.Server;

namespace BioForge.Tests;

/// <summary>
/// The served OpenAPI document against the server itself: requests built only from the document (its required fields,
/// examples, parameter examples) are accepted, every status they get is documented for their operation, the API key
/// is declared, and names the document does not list (other casing included) are refused as it says.
/// </summary>
public sealed class OpenApiTests : IAsyncLifetime
{
    private const string Key = "openapi-test-key";
    private BioForgeServer server = null!;
    private HttpClient client = null!;
    private JsonObject document = null!;

    public async Task InitializeAsync()
    {
        _ = TestData.Cpu;
        server = await BioForgeServer.StartAsync(ServerFixture.Options() with { ApiKey = Key });
        client = new HttpClient { BaseAddress = new Uri(server.Address), Timeout = TimeSpan.FromMinutes(3) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);
        document = JsonNode.Parse(await client.GetStringAsync("/v1/openapi.json"))!.AsObject();
    }

    public async Task DisposeAsync()
    {
        client.Dispose();
        await server.DisposeAsync();
    }

    private IEnumerable<(string Path, string Method, JsonObject Operation)> Operations() =>
        from path in document["paths"]!.AsObject()
        from op in path.Value!.AsObject()
        select (path.Key, op.Key.ToUpperInvariant(), op.Value!.AsObject());

    private JsonObject Resolve(JsonNode schema) =>
        schema["$ref"]?.GetValue<string>() is { } reference ? document["components"]!["schemas"]![reference.Split('/')[^1]]!.AsObject() : schema.AsObject();

    /// <summary>The operation's URL with every parameter that has an example; fails on a required one without.</summary>
    private static string Url(string path, JsonObject operation)
    {
        var query = new List<string>();
        foreach (var parameter in operation["parameters"]?.AsArray() ?? [])
        {
            string name = parameter!["name"]!.GetValue<string>();
            var example = parameter["example"];
            Assert.True(example is not null || parameter["required"]?.GetValue<bool>() != true, $"{path}: required parameter {name} has no example");
            if (example is null) continue;
            string value = example.GetValueKind() == System.Text.Json.JsonValueKind.String ? example.GetValue<string>() : example.ToJsonString();
            if (parameter["in"]!.GetValue<string>() == "path") path = path.Replace("{" + name + "}", Uri.EscapeDataString(value), StringComparison.Ordinal);
            else query.Add($"{name}={Uri.EscapeDataString(value)}");
        }
        return query.Count == 0 ? path : path + "?" + string.Join("&", query);
    }

    /// <summary>A body of every property with an example; fails on a required property without one.</summary>
    private JsonObject Body(string path, JsonObject schema)
    {
        var required = schema["required"]?.AsArray().Select(r => r!.GetValue<string>()).ToHashSet() ?? [];
        var body = new JsonObject();
        foreach (var (name, property) in schema["properties"]!.AsObject())
        {
            var example = property!["examples"]?.AsArray().FirstOrDefault();
            Assert.True(example is not null || !required.Contains(name), $"{path}: required property {name} has no example");
            if (example is not null) body[name] = example.DeepClone();
        }
        return body;
    }

    /// <summary>A value of the schema's type for a property the document gives no example of (it may well be refused with 422).</summary>
    private static JsonNode Sample(JsonNode property)
    {
        var type = property["type"] is JsonArray types ? types.Select(t => t!.GetValue<string>()).First(t => t != "null") : property["type"]?.GetValue<string>();
        return type switch
        {
            "boolean" => JsonValue.Create(false),
            "integer" => JsonValue.Create(1),
            "number" => JsonValue.Create(0.5),
            "array" => new JsonArray(Sample(property["items"]!)),
            _ => JsonValue.Create("A"),
        };
    }

    private async Task<(int Status, string Text)> Send(string method, string url, JsonObject? body, bool withKey = true, string contentType = "application/json")
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), url);
        if (!withKey) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "wrong");
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8);
            request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }
        using var response = await client.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static void Documented(string what, JsonObject operation, (int Status, string Text) answer) =>
        Assert.True(operation["responses"]!.AsObject().ContainsKey(answer.Status.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            $"{what}: status {answer.Status} is not documented ({string.Join(", ", operation["responses"]!.AsObject().Select(r => r.Key))}): {answer.Text}");

    [Fact]
    public async Task RequestsBuiltFromTheDocumentAreAcceptedAndEveryStatusIsDocumented()
    {
        var schemes = document["components"]!["securitySchemes"]!;
        Assert.Equal("bearer", schemes["bearer"]!["scheme"]!.GetValue<string>());
        Assert.Equal("X-API-Key", schemes["api_key"]!["name"]!.GetValue<string>());
        int operations = 0;
        foreach (var (path, method, operation) in Operations())
        {
            operations++;
            string url = Url(path, operation);
            var schema = operation["requestBody"]?["content"]?["application/json"]?["schema"] is { } s ? Resolve(s) : null;
            var body = schema is null ? null : Body(path, schema);
            var answer = await Send(method, url, body);
            Documented($"{method} {url} {body?.ToJsonString()}", operation, answer);
            Assert.True(answer.Status is not (400 or 422), $"{method} {url}: a request built from the document got {answer.Status}: {answer.Text}");
            Assert.True(answer.Status < 500, $"{method} {url}: {answer.Status}: {answer.Text}");

            // The key: refused where the document asks for it, and only there.
            var unauthorized = await Send(method, url, body, withKey: false);
            if (operation["security"] is not null) Assert.Equal(401, unauthorized.Status);
            else Assert.NotEqual(401, unauthorized.Status);
            Documented($"{method} {url} without the key", operation, unauthorized);
            if (schema is null) continue;

            Assert.False(schema["additionalProperties"]!.GetValue<bool>(), $"{path}: the schema must say that unknown fields are refused");
            Documented($"{method} {url} as text/plain", operation, await Send(method, url, body, contentType: "text/plain"));
            // Each field without an example, with a value of its type: its name is accepted (a value may be refused).
            foreach (var (name, property) in schema["properties"]!.AsObject().Where(p => p.Value!["examples"] is null))
            {
                var probe = body!.DeepClone().AsObject();
                probe[name] = Sample(property!);
                var result = await Send(method, url, probe);
                Documented($"{method} {url} with {name}", operation, result);
                Assert.DoesNotContain("unknown field", result.Text, StringComparison.Ordinal);
            }
            // Names outside the document, another casing of a documented one included, are refused with 400 naming them.
            var names = schema["properties"]!.AsObject().Select(p => p.Key).ToList();
            string first = names.FirstOrDefault(n => n.Contains('_', StringComparison.Ordinal)) ?? names[0];
            foreach (string wrong in new[] { "no_such_field", first.ToUpperInvariant(), Camel(first) })
            {
                if (wrong == first) continue;
                var probe = body!.DeepClone().AsObject();
                probe[wrong] = probe[first]?.DeepClone() ?? Sample(schema["properties"]![first]!);
                var result = await Send(method, url, probe);
                Assert.True(result.Status == 400 && result.Text.Contains($"$.{wrong}", StringComparison.Ordinal) && result.Text.Contains("unknown field", StringComparison.Ordinal),
                    $"{method} {url} with '{wrong}': {result.Status} {result.Text}");
            }
        }
        Assert.True(operations >= 16, $"{operations} operations documented");
    }

    /// <summary>
    /// Answer schemas say what answers hold: a field the server leaves out when null is not required (an invalid SMILES's
    /// row has no descriptors), one always written is; the two usages (embeddings, completions) are two schemas.
    /// </summary>
    [Fact]
    public void AnswerSchemasRequireOnlyWhatAnswersAlwaysHold()
    {
        var schemas = document["components"]!["schemas"]!.AsObject();
        HashSet<string> Required(string name) => schemas[name]?["required"]?.AsArray().Select(r => r!.GetValue<string>()).ToHashSet() ?? [];
        Assert.Contains("valid", Required("PropsRow"));
        Assert.DoesNotContain("canonical", Required("PropsRow"));
        Assert.DoesNotContain("error", Required("PropsRow"));
        Assert.Contains("finish_reason", Required("Choice")); // written as null while a stream runs
        Assert.Contains("completion_tokens", schemas["CompletionUsage"]!["properties"]!.AsObject().Select(p => p.Key));
        Assert.DoesNotContain("completion_tokens", schemas["Usage"]!["properties"]!.AsObject().Select(p => p.Key));
    }

    private static string Camel(string snake)
    {
        var parts = snake.Split('_');
        return parts[0] + string.Concat(parts.Skip(1).Select(p => p.Length == 0 ? p : char.ToUpperInvariant(p[0]) + p[1..]));
    }
}
