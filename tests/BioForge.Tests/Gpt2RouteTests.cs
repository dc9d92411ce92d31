using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using BioForge.Generation;
using BioForge.Models.Gpt2;
using BioForge.Server;

namespace BioForge.Tests;

/// <summary>A server holding only the tiny GPT-2 fixture (with its tokenizer), for <see cref="Gpt2RouteTests"/>.</summary>
public sealed class Gpt2ServerFixture : IAsyncLifetime
{
    public BioForgeServer Server { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _ = TestData.Cpu;
        Server = await BioForgeServer.StartAsync(ServerFixture.Options(TestData.Path("hf", "gpt2_tiny")));
        Client = new HttpClient { BaseAddress = new Uri(Server.Address), Timeout = TimeSpan.FromMinutes(2) };
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}

/// <summary><c>/v1/completions</c> and <c>/v1/embeddings</c> with a GPT-2 checkpoint: the same samples as the library, text in and out through its tokenizer.</summary>
public sealed class Gpt2RouteTests(Gpt2ServerFixture fixture) : IClassFixture<Gpt2ServerFixture>
{
    private const string Model = "gpt2_tiny";
    private readonly HttpClient client = fixture.Client;

    private async Task<(HttpStatusCode Status, JsonNode Body, string Text)> Post(string path, object body)
    {
        using var content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
        using var response = await client.PostAsync(path, content);
        string text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.StartsWith('{') ? JsonNode.Parse(text)! : new JsonObject(), text);
    }

    private static string[] Texts(JsonNode body) =>
        [.. body["choices"]!.AsArray().OrderBy(c => c!["index"]!.GetValue<int>()).Select(c => c!["text"]!.GetValue<string>())];

    /// <summary>Greedy from the fixture's prompt [0, 5, 9] ("FK"): the fixture's own greedy tokens, as text.</summary>
    [Fact]
    public async Task GreedyCompletionIsTheFixturesGreedyDecoding()
    {
        var (status, body, text) = await Post("/v1/completions", new { model = Model, prompt = "FK", temperature = 0, max_tokens = 12 });
        Assert.True(status == HttpStatusCode.OK, text);
        // Fixture greedy after [0, 5, 9]: 28 ×4, 30, 30, 28, 30, 28, 28, 30, 28 — SS and AL in the tokenizer.
        Assert.Equal(["SSSSSSSSALALSSALSSSSALSS"], Texts(body));
        Assert.Equal("length", body["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Equal(3, body["usage"]!["prompt_tokens"]!.GetValue<int>());
    }

    /// <summary>Sampled answers, plain and streamed, equal what the library's <see cref="TextGenerator"/> (and so <c>generate</c>) draws for the seed.</summary>
    [Fact]
    public async Task SamplesEqualTheGeneratorsPlainAndStreamed()
    {
        List<string> expected;
        using (var checkpoint = Gpt2Checkpoint.Load(TestData.Path("hf", Model), TestData.Cpu.Device, TestData.Cpu.DType))
            expected = [.. new TextGenerator(checkpoint).Generate(4, new SamplingOptions { MaxNewTokens = 20, TopK = 10 }, seed: 9, batchSize: 2, prompt: "MK").Select(s => s.Text["MK".Length..])];
        var (status, body, text) = await Post("/v1/completions", new { model = Model, prompt = "MK", n = 4, seed = 9, top_k = 10, max_tokens = 20 });
        Assert.True(status == HttpStatusCode.OK, text);
        Assert.Equal(expected, Texts(body));

        var (_, _, events) = await Post("/v1/completions", new { model = Model, prompt = "MK", n = 4, seed = 9, top_k = 10, max_tokens = 20, stream = true });
        var streamed = new StringBuilder[4].Select(_ => new StringBuilder()).ToArray();
        var lines = events.Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => l["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", lines[^1]);
        foreach (var chunk in lines.SkipLast(1).Select(l => JsonNode.Parse(l)!["choices"]!.AsArray()))
            foreach (var c in chunk) streamed[c!["index"]!.GetValue<int>()].Append(c["text"]!.GetValue<string>());
        Assert.Equal(expected, streamed.Select(s => s.ToString()));
    }

    [Fact]
    public async Task EmbeddingsAndRefusalsNameTheInput()
    {
        var (status, body, text) = await Post("/v1/embeddings", new { model = Model, input = new[] { "MKALLLLEAGS", "GS" } });
        Assert.True(status == HttpStatusCode.OK, text);
        Assert.Equal(64, body["data"]![0]!["embedding"]!.AsArray().Count);

        // Refused by its length before the tokenizer, which every request to the model shares (a megabyte held it a second).
        var huge = await Post("/v1/embeddings", new { model = Model, input = string.Concat(Enumerable.Repeat("MK ", 2_000)) });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, huge.Status);
        Assert.Contains("input is 6,000 characters; model gpt2_tiny takes at most 62 tokens", huge.Body["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        // NIM's truncate cuts protein sequences; a too-long text is refused, and the message says it was not cut.
        var uncut = await Post("/v1/embeddings", new { model = Model, input = string.Concat(Enumerable.Repeat("MK ", 60)), truncate = "END" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, uncut.Status);
        Assert.EndsWith("(truncate END cuts protein sequences only)", uncut.Body["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        var refused = await Post("/v1/completions", new { model = Model, prompt = "MKB" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.Status);
        Assert.Equal("prompt", refused.Body["error"]!["param"]!.GetValue<string>());
        Assert.Contains("'B' at position 3", refused.Body["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        var validOnly = await Post("/v1/completions", new { model = Model, valid_only = true });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, validOnly.Status);
        Assert.Contains("SMILES models", validOnly.Body["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        var models = JsonNode.Parse(await client.GetStringAsync("/v1/models"))!["data"]!.AsArray().Single(m => m!["id"]!.GetValue<string>() == Model)!;
        Assert.Equal("text", models["kind"]!.GetValue<string>());
        Assert.Contains("/v1/completions", models["routes"]!.AsArray().Select(r => r!.GetValue<string>()));
    }
}
