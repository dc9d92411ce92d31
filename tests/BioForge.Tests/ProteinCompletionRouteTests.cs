using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using BioForge.Generation;
using BioForge.Models.Llama;
using BioForge.Server;

namespace BioForge.Tests;

/// <summary>A server holding only the tiny trained protein decoder (as <c>protein-tiny</c>), for <see cref="ProteinCompletionRouteTests"/>.</summary>
public sealed class ProteinServerFixture : IAsyncLifetime
{
    public BioForgeServer Server { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;

    /// <summary>The served directory (the model's name is its directory's).</summary>
    public string Directory { get; private set; } = "";

    public async Task InitializeAsync()
    {
        _ = TestData.Cpu;
        Directory = Path.Combine(TestData.TempDirectory(), "protein-tiny");
        System.IO.Directory.CreateDirectory(Directory);
        foreach (var file in System.IO.Directory.GetFiles(TinyProteinModel.Directory))
            File.Copy(file, Path.Combine(Directory, Path.GetFileName(file)));
        Server = await BioForgeServer.StartAsync(ServerFixture.Options(Directory));
        Client = new HttpClient { BaseAddress = new Uri(Server.Address), Timeout = TimeSpan.FromMinutes(2) };
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}

/// <summary><c>POST /v1/completions</c> with a protein decoder: a protein start continues, residues only, the samples of <c>bioforge generate</c>.</summary>
public sealed class ProteinCompletionRouteTests(ProteinServerFixture fixture) : IClassFixture<ProteinServerFixture>
{
    private const string Model = "protein-tiny";
    private readonly HttpClient client = fixture.Client;

    private async Task<(HttpStatusCode Status, string Text)> Post(object body)
    {
        using var content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
        using var response = await client.PostAsync("/v1/completions", content);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private IReadOnlyList<GeneratedText> Generate(int n, SamplingOptions options, ulong seed, string prompt)
    {
        using var model = LlamaCheckpoint.Load(fixture.Directory, TestData.Cpu.Device, TestData.Cpu.DType);
        var generator = new ProteinGenerator(model);
        // The route samples under the protein grammar unless asked not to; so does generate.
        return generator.Generate(n, options with { Grammar = generator.Grammar }, seed, batchSize: 1, prompt: prompt);
    }

    private static string[] Texts(JsonNode body) => [.. body["choices"]!.AsArray().OrderBy(c => c!["index"]!.GetValue<int>()).Select(c => c!["text"]!.GetValue<string>())];

    [Fact]
    public async Task AProteinPromptContinuesWithTheGenerateCommandsResidues()
    {
        var plainTask = Post(new { model = Model, prompt = "M", n = 4, seed = 9, max_tokens = 24, top_k = 15 });
        var streamTask = Post(new { model = Model, prompt = "MK", n = 2, seed = 4, max_tokens = 16, stream = true });
        var (status, text) = await plainTask;
        Assert.True(status == HttpStatusCode.OK, text);
        var body = JsonNode.Parse(text)!;
        var expected = Generate(4, new SamplingOptions { MaxNewTokens = 24, TopK = 15 }, 9, "M");
        // The answer is the continuation: the sample without its prompt, residue letters only.
        Assert.Equal(expected.Select(s => s.Text[1..]), Texts(body));
        Assert.All(Texts(body), t => Assert.Matches("^[A-Z]*$", t));
        Assert.Equal(2, body["usage"]!["prompt_tokens"]!.GetValue<int>()); // <cls> M
        var choices = body["choices"]!.AsArray();
        for (int i = 0; i < 4; i++)
            Assert.Equal(expected[i].Finished ? "stop" : "length", choices[i]!["finish_reason"]!.GetValue<string>());

        var (streamStatus, events) = await streamTask;
        Assert.True(streamStatus == HttpStatusCode.OK, events);
        var lines = events.Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => l[6..]).ToList();
        Assert.Equal("[DONE]", lines[^1]);
        var streamed = new StringBuilder[2];
        for (int i = 0; i < 2; i++) streamed[i] = new StringBuilder();
        foreach (var chunk in lines.SkipLast(1).Select(l => JsonNode.Parse(l)!))
            foreach (var choice in chunk["choices"]!.AsArray())
                streamed[choice!["index"]!.GetValue<int>()].Append(choice["text"]!.GetValue<string>());
        Assert.Equal(Generate(2, new SamplingOptions { MaxNewTokens = 16 }, 4, "MK").Select(s => s.Text[2..]), streamed.Select(b => b.ToString()));
    }

    [Fact]
    public async Task SmilesOnlyOptionsAndBadResiduesAreRefused()
    {
        var (status, text) = await Post(new { model = Model, prompt = "M", n = 2, valid_only = true });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Contains("valid_only applies to SMILES models; model protein-tiny is a protein model", text, StringComparison.Ordinal);
        (status, text) = await Post(new { model = Model, prompt = "M", grammar = "smiles" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Contains("grammar must be protein or none", text, StringComparison.Ordinal);
        (status, text) = await Post(new { model = Model, prompt = "M", grammar = "none", max_tokens = 8, seed = 1 });
        Assert.True(status == HttpStatusCode.OK, text);
        (status, text) = await Post(new { model = Model, prompt = "M1K" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Contains("invalid residue '1'", text, StringComparison.Ordinal);
        (status, text) = await Post(new { model = Model, prompt = "M<eos>" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Contains("special tokens are not allowed", text, StringComparison.Ordinal);
        // Refused by its length before the tokenizer reads it; nor is a long prompt echoed whole in a message.
        (status, text) = await Post(new { model = Model, prompt = new string('M', 140_000) }); // past 64 characters for each of the model's 2,048 positions
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Contains("prompt is 140,000 characters", text, StringComparison.Ordinal);
        (status, text) = await Post(new { model = Model, prompt = new string('M', 300) + "<eos>" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.True(text.Length < 400, text);
    }

    /// <summary>NIM's truncation applies to a protein decoder's embeddings as to an encoder's: END keeps the start (the
    /// embedding of the first residues that fit), START keeps the end, NONE refuses.</summary>
    [Fact]
    public async Task AnOverlongProteinIsTruncatedForEmbeddingsWhenAsked()
    {
        string tooLong = string.Concat(Enumerable.Repeat("MKTAYIAKQRVLSEGHW", 400));
        async Task<(HttpStatusCode Status, JsonNode? Body)> Embed(string input, string truncate)
        {
            using var content = new StringContent(JsonSerializer.Serialize(new { model = Model, input, truncate }), Encoding.UTF8, "application/json");
            using var response = await client.PostAsync("/v1/embeddings", content);
            string text = await response.Content.ReadAsStringAsync();
            return (response.StatusCode, response.IsSuccessStatusCode ? JsonNode.Parse(text) : null);
        }
        static float[] Vector(JsonNode body) => [.. body["data"]![0]!["embedding"]!.AsArray().Select(v => v!.GetValue<float>())];
        static int Tokens(JsonNode body) => body["usage"]!["prompt_tokens"]!.GetValue<int>();

        int framing = Tokens((await Embed("MKV", "NONE")).Body!) - 3;
        var end = await Embed(tooLong, "END");
        Assert.Equal(HttpStatusCode.OK, end.Status);
        int kept = Tokens(end.Body!) - framing;
        // As many residues as the model has positions for, framing aside: not merely some.
        int positions = Models.ModelRegistry.ReadConfig(Path.Combine(fixture.Directory, "config.json"))["max_position_embeddings"]!.GetValue<int>();
        Assert.Equal(positions - framing, kept);
        var start = await Embed(tooLong, "START");
        Assert.Equal(HttpStatusCode.OK, start.Status);
        Assert.Equal(Vector((await Embed(tooLong[..kept], "NONE")).Body!), Vector(end.Body!));
        Assert.Equal(Vector((await Embed(tooLong[^kept..], "NONE")).Body!), Vector(start.Body!));
        Assert.NotEqual(Vector(end.Body!), Vector(start.Body!));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await Embed(tooLong, "NONE")).Status);
    }

    [Fact]
    public async Task TheModelListSaysItCompletesProteins()
    {
        var models = JsonNode.Parse(await client.GetStringAsync("/v1/models"))!;
        var card = models["data"]!.AsArray().Single(m => m!["id"]!.GetValue<string>() == Model)!;
        Assert.Contains("/v1/completions", card["routes"]!.AsArray().Select(r => r!.GetValue<string>()));
    }

    /// <summary>The page's "generate proteins / molecules" panel lists the decoders and streams from /v1/completions.</summary>
    [Fact]
    public async Task TheWebPageHasAStreamingSamplePanel()
    {
        string page = await client.GetStringAsync("/");
        Assert.Contains("id=\"sample-model\"", page, StringComparison.Ordinal);
        Assert.Contains("id=\"sample-run\"", page, StringComparison.Ordinal);
        string script = await client.GetStringAsync("/app/app.js");
        Assert.Contains("'/v1/completions'", script, StringComparison.Ordinal);
        Assert.Contains("stream: true", script, StringComparison.Ordinal);
        Assert.Contains("m.routes?.includes('/v1/completions')", script, StringComparison.Ordinal);
    }
}
