using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using BioForge.Chem;
using BioForge.Discovery;
using BioForge.IO;
using BioForge.Models.Esm;
using BioForge.Proteins;
using BioForge.Server;
using static TorchSharp.torch;

namespace BioForge.Tests;

/// <summary>One real server on loopback (a free port) with the shipped models, shared by the tests of <see cref="ServerTests"/>.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public BioForgeServer Server { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;

    public static ServerOptions Options(params string[] models) => new()
    {
        Models = models.Length > 0 ? models : [.. new[] { "esm2-small", "smiles-llama-small", "dti-davis" }.Select(m => Path.Combine(Repository.Root, "models", m))],
        Port = 0,
        Threads = 2,
        Device = "cpu",
        MaxRequestBytes = 200_000,
        DrainDelay = TimeSpan.Zero,
    };

    /// <summary>Polls <c>/v1/metrics</c> (up to a minute) until it contains <paramref name="line"/>; returns that text.</summary>
    public static async Task<string> WaitForMetric(HttpClient client, string line)
    {
        string metrics = "";
        for (int i = 0; i < 600 && !metrics.Contains(line, StringComparison.Ordinal); i++)
        {
            if (i > 0) await Task.Delay(100);
            metrics = await client.GetStringAsync("/v1/metrics");
        }
        Assert.True(metrics.Contains(line, StringComparison.Ordinal), $"/v1/metrics never showed {line}");
        return metrics;
    }

    public async Task InitializeAsync()
    {
        _ = TestData.Cpu;
        Server = await BioForgeServer.StartAsync(Options());
        Client = new HttpClient { BaseAddress = new Uri(Server.Address), Timeout = TimeSpan.FromMinutes(3) };
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}

/// <summary>Every route of <c>bioforge serve</c> against a real Kestrel server: answers equal the library's, bad input gets the right 4xx.</summary>
public sealed class ServerTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private const string Ubiquitin = "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG";
    private readonly HttpClient client = fixture.Client;

    private async Task<(HttpStatusCode Status, JsonNode? Body)> Post(string path, string json, string contentType = "application/json")
    {
        using var content = new StringContent(json, Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        using var response = await client.PostAsync(path, content);
        string text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    private async Task<(HttpStatusCode Status, JsonNode? Body)> Get(string path)
    {
        using var response = await client.GetAsync(path);
        string text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, response.Content.Headers.ContentType?.MediaType == "application/json" ? JsonNode.Parse(text) : JsonValue.Create(text));
    }

    private static void AssertError(HttpStatusCode expected, (HttpStatusCode Status, JsonNode? Body) answer, string? param, string messagePart)
    {
        Assert.Equal(expected, answer.Status);
        var error = answer.Body!["error"]!;
        Assert.Contains(messagePart, error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal((int)expected, error["code"]!.GetValue<int>());
        if (param is not null) Assert.Equal(param, error["param"]!.GetValue<string>());
    }

    [Fact]
    public async Task HealthModelsMetadataAndOpenApiDescribeTheService()
    {
        Assert.Equal("live", (await Get("/v1/health/live")).Body!["message"]!.GetValue<string>());
        Assert.Equal("ready", (await Get("/v1/health/ready")).Body!["message"]!.GetValue<string>());
        Assert.Equal("ready", (await Get("/v1/health/ready")).Body!["status"]!.GetValue<string>()); // as the BioNeMo NIMs answer it
        var cards = (await Get("/v1/models")).Body!["data"]!.AsArray();
        var models = cards.Select(m => (m!["id"]!.GetValue<string>(), m["kind"]!.GetValue<string>())).ToList();
        Assert.Equal([("esm2-small", "protein"), ("smiles-llama-small", "molecule"), ("dti-davis", "affinity")], models);
        // Each model's routes, from what each route declares it serves, in the order the routes are mapped.
        var routes = cards.ToDictionary(m => m!["id"]!.GetValue<string>(), m => m!["routes"]!.AsArray().Select(r => r!.GetValue<string>()).ToArray());
        Assert.Equal(["/v1/embeddings", "/v1/protein/fill-mask", "/v1/protein/contacts", "/v1/protein/score-variants"], routes["esm2-small"]);
        Assert.Equal(["/v1/embeddings", "/generate", "/v1/completions"], routes["smiles-llama-small"]);
        Assert.Equal(["/v1/screen"], routes["dti-davis"]);
        // vLLM's max_model_len: the positions each language model reads.
        Assert.Equal([1026, 256], cards.Take(2).Select(m => m!["max_model_len"]!.GetValue<int>()));
        // One model's card, as the OpenAI clients' models.retrieve asks for it.
        var one = await Get("/v1/models/esm2-small");
        Assert.Equal(cards[0]!.ToJsonString(), one.Body!.ToJsonString());
        AssertError(HttpStatusCode.NotFound, await Get("/v1/models/nope"), "model", "model 'nope' is not served here");
        // Uptime monitors, load balancers and curl -I ask with HEAD: every GET route's status and headers, no body (all but
        // the OpenAPI document, which ASP.NET maps for GET alone).
        foreach (var (path, status) in new[] { ("/v1/health/live", HttpStatusCode.OK), ("/v1/health/ready", HttpStatusCode.OK), ("/v1/models", HttpStatusCode.OK),
            ("/v1/metrics", HttpStatusCode.OK), ("/v1/metadata", HttpStatusCode.OK), ("/", HttpStatusCode.OK), ("/app/app.js", HttpStatusCode.OK),
            ("/v1/molecule/depict?smiles=CCO", HttpStatusCode.OK), ("/v1/screen/nope", HttpStatusCode.NotFound), ("/v1/screen/nope/results", HttpStatusCode.NotFound) })
        {
            using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, path));
            Assert.True(status == head.StatusCode, $"HEAD {path}: {head.StatusCode}");
            Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        }
        var metadata = (await Get("/v1/metadata")).Body!;
        Assert.Equal(3, metadata["model_info"]!.AsArray().Count);
        Assert.Equal(5, metadata["batching"]!["max_delay_ms"]!.GetValue<double>());
        // The version `bioforge --version` prints (with the commit when built from a checkout), not the assembly's 1.0.0.0.
        var informational = (System.Reflection.AssemblyInformationalVersionAttribute)Attribute.GetCustomAttribute(
            typeof(BioForge.Server.BioForgeServer).Assembly, typeof(System.Reflection.AssemblyInformationalVersionAttribute))!;
        Assert.Equal(informational.InformationalVersion, metadata["version"]!.GetValue<string>());
        var paths = (await Get("/v1/openapi.json")).Body!["paths"]!.AsObject().Select(p => p.Key).ToHashSet();
        foreach (string route in new[] { "/v1/embeddings", "/v1/models", "/v1/health/live", "/v1/health/ready", "/v1/metrics", "/v1/metadata", "/generate",
            "/v1/protein/fill-mask", "/v1/protein/contacts", "/v1/protein/score-variants", "/v1/molecule/props", "/v1/molecule/depict", "/v1/screen", "/v1/screen/{id}", "/v1/screen/{id}/results" })
            Assert.Contains(route, paths);
    }

    [Fact]
    public void AMissingLibraryIsTheServersLackNotTheRequestsFault()
    {
        var options = new ServerOptions();
        var missing = BioForgeServer.Answer(new BioForgeException("the RDKit shim x.so is missing") { MissingDependency = true }, options);
        Assert.Equal(501, missing.Status);
        Assert.Equal("server_error", missing.Type);
        Assert.Contains("the RDKit shim x.so is missing", missing.Message, StringComparison.Ordinal);
        Assert.Equal(422, BioForgeServer.Answer(new BioForgeException("invalid SMILES 'C1'"), options).Status);
        Assert.Equal(500, BioForgeServer.Answer(new InvalidOperationException("bug"), options).Status);
        Assert.Equal(500, BioForgeServer.Answer(new BioForgeException("the model's logits hold NaN") { ServerFault = true }, options).Status);
    }

    [Fact]
    public async Task ProteinEmbeddingsEqualTheEmbedCommandsMeanPooling()
    {
        string[] sequences = [Ubiquitin, "MKTAYIAKQRQISFVKSHFSRQ", "MKV"];
        var (status, body) = await Post("/v1/embeddings", JsonSerializer.Serialize(new { model = "esm2-small", input = sequences }));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("list", body!["object"]!.GetValue<string>());
        Assert.Equal(sequences.Sum(s => s.Length + 2), body["usage"]!["prompt_tokens"]!.GetValue<int>());
        using var esm = EsmCheckpoint.Load(Path.Combine(Repository.Root, "models", "esm2-small"), CPU, ScalarType.Float32);
        var expected = new EsmEmbedder(esm, new EmbedOptions()).Embed(sequences.Select((s, i) => new FastaRecord($"s{i}", "", s, i + 1))).ToList();
        for (int i = 0; i < sequences.Length; i++)
        {
            var served = body["data"]![i]!["embedding"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
            Assert.Equal(i, body["data"]![i]!["index"]!.GetValue<int>());
            Assert.Equal(expected[i].Values.Length, served.Length);
            for (int k = 0; k < served.Length; k++) Assert.True(Math.Abs(expected[i].Values[k] - served[k]) < 1e-4, $"sequence {i} dimension {k}: {served[k]} vs {expected[i].Values[k]}");
        }
    }

    [Fact]
    public async Task NimFieldsAreAcceptedAndTruncationKeepsTheChosenEnd()
    {
        string tooLong = string.Concat(Enumerable.Repeat("MKTAYIAKQR", 110)); // 1,100 residues; the model takes 1,024
        var end = await Post("/v1/embeddings", JsonSerializer.Serialize(new { model = "esm2-small", input = tooLong, input_type = "query", truncate = "END", dimensions = 128 }));
        Assert.Equal(HttpStatusCode.OK, end.Status);
        Assert.Equal(1024 + 2, end.Body!["usage"]!["prompt_tokens"]!.GetValue<int>());
        var start = (await Post("/v1/embeddings", JsonSerializer.Serialize(new { model = "esm2-small", input = tooLong, truncate = "START" }))).Body!;
        var head = (await Post("/v1/embeddings", JsonSerializer.Serialize(new { model = "esm2-small", input = tooLong[..1024] }))).Body!;
        var tail = (await Post("/v1/embeddings", JsonSerializer.Serialize(new { model = "esm2-small", input = tooLong[^1024..] }))).Body!;
        Assert.Equal(Vector(head), Vector(end.Body));
        Assert.Equal(Vector(tail), Vector(start));
        // Residues are counted as tokens: 1,015 of them, five written <mask>, fit (as characters they were cut: START lost
        // fourteen residues, END cut a <mask> in two and was refused).
        string masked = "M" + new string('A', 1009) + string.Concat(Enumerable.Repeat("<mask>", 5));
        var whole = await Post("/v1/embeddings", JsonSerializer.Serialize(new { model = "esm2-small", input = masked, truncate = "NONE" }));
        foreach (string mode in new[] { "START", "END" })
        {
            var cut = await Post("/v1/embeddings", JsonSerializer.Serialize(new { model = "esm2-small", input = masked, truncate = mode }));
            Assert.Equal(HttpStatusCode.OK, cut.Status);
            Assert.Equal(1015 + 2, cut.Body!["usage"]!["prompt_tokens"]!.GetValue<int>());
            Assert.Equal(Vector(whole.Body!), Vector(cut.Body));
        }
        // A final stop is no residue: 1,024 residues and a '*' fit.
        string stopped = new string('A', 1024) + "*";
        var withStop = await Post("/v1/embeddings", JsonSerializer.Serialize(new { model = "esm2-small", input = stopped, truncate = "START" }));
        Assert.Equal(HttpStatusCode.OK, withStop.Status);
        Assert.Equal(Vector((await Post("/v1/embeddings", JsonSerializer.Serialize(new { model = "esm2-small", input = stopped[..^1] }))).Body!), Vector(withStop.Body!));
        // A stop alone is no residue at all: it was answered with a zero vector, as if it were an embedding.
        var stopAlone = await Post("/v1/embeddings", JsonSerializer.Serialize(new { model = "esm2-small", input = new[] { "MK", "*" } }));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, stopAlone.Status);
        Assert.Equal("input[1]", stopAlone.Body!["error"]!["param"]!.GetValue<string>());
        Assert.Contains("input[1]: '*' holds no residues", stopAlone.Body["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        // Past the limit, a cut keeps whole tokens: END keeps the first 1,024 of 1,025, four whole <mask>s among them.
        var longer = await Post("/v1/embeddings", JsonSerializer.Serialize(new { model = "esm2-small", input = new string('A', 1020) + string.Concat(Enumerable.Repeat("<mask>", 5)), truncate = "END" }));
        Assert.Equal(HttpStatusCode.OK, longer.Status);
        Assert.Equal(1024 + 2, longer.Body!["usage"]!["prompt_tokens"]!.GetValue<int>());
    }

    /// <summary>The load generators behind the documented serving numbers, run for a few requests against this server:
    /// every request answered, and their JSON lines consistent (a first token comes before the whole answer).</summary>
    [Fact]
    public async Task TheLoadBenchmarksReportEveryRequestTheySent()
    {
        JsonNode Bench(params string[] args)
        {
            var (output, error) = (new StringWriter(), new StringWriter());
            int code = Cli.Cli.Run(["bench", .. args, "--url", fixture.Server.Address], output, error);
            Assert.True(code == 0, error.ToString());
            return JsonNode.Parse(output.ToString().Trim().Split('\n')[^1])!;
        }
        var completions = await Task.Run(() => Bench("completions", "--model", "smiles-llama-small", "--rate", "20", "--requests", "4", "--max-n", "3", "--max-tokens", "12", "--seconds", "60"));
        Assert.Equal(4, completions["sent"]!.GetValue<int>());
        Assert.Equal(4, completions["ok"]!.GetValue<int>());
        Assert.Equal(0, completions["other"]!.GetValue<int>());
        Assert.InRange(completions["samples_requested"]!.GetValue<int>(), 4, 12);
        Assert.True(completions["tokens_per_second"]!.GetValue<double>() > 0);
        Assert.True(completions["ttft_p50_ms"]!.GetValue<double>() <= completions["p50_ms"]!.GetValue<double>());
        Assert.True(completions["ttft_p99_ms"]!.GetValue<double>() <= completions["p99_ms"]!.GetValue<double>());

        string inputs = Path.Combine(TestData.TempDirectory(), "inputs.smi");
        await File.WriteAllLinesAsync(inputs, ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O"]);
        var serve = await Task.Run(() => Bench("serve", "--model", "smiles-llama-small", "--inputs", inputs, "--requests", "6", "--warmup", "2", "--concurrency", "2", "--seconds", "60"));
        Assert.Equal(6, serve["sent"]!.GetValue<int>());
        Assert.Equal(6, serve["ok"]!.GetValue<int>());
        Assert.True(serve["p50_ms"]!.GetValue<double>() <= serve["p99_ms"]!.GetValue<double>());
        Assert.True(serve["p99_ms"]!.GetValue<double>() <= serve["max_ms"]!.GetValue<double>());
    }

    [Fact]
    public async Task Base64EmbeddingsAreTheFloatEmbeddingsAsLittleEndianBytes()
    {
        var floats = (await Post("/v1/embeddings", """{"model":"smiles-llama-small","input":"c1ccccc1O"}""")).Body!["data"]![0]!["embedding"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        var encoded = (await Post("/v1/embeddings", """{"model":"smiles-llama-small","input":"c1ccccc1O","encoding_format":"base64"}""")).Body!["data"]![0]!["embedding"]!.GetValue<string>();
        var decoded = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(Convert.FromBase64String(encoded)).ToArray();
        Assert.Equal(256, floats.Length);
        Assert.Equal(floats, decoded);
    }

    [Fact]
    public async Task ConcurrentRequestsAreBatchedTogetherAndGetTheirOwnAnswers()
    {
        string[] smiles = ["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "CN1CCN(CC1)c1ccccc1", "O=C(O)CCc1ccccc1", "CCN(CC)CC", "Clc1ccccc1", "CC(C)Cc1ccc(cc1)C(C)C(=O)O"];
        var alone = new List<float[]>();
        foreach (string s in smiles) alone.Add(Vector((await Post("/v1/embeddings", JsonSerializer.Serialize(new { input = s, model = "smiles-llama-small" }))).Body!));
        string before = (await Get("/v1/metrics")).Body!.GetValue<string>();
        var together = await Task.WhenAll(Enumerable.Range(0, 48).Select(i => Post("/v1/embeddings", JsonSerializer.Serialize(new { input = smiles[i % smiles.Length], model = "smiles-llama-small" }))));
        for (int i = 0; i < together.Length; i++)
        {
            Assert.Equal(HttpStatusCode.OK, together[i].Status);
            var v = Vector(together[i].Body!);
            for (int k = 0; k < v.Length; k++) Assert.True(Math.Abs(alone[i % smiles.Length][k] - v[k]) < 1e-4, $"request {i} dimension {k}");
        }
        string after = (await Get("/v1/metrics")).Body!.GetValue<string>();
        double batches = Metric(after, "bioforge_batch_size_count{model=\"smiles-llama-small\"}") - Metric(before, "bioforge_batch_size_count{model=\"smiles-llama-small\"}");
        double requests = Metric(after, "bioforge_batch_size_sum{model=\"smiles-llama-small\"}") - Metric(before, "bioforge_batch_size_sum{model=\"smiles-llama-small\"}");
        Assert.Equal(48, requests);
        Assert.True(batches < 48, $"48 concurrent requests ran in {batches} batches: none was batched with another");
        Assert.Contains("bioforge_requests_total{route=\"/v1/embeddings\",status=\"200\"}", after);
        Assert.Contains("bioforge_request_duration_seconds_bucket{route=\"/v1/embeddings\",le=\"+Inf\"}", after);
        Assert.Contains("bioforge_request_duration_seconds_bucket{route=\"/v1/embeddings\",le=\"0.0025\"}", after); // bounds as written, not 0.0025000000000000001
        Assert.Contains("bioforge_queue_depth{queue=\"smiles-llama-small\"}", after);
        // Routing answers another Content-Type itself (415): counted under the route it was sent to.
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, (await Post("/v1/embeddings", "{}", "text/plain")).Status);
        Assert.Contains("bioforge_requests_total{route=\"/v1/embeddings\",status=\"415\"}", (await Get("/v1/metrics")).Body!.GetValue<string>());
    }

    /// <summary>LangChain's OpenAI embeddings send up to 1,000 texts a request (its chunk_size); OpenAI takes up to 2,048.</summary>
    [Fact]
    public async Task AClientsChunkOfAThousandTextsIsAnsweredInOrderAndMoreThanOpenAisLimitIsRefused()
    {
        string[] smiles = ["CCO", "c1ccccc1", "CCN(CC)CC", "Clc1ccccc1"];
        var (status, body) = await Post("/v1/embeddings", JsonSerializer.Serialize(new { model = "smiles-llama-small", input = Enumerable.Range(0, 1000).Select(i => smiles[i % 4]) }));
        Assert.True(status == HttpStatusCode.OK, body?.ToJsonString());
        var data = body!["data"]!.AsArray();
        Assert.Equal(Enumerable.Range(0, 1000), data.Select(d => d!["index"]!.GetValue<int>()));
        var first = data[0]!["embedding"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        var fifth = data[4]!["embedding"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        for (int k = 0; k < first.Length; k++) Assert.True(Math.Abs(first[k] - fifth[k]) < 1e-4, $"dimension {k}: the same SMILES got two vectors");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/embeddings", JsonSerializer.Serialize(new { model = "smiles-llama-small", input = Enumerable.Repeat("C", 2049) })),
            "input", "input has 2049 items; at most 2048 per request");
    }

    private static float[] Vector(JsonNode body) => [.. body["data"]![0]!["embedding"]!.AsArray().Select(v => v!.GetValue<float>())];

    private static double Metric(string text, string series) =>
        text.Split('\n').Where(l => l.StartsWith(series + " ", StringComparison.Ordinal)).Select(l => double.Parse(l[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture)).DefaultIfEmpty(0).Single();

    [Fact]
    public async Task BadRequestsGetTheRightStatusAndNameTheField()
    {
        AssertError(HttpStatusCode.BadRequest, await Post("/v1/embeddings", """{"model":"esm2-small","input":["""), null, "malformed request body");
        var notJson = await Post("/v1/embeddings", "not json");
        AssertError(HttpStatusCode.BadRequest, notJson, null, "malformed request body at $");
        Assert.Null(notJson.Body!["error"]!["param"]); // no field to name: none, rather than ""
        Assert.True(notJson.Body!["error"]!.AsObject().ContainsKey("param"), "param is written as null, as OpenAI's errors have it");
        AssertError(HttpStatusCode.BadRequest, await Post("/v1/embeddings", """{"model":"esm2-small","input":"MKV","inptu":1}"""), "inptu", "unknown field");
        var twice = await Post("/v1/embeddings", """{"model":"esm2-small","input":"MK","input":"QQ"}""");
        Assert.True(twice.Status == HttpStatusCode.BadRequest, twice.Body?.ToJsonString());
        Assert.Contains("a field given twice", twice.Body!["error"]!["message"]!.GetValue<string>());
        AssertError(HttpStatusCode.BadRequest, await Post("/v1/embeddings", """{"model":"esm2-small","input":[1,2]}"""), "input[0]", "is token ids: this server reads text only");
        AssertError(HttpStatusCode.BadRequest, await Post("/v1/embeddings", """{"model":"esm2-small","input":[[1,2]]}"""), "input[0]", "check_embedding_ctx_length=False");
        AssertError(HttpStatusCode.BadRequest, await Post("/v1/embeddings", """{"model":"esm2-small","input":["MK",true]}"""), "input[1]", "must be a string");
        AssertError(HttpStatusCode.BadRequest, await Post("/v1/embeddings", """{"model":"esm2-small"}"""), "input", "required");
        // Text that is no text: ill-formed UTF-8, and a lone surrogate escape in a field read only by the handler (was a 500).
        using (var bytes = new ByteArrayContent([.. Encoding.UTF8.GetBytes("""{"model":"esm2-small","input":"MK"""), 0xC3, .. Encoding.UTF8.GetBytes("\"}")]))
        {
            bytes.Headers.ContentType = MediaTypeHeaderValue.Parse("application/json");
            using var response = await client.PostAsync("/v1/embeddings", bytes);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains("not valid UTF-8", await response.Content.ReadAsStringAsync());
        }
        AssertError(HttpStatusCode.BadRequest, await Post("/v1/embeddings", """{"model":"esm2-small","input":["MK","M\ud800"]}"""), "input[1]", "lone UTF-16 surrogate");
        AssertError(HttpStatusCode.BadRequest, await Post("/v1/completions", """{"model":"smiles-llama-small","stop":["\ud800"]}"""), "stop[0]", "lone UTF-16 surrogate");
        // A letter outside the model's alphabet is refused before the request waits for the device, naming the field.
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/protein/contacts", """{"sequence":"MKTJAYI"}"""), "sequence", "'J' at position 4 is not an amino-acid letter");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/protein/score-variants", """{"sequence":"MK<mask>AYIAKQR","mutations":["K2R"]}"""), "sequence", "special tokens such as <mask> are not allowed");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/embeddings", """{"model":"esm2-small","input":["MKV","MK1V"]}"""), "input[1]", "invalid residue '1' at position 3");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/embeddings", """{"model":"smiles-llama-small","input":"C1CC"}"""), "input", "not a valid SMILES");
        // A token the model never saw is named with its place (a salt's '.', the commonest, with what to send instead).
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/embeddings", """{"model":"smiles-llama-small","input":"CN(C)C(=N)NC(=N)N.Cl"}"""), "input",
            "the first '.' at character 18 (a salt or mixture: the model writes single molecules; send the parent)");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/embeddings", """{"model":"esm2-small","input":"MKV","encoding_format":"int8"}"""), "encoding_format", "float or base64");
        AssertError(HttpStatusCode.NotFound, await Post("/v1/embeddings", """{"model":"esm3","input":"MKV"}"""), "model", "'esm3' is not served");
        AssertError(HttpStatusCode.NotFound, await Post("/v1/embeddings", """{"model":"dti-davis","input":"MKV"}"""), "model", "'dti-davis' is a drug–target affinity model, served for /v1/screen only");
        AssertError(HttpStatusCode.BadRequest, await Post("/v1/embeddings", """{"input":"MKV"}"""), "model", "model is required");
        AssertError(HttpStatusCode.BadRequest, await Post("/v1/embeddings", """{"model":"esm2-small","input":[["MKV"]]}"""), "input[0]", "is an array of strings");
        AssertError(HttpStatusCode.UnsupportedMediaType, await Post("/v1/embeddings", "input=MKV", "application/x-www-form-urlencoded"), null, "application/json");
        using (var untyped = new ByteArrayContent(Encoding.UTF8.GetBytes("""{"smi":"CCO"}""")))
        using (var response = await client.PostAsync("/generate", untyped)) // what a cross-site page can send without a preflight
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        using (var response = await client.PostAsync("/v1/completions", null)) // empty and untyped: it started a whole de novo sample
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        // A body saved with a byte-order mark is read; a compressed one is named, not called "not valid UTF-8".
        using (var marked = new ByteArrayContent([0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes("""{"model":"esm2-small","input":"MKV"}""")]))
        {
            marked.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            using var response = await client.PostAsync("/v1/embeddings", marked);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        using (var zipped = new ByteArrayContent([0x1F, 0x8B, 0x08, 0x00]))
        {
            zipped.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            zipped.Headers.ContentEncoding.Add("gzip");
            using var response = await client.PostAsync("/v1/embeddings", zipped);
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
            Assert.Contains("Content-Encoding 'gzip' is not accepted", await response.Content.ReadAsStringAsync());
        }
        using (var rebound = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { Host = "attacker.example" } })
        using (var response = await client.SendAsync(rebound))
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains("Host 'attacker.example' is not served here", await response.Content.ReadAsStringAsync());
        }
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/embeddings", """{"model":"esm2-small","input":"MKV","dimensions":64}"""), "dimensions", "gives 128 numbers");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/embeddings", """{"model":"esm2-small","input":"MKV","truncate":"MIDDLE"}"""), "truncate", "NONE, END or START");
        AssertError(HttpStatusCode.BadRequest, await Post("/v1/protein/score-variants", """{"sequence":"MKTAYIAKQR","mutations":["K2R",null]}"""), "mutations[1]", "is null");
        AssertError(HttpStatusCode.RequestEntityTooLarge, await Post("/v1/embeddings", JsonSerializer.Serialize(new { model = "esm2-small", input = new string('A', 300_000) })), null, "larger than 200,000 bytes");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/embeddings", JsonSerializer.Serialize(new { model = "esm2-small", input = new string('A', 2000) })), "input", "at most 1024");
        AssertError(HttpStatusCode.NotFound, await Get("/v1/embedding"), null, "no route GET /v1/embedding");
        AssertError(HttpStatusCode.MethodNotAllowed, await Get("/v1/embeddings"), null, "does not take GET");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/protein/fill-mask", """{"sequence":"MKTAYIAKQR"}"""), "sequence", "no <mask>");
        AssertError(HttpStatusCode.NotFound, await Post("/v1/protein/contacts", """{"model":"smiles-llama-small","sequence":"MKV"}"""), "model", "as a protein model");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/protein/contacts", """{"sequence":"MK V"}"""), "sequence", "' ' at position 3");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/protein/score-variants", """{"sequence":"MKTAYIAKQR","mutations":["K2R","Q9"]}"""), "mutations[1]", "expected wild-type letter");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/generate", """{"smi":"C1CC"}"""), "smi", "not a valid SMILES");
        // Valid but not in the prior's tokens (an atom it never saw): named as the seed's fault, not the optimizer's setting.
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/generate", """{"smi":"C[Te]C","particles":2,"iterations":1}"""), "smi", "the model never saw: '[Te]' at character 2");
        Assert.Equal(HttpStatusCode.OK, (await Post("/generate", """{"smi":"C[Te]C","particles":2,"iterations":1,"algorithm":"none","num_molecules":2}""")).Status);
        // A salt seed starts from its neutral parent (the model has no '.' token: it was refused as unspellable).
        Assert.Equal(HttpStatusCode.OK, (await Post("/generate", """{"smi":"CC(=O)[O-].[Na+]","particles":2,"iterations":1,"num_molecules":2}""")).Status);
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/generate", """{"smi":"CCO","property_name":"logS"}"""), "property_name", "QED or plogP");
        AssertError(HttpStatusCode.BadRequest, await Post("/generate", """{"smi":"CCO","iterations":"many"}"""), "iterations", "malformed request body");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/screen", """{"target":"MKV1AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","smiles":["CCO"]}"""), "target", "'1' at position 4");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/screen", """{"target":"EGFRX","smiles":["CCO"]}"""), "target", "did you mean EGFR?");
        AssertError(HttpStatusCode.BadRequest, await Post("/v1/screen", """{"target":"ABL1"}"""), "smiles", "smiles is required");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/screen", """{"target":"ABL1","smiles":["CCO"],"limits":["mw<=500","mw<500"]}"""), "limits",
            "limits[1] 'mw<500': not a limit such as mw<=500");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/screen", """{"target":"ABL1","smiles":["CCO"],"allow_alerts":["Michael_acceptor"]}"""), "allow_alerts",
            "did you mean Michael_acceptor_1?");
        AssertError(HttpStatusCode.NotFound, await Get("/v1/screen/nope"), "id", "no screening job 'nope'");
        AssertError(HttpStatusCode.UnprocessableEntity, await Get("/v1/molecule/depict?smiles=C1CC"), "smiles", "not a valid SMILES");
        // Numbers are JSON numbers: a string, even one .NET could read as a number, is refused with the field.
        AssertError(HttpStatusCode.BadRequest, await Post("/generate", """{"smi":"CCO","min_similarity":"NaN"}"""), "min_similarity", "malformed request body");
        AssertError(HttpStatusCode.BadRequest, await Post("/generate", """{"smi":"CCO","min_similarity":"0.5"}"""), "min_similarity", "malformed request body at $.min_similarity: expected a number");
        AssertError(HttpStatusCode.BadRequest, await Get("/v1/molecule/depict?smiles=CCO&width=abc"), "width", "width: 'abc' is not a whole number");
        AssertError(HttpStatusCode.BadRequest, await Post("/v1/molecule/props", """{"smiles":"CCO"}"""), "smiles", "malformed request body at $.smiles: expected an array");
        // A null among SMILES is a client's bug, named as one among embedding inputs is (it was scored as an empty molecule).
        AssertError(HttpStatusCode.BadRequest, await Post("/v1/molecule/props", """{"smiles":["CCO",null]}"""), "smiles[1]", "smiles[1] is null");
        AssertError(HttpStatusCode.BadRequest, await Post("/v1/screen", """{"target":"ABL1","smiles":[null]}"""), "smiles[0]", "smiles[0] is null");
        AssertError(HttpStatusCode.BadRequest, await Post("/v1/protein/fill-mask", """{"sequence":"MKV<mask>","top_k":"3"}"""), "top_k", "malformed request body");
        // Special tokens are the model's business, not part of a protein sequence.
        foreach (string token in new[] { "<cls>", "<pad>", "<eos>" })
            AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/embeddings", $$"""{"model":"esm2-small","input":"MKV{{token}}LL"}"""), "input", "position 4");
        // RDKit read "C😀C" as methane: every way a SMILES enters refuses it, naming the character and its position.
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/generate", """{"smi":"C😀C"}"""), "smi", "(U+1F600) at position 2");
        AssertError(HttpStatusCode.UnprocessableEntity, await Get("/v1/molecule/depict?smiles=C%F0%9F%98%80C"), "smiles", "(U+1F600) at position 2");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/embeddings", """{"model":"smiles-llama-small","input":"C😀C"}"""), "input", "(U+1F600) at position 2");
        var row = (await Post("/v1/molecule/props", """{"smiles":["C😀C"]}""")).Body!["data"]![0]!;
        Assert.False(row["valid"]!.GetValue<bool>());
        Assert.Contains("(U+1F600) at position 2", row["error"]!.GetValue<string>());
        // RDKit read "C C" as methane named "C": a space inside a SMILES field is refused with its position.
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/generate", """{"smi":"CC O"}"""), "smi", "space at position 3");
        AssertError(HttpStatusCode.UnprocessableEntity, await Get("/v1/molecule/depict?smiles=C%20C"), "smiles", "space at position 2");
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/embeddings", """{"model":"smiles-llama-small","input":"C C"}"""), "input", "space at position 2");
        var spaced = (await Post("/v1/molecule/props", """{"smiles":["C C"]}""")).Body!["data"]![0]!;
        Assert.False(spaced["valid"]!.GetValue<bool>());
        Assert.Contains("space at position 2", spaced["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task ProteinRoutesAnswerWhatTheLibraryComputes()
    {
        using var esm = EsmCheckpoint.Load(Path.Combine(Repository.Root, "models", "esm2-small"), CPU, ScalarType.Float32);

        var fill = (await Post("/v1/protein/fill-mask", """{"sequence":"mqifv<mask>tltgk","top_k":3}""")).Body!;
        var expected = MaskFiller.Predict(esm, "MQIFV<mask>TLTGK", 3);
        Assert.Equal(6, fill["predictions"]![0]!["position"]!.GetValue<int>());
        for (int r = 0; r < 3; r++)
        {
            Assert.Equal(expected[0].Candidates[r].Token, fill["predictions"]![0]!["candidates"]![r]!["token"]!.GetValue<string>());
            Assert.Equal(expected[0].Candidates[r].Probability, fill["predictions"]![0]!["candidates"]![r]!["probability"]!.GetValue<double>(), 5);
        }

        var each = (await Post("/v1/protein/fill-mask", """{"sequence":"MQIFVKTLTGK","each_position":true,"top_k":2}""")).Body!["predictions"]!.AsArray();
        Assert.Equal(11, each.Count);
        var masked = MaskFiller.Predict(esm, "MQIFV<mask>TLTGK", 33);
        Assert.Equal("K", each[5]!["wild_type"]!.GetValue<string>());
        Assert.Equal(masked[0].Candidates.Single(c => c.Token == "K").Probability, each[5]!["wild_type_probability"]!.GetValue<double>(), 5);

        var contacts = (await Post("/v1/protein/contacts", JsonSerializer.Serialize(new { sequence = Ubiquitin, top = 4 }))).Body!;
        Assert.False(contacts["contact_head_trained"]!.GetValue<bool>()); // the shipped esm2-small's head is all zeros: a flat 0.5
        var map = ContactPredictor.Predict(esm, Ubiquitin);
        Assert.Equal(Ubiquitin.Length, contacts["length"]!.GetValue<int>());
        Assert.Equal(map[3, 40], contacts["contacts"]![3]![40]!.GetValue<float>(), 5);
        var top = contacts["top_contacts"]!.AsArray();
        Assert.Equal(4, top.Count);
        Assert.All(top, c => Assert.True(c!["j"]!.GetValue<int>() - c["i"]!.GetValue<int>() >= 6));

        var variants = (await Post("/v1/protein/score-variants", """{"sequence":"MKTAYIAKQR","mutations":["K2R","A4G:Y5F"]}""")).Body!["scores"]!.AsArray();
        var wt = "MKTAYIAKQR";
        var scores = new VariantScorer(esm, 8192).Score(wt, [Variant.Parse("K2R", wt), Variant.Parse("A4G:Y5F", wt)]);
        Assert.Equal("A4G:Y5F", variants[1]!["mutation"]!.GetValue<string>());
        Assert.Equal(scores[0], variants[0]!["score"]!.GetValue<double>(), 5);
        Assert.Equal(scores[1], variants[1]!["score"]!.GetValue<double>(), 5);

        // A wild type longer than the model reads: each site in the window centred on it, as the command; other routes refuse it.
        string longWildType = string.Concat(Enumerable.Repeat(Ubiquitin, 15))[..1100];
        string mutation = $"{longWildType[599]}600A";
        var scored = await Post("/v1/protein/score-variants", JsonSerializer.Serialize(new { sequence = longWildType, mutations = new[] { mutation } }));
        Assert.Equal(HttpStatusCode.OK, scored.Status);
        Assert.Equal(new VariantScorer(esm, 8192).Score(longWildType, [Variant.Parse(mutation, longWildType)])[0], scored.Body!["scores"]![0]!["score"]!.GetValue<double>(), 5);
        var longFill = (await Post("/v1/protein/fill-mask", JsonSerializer.Serialize(new { sequence = longWildType, positions = new[] { 600 }, top_k = 2 }))).Body!["predictions"]![0]!;
        var longExpected = MaskFiller.Predict(esm, longWildType[..599] + "<mask>" + longWildType[600..], 2)[0];
        Assert.Equal(600, longFill["position"]!.GetValue<int>());
        Assert.Equal(longExpected.Candidates[0].Probability, longFill["candidates"]![0]!["probability"]!.GetValue<double>(), 5);
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/protein/contacts", JsonSerializer.Serialize(new { sequence = longWildType })), "sequence", "takes at most 1024");
        // Windowed routes are bounded too (one each_position request of 4 MB held gigabytes of masked copies).
        string huge = new('A', ContactPredictor.MaxWindowedResidues + 1);
        AssertError(HttpStatusCode.UnprocessableEntity, await Post("/v1/protein/fill-mask", JsonSerializer.Serialize(new { sequence = huge, each_position = true })), "sequence",
            $"the service reads at most {ContactPredictor.MaxWindowedResidues:N0}");
    }

    [Fact]
    public async Task PropsAndDepictionsComeFromRDKit()
    {
        var rows = (await Post("/v1/molecule/props", """{"smiles":["OCC","C1CC"]}""")).Body!["data"]!.AsArray();
        using var table = new PropertyTable();
        var expected = table.Compute(new MoleculeRecord("OCC", "OCC", false, 1, new Dictionary<string, string>()));
        Assert.Equal("CCO", rows[0]!["canonical"]!.GetValue<string>());
        Assert.Equal(expected.Qed, rows[0]!["qed"]!.GetValue<double>(), 10);
        Assert.Equal(expected.Sa, rows[0]!["sa"]!.GetValue<double>(), 10);
        Assert.False(rows[1]!["valid"]!.GetValue<bool>());
        Assert.Contains("unclosed ring", rows[1]!["error"]!.GetValue<string>());

        using var response = await client.GetAsync("/v1/molecule/depict?smiles=c1ccccc1O&width=200&height=150");
        Assert.Equal("image/svg+xml", response.Content.Headers.ContentType!.MediaType);
        Assert.Contains("<svg", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task GenerateAnswersInMolMimsShapeWithDistinctValidMolecules()
    {
        var (status, body) = await Post("/generate", """{"smi":"CC(=O)Oc1ccccc1C(=O)O","num_molecules":5,"iterations":2,"particles":16,"min_similarity":0.3,"seed":0}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("QED", body!["score_type"]!.GetValue<string>());
        var molecules = JsonNode.Parse(body["molecules"]!.GetValue<string>())!.AsArray(); // MolMIM sends a JSON-encoded string
        Assert.InRange(molecules.Count, 1, 5);
        using var qed = new Qed();
        foreach (var m in molecules)
        {
            string smiles = m!["sample"]!.GetValue<string>();
            Assert.True(Molecule.TryFromSmiles(smiles, out var parsed, out _), smiles);
            // The route rounds scores to 4 decimals; rounding both sides to 3 would fail a score like 0.91549 (sent as 0.9155).
            using (parsed) Assert.Equal(qed.Score(parsed!), m["score"]!.GetValue<double>(), 0.5e-4 + 1e-12);
            Assert.InRange(m["similarity"]!.GetValue<double>(), 0, 1);
        }
        Assert.Equal(molecules.Count, molecules.Select(m => m!["sample"]!.GetValue<string>()).Distinct().Count());
        // The seed molecule starts the search (inception): two steps breed enough of its analogues to fill the answer.
        Assert.Equal(5, molecules.Count(m => m!["similarity"]!.GetValue<double>() >= 0.3));
        // sampled counts the distinct molecules scored: 2 batches of 16 sampled and 8 bred each at most.
        Assert.Equal(2, body["iterations"]!.GetValue<int>());
        Assert.InRange(body["sampled"]!.GetValue<int>(), molecules.Count, 2 * (16 + 8));

        // Sampling without learning runs as many batches: the answer says so (it said 0 iterations).
        (status, body) = await Post("/generate", """{"smi":"CCO","num_molecules":2,"algorithm":"none","iterations":1,"particles":8,"seed":-3}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(1, body!["iterations"]!.GetValue<int>());
        Assert.InRange(body["sampled"]!.GetValue<int>(), 2, 8);
        // A seed is reproducible, a negative one too (int64, as completions take it).
        var again = await Post("/generate", """{"smi":"CCO","num_molecules":2,"algorithm":"none","iterations":1,"particles":8,"seed":-3}""");
        Assert.Equal(body["molecules"]!.GetValue<string>(), again.Body!["molecules"]!.GetValue<string>());
        Assert.Equal(-3, again.Body["seed"]!.GetValue<long>());
        // Without a seed each call is another search (MolMIM's are), and the answer names its seed to repeat it.
        var fresh = await Post("/generate", """{"smi":"CCO","num_molecules":2,"algorithm":"none","iterations":1,"particles":8}""");
        var other = await Post("/generate", """{"smi":"CCO","num_molecules":2,"algorithm":"none","iterations":1,"particles":8}""");
        long drawn = fresh.Body!["seed"]!.GetValue<long>();
        Assert.NotEqual(drawn, other.Body!["seed"]!.GetValue<long>());
        var repeated = await Post("/generate", $$"""{"smi":"CCO","num_molecules":2,"algorithm":"none","iterations":1,"particles":8,"seed":{{drawn}}}""");
        Assert.Equal(fresh.Body["molecules"]!.GetValue<string>(), repeated.Body!["molecules"]!.GetValue<string>());
    }

    [Fact]
    public async Task AScreeningJobReportsProgressAndFindsWhatTheScreenCommandFinds()
    {
        string target = ProteinTarget.Resolve(Path.Combine(Repository.Root, "data", "targets", "abl1.fasta")).Sequence;
        string[] library = [.. MoleculeSource.Read(Path.Combine(Repository.Root, "data", "zinc250k", "test.smi.gz")).Take(300).Select(r => r.Text), "C1CC"];
        var (status, job) = await Post("/v1/screen", JsonSerializer.Serialize(new { target, smiles = library, top = 5 }));
        Assert.Equal(HttpStatusCode.Accepted, status);
        Assert.Equal(301, job!["total"]!.GetValue<int>());
        string id = job["id"]!.GetValue<string>();
        JsonNode view;
        var waited = System.Diagnostics.Stopwatch.StartNew();
        do
        {
            await Task.Delay(100);
            view = (await Get($"/v1/screen/{id}")).Body!;
        } while (view["status"]!.GetValue<string>() is "queued" or "running" && waited.Elapsed < TimeSpan.FromMinutes(5));
        Assert.Equal("succeeded", view["status"]!.GetValue<string>());
        Assert.Equal(301, view["processed"]!.GetValue<long>());
        var results = (await Get($"/v1/screen/{id}/results")).Body!;
        Assert.Equal(300, results["scored"]!.GetValue<long>());
        Assert.Equal(1, results["invalid"]!.GetValue<long>());
        using var model = AffinityModel.Load(Path.Combine(Repository.Root, "models", "dti-davis"), CPU);
        var expected = VirtualScreen.Run(model, target, library.Select((s, i) => new MoleculeRecord($"#{i + 1}", s, false, i + 1, new Dictionary<string, string>())), new ScreenOptions { Top = 5 });
        var hits = results["hits"]!.AsArray();
        Assert.Equal(expected.Hits.Select(h => h.Id), hits.Select(h => h!["id"]!.GetValue<string>()));
        Assert.Equal(expected.Hits[0].Affinity, hits[0]!["affinity"]!.GetValue<double>(), 4);
        Assert.NotNull(hits[0]!["nearest_known_binder"]); // ABL1 is a Davis target
        Assert.Equal(expected.Hits[0].NearestBinderName, hits[0]!["nearest_binder_name"]!.GetValue<string>());
        // Davis measured it on ABL1: a known binder is at pKd 7 or more.
        Assert.InRange(hits[0]!["nearest_binder_measured"]!.GetValue<double>(), 7, 12);
        Assert.Equal(expected.Hits[0].NearestBinderAffinity!.Value, hits[0]!["nearest_binder_measured"]!.GetValue<double>(), 6);
        Assert.Equal(expected.Hits[0].TrainingSimilarity!.Value, hits[0]!["nearest_training_ligand_similarity"]!.GetValue<double>(), 6);
        // The unreadable SMILES is named by its place in the request, not a line of a file the client never sent.
        Assert.StartsWith("smiles[300]: ", results["first_errors"]![0]!.GetValue<string>());

        // Limits and allowed alerts as the screen command takes them: the molecules outside are counted, not scored.
        (status, job) = await Post("/v1/screen", JsonSerializer.Serialize(new { target, smiles = library, top = 5, limits = new[] { "mw<=300", "qed>=0.6" }, allow_alerts = new[] { "Michael_acceptor_1" } }));
        Assert.Equal(HttpStatusCode.Accepted, status);
        id = job!["id"]!.GetValue<string>();
        do
        {
            await Task.Delay(100);
            view = (await Get($"/v1/screen/{id}")).Body!;
        } while (view["status"]!.GetValue<string>() is "queued" or "running" && waited.Elapsed < TimeSpan.FromMinutes(5));
        results = (await Get($"/v1/screen/{id}/results")).Body!;
        var limited = VirtualScreen.Run(model, target, library.Select((s, i) => new MoleculeRecord($"#{i + 1}", s, false, i + 1, new Dictionary<string, string>())),
            new ScreenOptions { Top = 5, Limits = PropertyLimit.ParseAll(["mw<=300", "qed>=0.6"]) });
        Assert.True(limited.OutsideLimits > 0);
        Assert.Equal(limited.OutsideLimits, results["outside_limits"]!.GetValue<long>());
        Assert.Equal(0, results["without_carbon"]!.GetValue<long>());
        Assert.Equal(300 - limited.OutsideLimits, results["scored"]!.GetValue<long>());
        Assert.Equal(limited.Hits.Select(h => h.Id), results["hits"]!.AsArray().Select(h => h!["id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task AJobCanBeStoppedWhileQueuedOrRunning()
    {
        string target = ProteinTarget.Resolve(Path.Combine(Repository.Root, "data", "targets", "abl1.fasta")).Sequence;
        string[] library = [.. MoleculeSource.Read(Path.Combine(Repository.Root, "data", "zinc250k", "valid.smi.gz")).Take(3000).Select(r => r.Text)];
        string body = JsonSerializer.Serialize(new { target, smiles = library, top = 5 });
        string running = (await Post("/v1/screen", body)).Body!["id"]!.GetValue<string>();
        string queued = (await Post("/v1/screen", body)).Body!["id"]!.GetValue<string>(); // waits behind the first
        using (var stopQueued = await client.DeleteAsync($"/v1/screen/{queued}"))
        {
            Assert.Equal(HttpStatusCode.Accepted, stopQueued.StatusCode);
            Assert.Equal("cancelled", JsonNode.Parse(await stopQueued.Content.ReadAsStringAsync())!["status"]!.GetValue<string>());
        }
        Assert.Equal(HttpStatusCode.Accepted, (await client.DeleteAsync($"/v1/screen/{running}")).StatusCode);
        string status = "";
        for (int i = 0; i < 300 && status != "cancelled"; i++)
        {
            await Task.Delay(100);
            status = (await Get($"/v1/screen/{running}")).Body!["status"]!.GetValue<string>();
        }
        Assert.Equal("cancelled", status);
        AssertError(HttpStatusCode.Conflict, await Get($"/v1/screen/{running}/results"), "id", "is cancelled");
        Assert.True((await Get($"/v1/screen/{running}")).Body!["processed"]!.GetValue<long>() < library.Length, "the job ran to its end although it was stopped");
    }

    [Fact]
    public async Task TheWebPageWorksInChromiumWithoutLeavingTheServer()
    {
        string screenshot = Path.Combine(TestData.TempDirectory(), "serve-page.png");
        var info = new System.Diagnostics.ProcessStartInfo("node", [Path.Combine(Repository.Root, "tests", "browser", "page.mjs"), fixture.Server.Address + "/", screenshot])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var node = System.Diagnostics.Process.Start(info)!;
        var output = node.StandardOutput.ReadToEndAsync();
        var error = node.StandardError.ReadToEndAsync();
        Assert.True(await Task.Run(() => node.WaitForExit(TimeSpan.FromMinutes(4))), "the page test did not finish within 4 minutes");
        Assert.True(node.ExitCode == 0, $"page.mjs: {await output} {await error}");
        var steps = JsonNode.Parse(await output)!["steps"]!;
        Assert.Equal(Ubiquitin.Length, steps["protein"]!["residues"]!.GetValue<int>());
        // The shipped small model's contact head was never fitted: the page says so instead of listing "strongest" contacts of 0.5.
        Assert.StartsWith("not a prediction: esm2-small's contact head was never fitted", steps["protein"]!["contacts"]!.GetValue<string>());
        Assert.InRange(steps["design"]!["cards"]!.GetValue<int>(), 1, 6);
        Assert.Matches(@"\(seed \d+\)", steps["design"]!["message"]!.GetValue<string>()); // each search draws its seed; the page names it to repeat one
        Assert.Equal(3, steps["screen"]!["rows"]!.GetValue<int>());
        Assert.Equal(3, steps["sample"]!["samples"]!.AsArray().Count); // streamed from /v1/completions into the panel
        Assert.True(new FileInfo(screenshot).Length > 50_000, "the screenshot is (nearly) empty");
    }
}

/// <summary>Authentication, timeouts and load shedding, each on a server of its own.</summary>
public sealed class ServerLimitsTests
{
    private static string Model(string name) => Path.Combine(Repository.Root, "models", name);

    /// <summary>An ESM-2 encoder saved without its masked-LM head serves embeddings and contacts; the routes that predict residues are not listed for it and say why.</summary>
    [Fact]
    public async Task AnEncoderWithoutItsHeadIsServedForWhatItCanDo()
    {
        _ = TestData.Cpu;
        await using var server = await BioForgeServer.StartAsync(ServerFixture.Options(EsmCheckpointTests.BareEncoder()));
        using var http = new HttpClient { BaseAddress = new Uri(server.Address) };
        var card = JsonNode.Parse(await http.GetStringAsync("/v1/models"))!["data"]!.AsArray().Single()!;
        var routes = card["routes"]!.AsArray().Select(r => r!.GetValue<string>()).ToList();
        Assert.Contains("/v1/embeddings", routes);
        Assert.Contains("/v1/protein/contacts", routes);
        Assert.DoesNotContain("/v1/protein/fill-mask", routes);
        Assert.DoesNotContain("/v1/protein/score-variants", routes);
        using var contacts = await http.PostAsync("/v1/protein/contacts", JsonContent("""{"sequence":"MKTAYIAKQRQISFVKSHFSRQ"}"""));
        Assert.Equal(HttpStatusCode.OK, contacts.StatusCode);
        foreach (var (route, body) in new[] { ("/v1/protein/fill-mask", """{"sequence":"MKT<mask>YIAKQR"}"""), ("/v1/protein/score-variants", """{"sequence":"MKTAYIAKQR","mutations":["K2R"]}""") })
        {
            using var refused = await http.PostAsync(route, JsonContent(body));
            Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);
            var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
            Assert.Equal("model", error["param"]!.GetValue<string>());
            Assert.Contains("has no masked-LM head", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        }
    }

    private static StringContent JsonContent(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task WithAnApiKeyOnlyHealthProbesAndThePageAreOpen()
    {
        _ = TestData.Cpu;
        await using var server = await BioForgeServer.StartAsync(ServerFixture.Options(Model("smiles-llama-small")) with { ApiKey = "s3cret" });
        using var client = new HttpClient { BaseAddress = new Uri(server.Address) };
        foreach (string open in new[] { "/v1/health/ready", "/v1/health/live", "/", "/app/app.js" })
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(open)).StatusCode);
        // The page holds the key: no framing by other sites, no type sniffing, its own scripts only.
        using (var page = await client.GetAsync("/"))
        {
            Assert.Equal("nosniff", page.Headers.GetValues("X-Content-Type-Options").Single());
            Assert.Contains("frame-ancestors 'none'", page.Headers.GetValues("Content-Security-Policy").Single());
            Assert.Contains("default-src 'self'", page.Headers.GetValues("Content-Security-Policy").Single());
        }
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/v1/metrics")).StatusCode);
        var refused = await client.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Equal("Bearer", refused.Headers.WwwAuthenticate.Single().Scheme);
        Assert.Contains("API key", await refused.Content.ReadAsStringAsync());
        using var wrong = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", "guess") } };
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.SendAsync(wrong)).StatusCode);
        using var bearer = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", "s3cret") } };
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(bearer)).StatusCode);
        using var header = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "X-API-Key", "s3cret" } } };
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(header)).StatusCode);
    }

    [Fact]
    public async Task TheAccessLogHasALinePerAnsweredRequestOnlyWhenAskedFor()
    {
        _ = TestData.Cpu;
        foreach (bool wanted in new[] { true, false })
        {
            var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
            await using (var server = await BioForgeServer.StartAsync(ServerFixture.Options(Model("smiles-llama-small")) with { AccessLog = wanted }, lines.Enqueue))
            {
                using var client = new HttpClient { BaseAddress = new Uri(server.Address) };
                Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/health/live")).StatusCode);
                Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/v1/nothing?x=1")).StatusCode);
            }
            var access = lines.Where(l => l.Contains(" GET /v1/", StringComparison.Ordinal)).ToList();
            if (!wanted)
            {
                Assert.Empty(access);
                continue;
            }
            Assert.Equal(2, access.Count);
            Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 127\.0\.0\.1 GET /v1/health/live 200 \d+\.\dms \S+$", access[0]);
            Assert.Matches(@" GET /v1/nothing\?x=1 404 \d+\.\dms ", access[1]);
        }
        // Kestrel passes raw control bytes of a query through: a carriage return forged a second log line.
        Assert.Equal("?x=%0D2026 GET%09%1B[K", BioForgeServer.Printable("?x=\r2026 GET\t\u001b[K"));
        Assert.Equal("?x=1", BioForgeServer.Printable("?x=1"));
    }

    /// <summary>
    /// On any loopback address the Host header must name a loopback name or the address (DNS rebinding reaches all of
    /// 127.0.0.0/8 from a local browser; 127.0.0.2 answered any Host); elsewhere any, unless given.
    /// </summary>
    [Fact]
    public void ALoopbackServerAnswersOnlyLoopbackHostNames()
    {
        Assert.Equal(["localhost", "127.0.0.1", "[::1]"], ServerOptions.HostsToAnswer(null, "127.0.0.1"));
        Assert.Equal(["localhost", "127.0.0.1", "[::1]"], ServerOptions.HostsToAnswer(null, "::1"));
        Assert.Equal(["localhost", "127.0.0.1", "[::1]", "127.0.0.2"], ServerOptions.HostsToAnswer(null, "127.0.0.2"));
        Assert.Equal(["localhost", "127.0.0.1", "[::1]"], ServerOptions.HostsToAnswer([], "localhost"));
        Assert.Empty(ServerOptions.HostsToAnswer(null, "0.0.0.0"));
        Assert.Empty(ServerOptions.HostsToAnswer(["*"], "127.0.0.1"));
        Assert.Equal(["bioforge.example"], ServerOptions.HostsToAnswer(["bioforge.example"], "10.0.0.5"));
    }

    [Fact]
    public async Task ARequestNotAnsweredInTimeGets504AndIsNotComputed()
    {
        _ = TestData.Cpu;
        // The batch waits 2 s for company; the request may wait 0.2 s.
        var options = ServerFixture.Options(Model("smiles-llama-small")) with
        {
            RequestTimeout = TimeSpan.FromMilliseconds(200),
            Batching = new BatchingOptions { MaxDelay = TimeSpan.FromSeconds(2) },
        };
        await using var server = await BioForgeServer.StartAsync(options);
        using var client = new HttpClient { BaseAddress = new Uri(server.Address) };
        using var content = new StringContent("""{"input":"CCO"}""", Encoding.UTF8, "application/json");
        var response = await client.PostAsync("/v1/embeddings", content);
        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Contains("not answered within 0.2 s", await response.Content.ReadAsStringAsync());
        string metrics = await ServerFixture.WaitForMetric(client, "bioforge_requests_dropped_total{model=\"smiles-llama-small\"} 1");
        Assert.DoesNotContain("bioforge_batch_size_count{model=\"smiles-llama-small\"}", metrics);
    }
}

public sealed class ServerDisconnectTests
{
    [Fact]
    public async Task ARequestWhoseClientHasGoneIsDroppedBeforeItIsComputed()
    {
        _ = TestData.Cpu;
        var options = ServerFixture.Options(Path.Combine(Repository.Root, "models", "smiles-llama-small")) with { Batching = new BatchingOptions { MaxDelay = TimeSpan.FromSeconds(2) } };
        await using var server = await BioForgeServer.StartAsync(options);
        using var client = new HttpClient { BaseAddress = new Uri(server.Address) };
        using var gone = new CancellationTokenSource();
        using var content = new StringContent("""{"input":"CCO"}""", Encoding.UTF8, "application/json");
        var request = client.PostAsync("/v1/embeddings", content, gone.Token);
        // Hang up once the request waits in the model's queue (its batch gathers for 2 s).
        for (int i = 0; i < 200 && !(await client.GetStringAsync("/v1/metrics")).Contains("bioforge_queue_depth{queue=\"smiles-llama-small\"} 1", StringComparison.Ordinal); i++)
            await Task.Delay(20);
        gone.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
        string metrics = await ServerFixture.WaitForMetric(client, "bioforge_requests_dropped_total{model=\"smiles-llama-small\"} 1");
        Assert.DoesNotContain("bioforge_batch_size_count{model=\"smiles-llama-small\"}", metrics);
    }
}

public sealed class ScreenJobTimeoutTests
{
    /// <summary>A running screening job has the job timeout: past it the job fails, saying how far it got, and the jobs
    /// worker is free again (it ran without a deadline before).</summary>
    [Fact]
    public async Task AJobRunningPastTheJobTimeoutFailsAndSaysHowFarItGot()
    {
        _ = TestData.Cpu;
        var options = ServerFixture.Options(Path.Combine(Repository.Root, "models", "smiles-llama-small"), Path.Combine(Repository.Root, "models", "dti-davis"))
            with
        { JobTimeout = TimeSpan.FromSeconds(1), MaxRequestBytes = 4 << 20 };
        await using var server = await BioForgeServer.StartAsync(options);
        using var client = new HttpClient { BaseAddress = new Uri(server.Address), Timeout = TimeSpan.FromMinutes(2) };
        string target = ProteinTarget.Resolve(Path.Combine(Repository.Root, "data", "targets", "abl1.fasta")).Sequence;
        string[] library = [.. MoleculeSource.Read(Path.Combine(Repository.Root, "data", "zinc250k", "test.smi.gz")).Take(5000).Select(r => r.Text)];
        async Task<JsonNode> Screen(string[] smiles)
        {
            using var content = new StringContent(JsonSerializer.Serialize(new { target, smiles }), Encoding.UTF8, "application/json");
            var job = JsonNode.Parse(await (await client.PostAsync("/v1/screen", content)).Content.ReadAsStringAsync())!;
            string id = job["id"]!.GetValue<string>();
            JsonNode view;
            var waited = System.Diagnostics.Stopwatch.StartNew();
            do
            {
                await Task.Delay(100);
                view = JsonNode.Parse(await client.GetStringAsync($"/v1/screen/{id}"))!;
            } while (view["status"]!.GetValue<string>() is "queued" or "running" && waited.Elapsed < TimeSpan.FromMinutes(2));
            return view;
        }
        var view = await Screen(library);
        Assert.Equal("failed", view["status"]!.GetValue<string>());
        Assert.Contains("ran past the 1 s job timeout after", view["error"]!.GetValue<string>());
        Assert.True(view["processed"]!.GetValue<long>() < 5000);
        // The jobs worker is free again: a small job after it is taken up and ends (under load the target's features alone
        // may pass this server's 1 s timeout, so either end will do; a wedged worker leaves it queued).
        Assert.Contains((await Screen(library[..3]))["status"]!.GetValue<string>(), new[] { "succeeded", "failed" });
    }
}

public sealed class ServerShutdownTests
{
    /// <summary>The SMILES model served with a 1 s shutdown grace, and a client of it; the test disposes the server.</summary>
    private static async Task<(BioForgeServer Server, HttpClient Client)> StartWithShortGrace(double graceSeconds = 1)
    {
        _ = TestData.Cpu;
        var options = ServerFixture.Options(Path.Combine(Repository.Root, "models", "smiles-llama-small")) with { ShutdownGrace = TimeSpan.FromSeconds(graceSeconds) };
        var server = await BioForgeServer.StartAsync(options);
        return (server, new HttpClient { BaseAddress = new Uri(server.Address), Timeout = TimeSpan.FromMinutes(3) });
    }

    [Fact]
    public async Task ARequestStillRunningAtShutdownGetsACompleteAnswerNotADroppedConnection()
    {
        // Kestrel's 10 s stop grace cut a long /generate at 13 s: the client saw its connection reset.
        var (server, client) = await StartWithShortGrace();
        using var _ = client;
        using var content = new StringContent("""{"smi":"CC(=O)Oc1ccccc1C(=O)O","particles":64,"iterations":100}""", Encoding.UTF8, "application/json");
        var request = client.PostAsync("/generate", content); // minutes of optimization, far past the grace
        await ServerFixture.WaitForMetric(client, "bioforge_queue_busy{queue=\"jobs\"} 1"); // running on the jobs worker
        var stop = server.DisposeAsync().AsTask();
        using var response = await request; // a connection reset would throw here
        string body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("shutting down", JsonNode.Parse(body)!["error"]!["message"]!.GetValue<string>());
        Assert.NotNull(response.Headers.RetryAfter);
        await stop;
    }

    /// <summary>A stream still running when the grace has passed ends with a 503 error event, not a reset connection.</summary>
    [Fact]
    public async Task AStreamStillRunningAtShutdownEndsWithAnErrorEvent()
    {
        // No grace: a stream of the hot raw distribution (128 samples of up to 255 tokens) took about a second on a CI
        // machine, so with a 1 s grace it could end with [DONE] before it was stopped.
        var (server, client) = await StartWithShortGrace(graceSeconds: 0);
        using var _ = client;
        string body = JsonSerializer.Serialize(new { n = 128, max_tokens = 255, temperature = 5, grammar = "none", stream = true, seed = 1 });
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: ", await reader.ReadLineAsync()); // tokens are flowing
        var stop = server.DisposeAsync().AsTask();
        string? last = null;
        while (await reader.ReadLineAsync() is { } line) // a reset connection would throw here
            if (line.Length > 0) last = line;
        Assert.NotNull(last);
        Assert.NotEqual("data: [DONE]", last);
        var error = JsonNode.Parse(last!["data: ".Length..])!["error"]!;
        Assert.Equal(503, error["code"]!.GetValue<int>());
        Assert.Contains("shutting down", error["message"]!.GetValue<string>());
        await stop;
    }

    /// <summary>
    /// <c>bioforge serve</c> under SIGTERM as an orchestrator or a user at a terminal sends it: the first starts the
    /// drain, a second ends the process at once (143), not after the drain (serve ignored it; exiting through .NET's
    /// exit handlers waited for the drain too).
    /// </summary>
    [Fact]
    public void ASecondSigtermEndsServeWithoutWaitingForTheDrain()
    {
        using var serve = Serve(drainSeconds: 600);
        serve.Terminate();
        serve.WaitForLine(TimeSpan.FromMinutes(1), "stopping: finishing requests in flight; SIGTERM again to abort");
        Assert.False(serve.Process.HasExited, serve.Log); // draining for 600 s
        serve.Terminate();
        Assert.True(serve.WaitForExit(TimeSpan.FromMinutes(1)), $"serve went on after a second SIGTERM:\n{serve.Log}");
        Assert.Equal(143, serve.Process.ExitCode);
        Assert.Contains("aborted", serve.Log);
    }

    /// <summary>One SIGTERM and no drain: serve stops and exits 0.</summary>
    [Fact]
    public void OneSigtermStopsServeCleanly()
    {
        using var serve = Serve(drainSeconds: 0);
        serve.Terminate();
        Assert.True(serve.WaitForExit(TimeSpan.FromMinutes(1)), $"serve went on after SIGTERM:\n{serve.Log}");
        Assert.True(serve.Process.ExitCode == 0, serve.Log);
        Assert.DoesNotContain("aborted", serve.Log);
    }

    /// <summary>A <c>bioforge serve</c> process of the tiny ESM-2 model, once it serves.</summary>
    private static LoggedProcess Serve(int drainSeconds)
    {
        var start = new System.Diagnostics.ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "BioForge.Cli.dll"), "serve",
            "--models", TestData.EsmTiny, "--port", "0", "--drain-s", drainSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture), "--device", "cpu", "--threads", "1"]);
        var serve = LoggedProcess.Start(start, "serving on ");
        try
        {
            serve.WaitForLine(TimeSpan.FromMinutes(2));
            return serve;
        }
        catch
        {
            serve.Dispose();
            throw;
        }
    }
}

/// <summary>Alone: the burst measures the server's own service rate, which other tests' CPU use would distort.</summary>
[CollectionDefinition(nameof(ServerLoadSheddingTests), DisableParallelization = true)]
public sealed class ServerLoadSheddingCollection;

[Collection(nameof(ServerLoadSheddingTests))]
public sealed class ServerLoadSheddingTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task ABurstBeyondWhatTheTimeoutAllowsIsShedWith503AtOnceInsteadOfWaitingInto504()
    {
        _ = TestData.Cpu;
        // 200 concurrent clients against a 2 s timeout on a small machine: the queue (1,024) holds them all, so before
        // admission by predicted wait most waited into 504 and none got 503.
        var options = ServerFixture.Options(Path.Combine(Repository.Root, "models", "esm2-small")) with { RequestTimeout = TimeSpan.FromSeconds(2) };
        await using var server = await BioForgeServer.StartAsync(options);
        using var client = new HttpClient { BaseAddress = new Uri(server.Address), Timeout = TimeSpan.FromMinutes(2) };
        string body = JsonSerializer.Serialize(new { input = string.Concat(Enumerable.Repeat("MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", 10)) });
        async Task<(HttpStatusCode Status, TimeSpan Latency, TimeSpan? RetryAfter)> Post()
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            using var content = new StringContent(body, Encoding.UTF8, "application/json");
            using var response = await client.PostAsync("/v1/embeddings", content);
            await response.Content.ReadAsStringAsync();
            return (response.StatusCode, clock.Elapsed, response.Headers.RetryAfter?.Delta);
        }
        // A running server has measured its batches; the first ones of a model are admitted unmeasured.
        for (int i = 0; i < 3; i++) Assert.Equal(HttpStatusCode.OK, (await Post()).Status);

        var answers = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => Task.Run(Post)));
        var shed = answers.Where(a => a.Status == HttpStatusCode.ServiceUnavailable).ToList();
        int ok = answers.Count(a => a.Status == HttpStatusCode.OK), late = answers.Count(a => a.Status == HttpStatusCode.GatewayTimeout);
        string summary = $"{ok} × 200, {shed.Count} × 503, {late} × 504, others: {string.Join(", ", answers.Where(a => a.Status is not (HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout)).Select(a => a.Status))}";
        output.WriteLine(summary);
        Assert.True(ok > 0 && shed.Count > 0, summary);
        Assert.True(ok + shed.Count + late == answers.Length, summary);
        // A few may still time out when the machine slows after they were admitted (other processes); before, half did.
        Assert.True(late <= answers.Length / 10, summary);
        // Shed without waiting out the timeout (before, every refusal was a 504 after the full 2 s), with a Retry-After.
        Assert.True(shed.Select(a => a.Latency).Order().ElementAt(shed.Count / 2) < options.RequestTimeout, summary);
        Assert.All(shed, a => Assert.True(a.RetryAfter >= TimeSpan.FromSeconds(1)));
    }
}

/// <summary>The batcher itself: grouping under the budget, shedding beyond capacity, dropping abandoned requests.</summary>
public sealed class DynamicBatcherTests
{
    /// <summary>
    /// Long work runs in slices: a short piece queued while it runs is answered after the slice in flight, not after the
    /// whole (the old behaviour: one each_position request held every other request for its whole timeout). A kind of
    /// long work is measured from its first slice: measured only at its end, a burst of each_position requests on a
    /// fresh server was admitted unmeasured (estimate zero) while the first ran, and timed out instead of being shed.
    /// </summary>
    [Fact]
    public async Task AShortPieceRunsBetweenTheSlicesOfLongWork()
    {
        using var device = new DeviceWorker("test", 100, new ServerMetrics());
        const int passes = 120; // 3 s of passes: room for a loaded machine to queue the short piece before they end
        int done = 0;
        using var started = new ManualResetEventSlim();
        IEnumerable<int> Passes()
        {
            for (int i = 0; i < passes; i++)
            {
                started.Set();
                Thread.Sleep(25); // about 10 passes per slice
                done++;
                yield return 1;
            }
        }
        var kind = new WorkSize("long", 1);
        Assert.Equal(TimeSpan.Zero, device.Estimate(kind));
        using var work = new BioForge.Runtime.StepwiseWork<int>(Passes(), () => done, passes);
        var sliced = device.RunSlicedAsync(work, CancellationToken.None, kind);
        Assert.True(started.Wait(TimeSpan.FromMinutes(1)));
        var (doneWhenShortRan, estimate) = await device.RunAsync(() => (Volatile.Read(ref done), device.Estimate(kind)), CancellationToken.None, new WorkSize("short", 1));
        Assert.Equal(passes, await sliced);
        Assert.True(doneWhenShortRan < passes, $"the short piece ran after all {passes} passes");
        // Measured while the work was still running (not at its end): the kind has an estimate to price the next request with.
        Assert.NotEqual(TimeSpan.Zero, estimate);

        // Cancelled between slices: the rest is not computed.
        int ran = 0;
        IEnumerable<int> Endless()
        {
            while (true)
            {
                Thread.Sleep(5);
                ran++;
                yield return 1;
            }
        }
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(600));
        using var endless = new BioForge.Runtime.StepwiseWork<int>(Endless(), () => 0);
        // Bounded: cancellation that stopped nothing would otherwise hang the suite instead of failing it.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => device.RunSlicedAsync(endless, cancel.Token, new WorkSize("endless", 1)).WaitAsync(TimeSpan.FromMinutes(1)));
        int after = ran;
        await device.RunAsync(() => 0, CancellationToken.None, new WorkSize("short", 1));
        Assert.Equal(after, ran);
    }

    /// <summary>
    /// A short request arriving while long work runs in slices waits about one slice for it (the slices go round), so it
    /// is admitted: counting the long work's whole remaining time as ahead of it refused every short request for as long
    /// as one each_position request ran.
    /// </summary>
    [Fact]
    public async Task ShortWorkIsAdmittedWhileLongWorkRunsInSlices()
    {
        using var device = new DeviceWorker("test", 100, new ServerMetrics(), maxWait: TimeSpan.FromSeconds(2));
        static IEnumerable<int> Passes(int count, ManualResetEventSlim? started = null)
        {
            for (int i = 0; i < count; i++)
            {
                started?.Set();
                Thread.Sleep(25);
                yield return 1;
            }
        }
        var kind = new WorkSize("long", 1);
        using (var warm = new BioForge.Runtime.StepwiseWork<int>(Passes(4), () => 0, 4))
            await device.RunSlicedAsync(warm, CancellationToken.None, kind);
        // Measured (not zero): four sleeps of 25 ms take at least 0.1 s, so 60 units are predicted far past the admitted wait.
        Assert.True(device.Estimate(kind) >= TimeSpan.FromSeconds(0.05), $"estimate {device.Estimate(kind)}");
        using var started = new ManualResetEventSlim();
        using var stop = new CancellationTokenSource();
        using var work = new BioForge.Runtime.StepwiseWork<int>(Passes(int.MaxValue, started), () => 0, 240);
        var running = device.RunSlicedAsync(work, stop.Token, kind with { Units = 60 }); // about 6 s predicted: 3 times the admitted wait
        Assert.True(started.Wait(TimeSpan.FromMinutes(1)));
        Assert.Equal(1, await device.RunAsync(() => 1, CancellationToken.None, new WorkSize("short", 1)));
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
    }

    /// <summary>
    /// The inputs of one request are admitted together: on an idle server whose first batch was slow (an inflated
    /// estimate), a request of several inputs ran; admitted one by one, its own first inputs counted as work ahead of the
    /// later ones, and it was refused with "work is ahead" at an empty queue, retry after retry.
    /// </summary>
    [Fact]
    public async Task TheInputsOfOneRequestAreNotWorkAheadOfEachOther()
    {
        var metrics = new ServerMetrics();
        using var device = new DeviceWorker("test", 100, metrics, maxWait: TimeSpan.FromSeconds(2));
        var options = new BatchingOptions { MaxBatchItems = 8, MaxDelay = TimeSpan.FromMilliseconds(1), QueueCapacity = 100 };
        bool first = true;
        using var batcher = new DynamicBatcher<int, int>("m", options, _ => 1, inputs =>
        {
            if (first) Thread.Sleep(500); // a cold first batch: 0.5 s for one token
            first = false;
            return inputs;
        }, device, metrics);
        Assert.Equal(1, await batcher.SubmitAsync(1, CancellationToken.None));
        int[] answers = await batcher.SubmitAllAsync([1, 2, 3, 4], CancellationToken.None);
        Assert.Equal(new[] { 1, 2, 3, 4 }, answers);
    }

    /// <summary>A device worker's refusals (the protein and molecule routes' queues) are counted like the batchers'.</summary>
    [Fact]
    public async Task AFullWorkerQueueCountsItsRefusals()
    {
        var metrics = new ServerMetrics();
        using var device = new DeviceWorker("cpu", 1, metrics);
        using var release = new ManualResetEventSlim();
        using var started = new ManualResetEventSlim();
        var running = device.RunAsync(() =>
        {
            started.Set();
            return release.Wait(TimeSpan.FromMinutes(1));
        }, CancellationToken.None, new WorkSize("slow", 1));
        Assert.True(started.Wait(TimeSpan.FromMinutes(1)));
        var waiting = device.RunAsync(() => true, CancellationToken.None, new WorkSize("slow", 1));
        Assert.Equal(503, Assert.Throws<ApiError>(() => { _ = device.RunAsync(() => true, CancellationToken.None, new WorkSize("slow", 1)); }).Status);
        release.Set();
        await Task.WhenAll(running, waiting);
        Assert.Contains("bioforge_requests_rejected_total{queue=\"cpu\"} 1", metrics.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ARequestAfterShutdownIsAnsweredAt503InsteadOfWaitingForever()
    {
        var metrics = new ServerMetrics();
        using var device = new DeviceWorker("test", 100, metrics);
        var options = new BatchingOptions { MaxBatchItems = 4, MaxDelay = TimeSpan.FromMilliseconds(1), QueueCapacity = 100 };
        var batcher = new DynamicBatcher<int, int>("m", options, _ => 1, inputs => inputs, device, metrics);
        Assert.Equal(3, await batcher.SubmitAsync(3, CancellationToken.None));
        batcher.Dispose();
        var e = Assert.Throws<ApiError>(() => { _ = batcher.SubmitAsync(4, CancellationToken.None); });
        Assert.Equal(503, e.Status);

        // A batch still gathering company when the batcher stops is answered (run, or cancelled when the stop came first),
        // not left waiting for ever.
        var gathering = new DynamicBatcher<int, int>("m", options with { MaxDelay = TimeSpan.FromMinutes(10) }, _ => 1, inputs => inputs, device, metrics);
        var pending = gathering.SubmitAsync(5, CancellationToken.None);
        await Task.Delay(200); // taken off the queue into the batch that waits
        gathering.Dispose();
        var ended = await Record.ExceptionAsync(() => pending.WaitAsync(TimeSpan.FromMinutes(1)));
        Assert.True(ended is null or OperationCanceledException, $"the gathered request ended with {ended}");
    }

    [Fact]
    public async Task AWorkerStillRunningSaysSoWhenStoppedSoItsWeightsAreNotFreed()
    {
        using var device = new DeviceWorker("test", 100, new ServerMetrics());
        using var gate = new ManualResetEventSlim();
        var running = device.RunAsync(() => gate.Wait(TimeSpan.FromMinutes(1)), CancellationToken.None, new WorkSize("test", 1));
        Assert.False(device.Stop(TimeSpan.FromMilliseconds(200)));
        gate.Set();
        Assert.True(await running.WaitAsync(TimeSpan.FromMinutes(1)));
        Assert.True(device.Stop(TimeSpan.FromMinutes(1)));
    }

    [Fact]
    public async Task TheWorkerShedsOnPredictedWaitButAlwaysAdmitsWorkWithNothingAhead()
    {
        using var device = new DeviceWorker("test", 100, new ServerMetrics(), maxWait: TimeSpan.FromMilliseconds(400));
        var size = new WorkSize("slow", 10);
        await device.RunAsync(() => { Thread.Sleep(300); return 0; }, CancellationToken.None, size); // measured: at least 30 ms per unit
        // Only the lower bound is certain (the sleep); a busy machine may make the piece take longer.
        Assert.True(device.Estimate(size) >= TimeSpan.FromMilliseconds(250), $"estimate {device.Estimate(size)}");
        // Longer than half the timeout, but nothing is ahead of it: admitted (and measured again). Ten times the measured
        // piece, so it is still predicted to run (3 s or more) however long a loaded machine takes to send the next request.
        using var gate = new ManualResetEventSlim();
        var running = device.RunAsync(() => gate.Wait(TimeSpan.FromMinutes(1)), CancellationToken.None, size with { Units = 100 });
        // Now the running piece is ahead: predicted to end past half the timeout, so refused at once with a Retry-After.
        var refused = Assert.Throws<ApiError>(() => { _ = device.RunAsync(() => 0, CancellationToken.None, size); });
        Assert.Equal(503, refused.Status);
        Assert.Contains("under 50 % of the 0.4 s timeout", refused.Message);
        Assert.NotNull(refused.RetryAfterSeconds); // when the work ahead should have ended
        var batch = device.RunAsync(() => 7, CancellationToken.None, size, admitted: true); // a batch its batcher admitted
        gate.Set();
        Assert.True(await running);
        Assert.Equal(7, await batch);
    }

    [Fact]
    public async Task RequestsWaitingWhileABatchRunsFormTheNextBatchUpToItsLimits()
    {
        var metrics = new ServerMetrics();
        using var device = new DeviceWorker("test", 100, metrics);
        using var gate = new SemaphoreSlim(0);
        using var entered = new SemaphoreSlim(0);
        var batches = new List<int[]>();
        var options = new BatchingOptions { MaxBatchItems = 4, MaxBatchTokens = 100, MaxDelay = TimeSpan.FromMilliseconds(1), QueueCapacity = 100 };
        using var batcher = new DynamicBatcher<int, int>("m", options, x => x, inputs =>
        {
            entered.Release();
            gate.Wait();
            lock (batches) batches.Add([.. inputs]);
            return [.. inputs.Select(x => x * 10)];
        }, device, metrics);
        var first = batcher.SubmitAsync(1, CancellationToken.None);
        Assert.True(await entered.WaitAsync(TimeSpan.FromMinutes(1))); // the first batch (just [1]) is running, held at the gate
        var rest = Enumerable.Range(2, 9).Select(x => batcher.SubmitAsync(x, CancellationToken.None)).ToList();
        var big = batcher.SubmitAsync(95, CancellationToken.None);
        gate.Release(100);
        Assert.Equal(10, await first);
        Assert.Equal(Enumerable.Range(2, 9).Select(x => x * 10), await Task.WhenAll(rest));
        Assert.Equal(950, await big);
        Assert.Equal([1], batches[0]);
        Assert.Equal([2, 3, 4, 5], batches[1]); // the item limit
        Assert.Equal([6, 7, 8, 9], batches[2]);
        Assert.Equal([10], batches[3]); // 10 + 95 would pass the token budget of 100
        Assert.Equal([95], batches[4]);
    }

    [Fact]
    public async Task BeyondCapacityRequestsAreRefusedWith503AndAbandonedOnesAreNeverComputed()
    {
        var metrics = new ServerMetrics();
        using var device = new DeviceWorker("test", 100, metrics);
        using var gate = new SemaphoreSlim(0);
        using var entered = new SemaphoreSlim(0);
        var computed = new List<int>();
        var options = new BatchingOptions { MaxBatchItems = 8, MaxDelay = TimeSpan.FromMilliseconds(1), QueueCapacity = 3 };
        using var batcher = new DynamicBatcher<int, int>("m", options, _ => 1, inputs =>
        {
            entered.Release();
            gate.Wait();
            lock (computed) computed.AddRange(inputs);
            return inputs;
        }, device, metrics);
        var running = batcher.SubmitAsync(0, CancellationToken.None);
        Assert.True(await entered.WaitAsync(TimeSpan.FromMinutes(1))); // [0] runs, held at the gate
        using var abandon = new CancellationTokenSource();
        var waiting = new[] { batcher.SubmitAsync(1, CancellationToken.None), batcher.SubmitAsync(2, abandon.Token), batcher.SubmitAsync(3, CancellationToken.None) };
        var refused = Assert.Throws<ApiError>(() => { _ = batcher.SubmitAsync(4, CancellationToken.None); }); // refused at once, not later
        Assert.Equal(503, refused.Status);
        Assert.Equal(1, refused.RetryAfterSeconds);
        abandon.Cancel();
        gate.Release(100);
        Assert.Equal(0, await running);
        Assert.Equal(1, await waiting[0]);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting[1]);
        Assert.Equal(3, await waiting[2]);
        Assert.Equal([0, 1, 3], computed);
        Assert.Contains("bioforge_requests_rejected_total{queue=\"m\"} 1", metrics.Render());
        Assert.Contains("bioforge_requests_dropped_total{model=\"m\"} 1", metrics.Render());
        // More inputs in one request than the queue holds could never be admitted: 422, not "retry later" for ever.
        var tooMany = await Assert.ThrowsAsync<ApiError>(() => batcher.SubmitAllAsync([5, 6, 7, 8], CancellationToken.None));
        Assert.Equal(422, tooMany.Status);
        Assert.Equal("input", tooMany.Param);
    }
}
