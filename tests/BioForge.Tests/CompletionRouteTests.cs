using System.ClientModel;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using BioForge.Generation;
using BioForge.Models.Llama;
using BioForge.Server;
using OpenAI;
using OpenAI.Embeddings;

namespace BioForge.Tests;

/// <summary><c>POST /v1/completions</c> on a real server: samples equal <c>bioforge generate</c>'s, OpenAI's shapes, errors, official clients.</summary>
public sealed class CompletionRouteTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private const string Model = "smiles-llama-small";
    private readonly HttpClient client = fixture.Client;

    private static readonly Lazy<LlamaCheckpoint> Checkpoint = new(() => LlamaCheckpoint.Load(Path.Combine(Repository.Root, "models", Model), TestData.Cpu.Device, TestData.Cpu.DType));

    private static IReadOnlyList<GeneratedMolecule> Generate(int n, SamplingOptions options, ulong seed, bool validOnly = false, string prompt = "")
    {
        lock (Checkpoint)
        {
            // The route decodes under the SMILES grammar unless asked not to (grammar: none); so does generate.
            var generator = new SmilesGenerator(Checkpoint.Value);
            return generator.Generate(n, options.Grammar is null ? options with { Grammar = generator.Grammar } : options, seed, batchSize: 1, validOnly, prompt: prompt);
        }
    }

    private async Task<(HttpStatusCode Status, string Text)> Post(object body)
    {
        using var content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse("application/json");
        using var response = await client.PostAsync("/v1/completions", content);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static string[] Texts(JsonNode body) => [.. body["choices"]!.AsArray().OrderBy(c => c!["index"]!.GetValue<int>()).Select(c => c!["text"]!.GetValue<string>())];

    /// <summary>
    /// Three requests at once (plain, streamed, with a prompt) share the running batch, each with its own settings; every
    /// sample equals what <c>bioforge generate</c> draws alone (batch size 1) for the same seed and settings.
    /// </summary>
    [Fact]
    public async Task SamplesEqualTheGenerateCommandsWhateverRunsBeside()
    {
        var plainTask = Post(new { model = Model, n = 6, seed = 21, top_k = 20, max_tokens = 60, logprobs = 0 });
        var streamTask = Stream(new { model = Model, n = 4, seed = 3, temperature = 1.4, top_p = 0.9, stream = true, max_tokens = 50 });
        var promptTask = Post(new { model = Model, n = 3, seed = 21, prompt = "c1ccccc1", max_tokens = 100 });
        var validTask = Post(new { model = Model, n = 3, seed = 8, valid_only = true });
        var penaltyTask = Post(new { model = Model, n = 4, seed = 5, max_tokens = 80, repetition_penalty = 1.5, presence_penalty = 0.5, frequency_penalty = 0.3 });
        var greedyTask = Post(new { model = Model, n = 2, seed = 4, temperature = 0, max_tokens = 40 });
        var negativeTask = Post(new { model = Model, n = 2, seed = -1, max_tokens = 40 });
        var (status, text) = await plainTask;
        Assert.Equal(HttpStatusCode.OK, status);
        var plain = JsonNode.Parse(text)!;
        var expected = Generate(6, new SamplingOptions { TopK = 20, MaxNewTokens = 60 }, 21);
        Assert.Equal(expected.Select(m => m.Smiles), Texts(plain));
        Assert.Equal("text_completion", plain["object"]!.GetValue<string>());
        Assert.Equal(21UL, plain["seed"]!.GetValue<ulong>());
        var choices = plain["choices"]!.AsArray();
        for (int i = 0; i < 6; i++)
        {
            Assert.Equal(expected[i].Finished ? "stop" : "length", choices[i]!["finish_reason"]!.GetValue<string>());
            Assert.Equal(expected[i].LogLikelihood, choices[i]!["log_likelihood"]!.GetValue<double>(), 1e-4); // float32 rounding differs with the batch it ran in
            var tokenLogprobs = choices[i]!["logprobs"]!["token_logprobs"]!.AsArray().Select(v => v!.GetValue<double>()).ToList();
            var tokens = choices[i]!["logprobs"]!["tokens"]!.AsArray().Select(t => t!.GetValue<string>()).ToList();
            Assert.Equal(string.Concat(tokens), expected[i].Smiles);
            // logprobs 0: each position's top_logprobs is the sampled token alone (OpenAI: up to logprobs + 1, the sampled one always).
            var tops = choices[i]!["logprobs"]!["top_logprobs"]!.AsArray();
            for (int j = 0; j < tokens.Count; j++)
                Assert.Equal(tokenLogprobs[j], Assert.Single(tops[j]!.AsObject(), p => p.Key == tokens[j]).Value!.GetValue<double>());
            // The end token's log-probability is in the likelihood, not among the text's tokens (0 when the grammar allows nothing else).
            Assert.True(expected[i].Finished ? tokenLogprobs.Sum() >= expected[i].LogLikelihood - 1e-4 : Math.Abs(tokenLogprobs.Sum() - expected[i].LogLikelihood) < 1e-4,
                $"sample {i} ({(expected[i].Finished ? "finished" : "cut")}): token log-probabilities sum to {tokenLogprobs.Sum()}, likelihood {expected[i].LogLikelihood}");
        }
        int generated = choices.Sum(c => c!["logprobs"]!["tokens"]!.AsArray().Count + (c["finish_reason"]!.GetValue<string>() == "stop" ? 1 : 0));
        Assert.Equal(generated, plain["usage"]!["completion_tokens"]!.GetValue<int>());
        Assert.Equal(1, plain["usage"]!["prompt_tokens"]!.GetValue<int>());

        // Hot sampling with one alternative: the sampled token is there even where it was not the most probable.
        var (hotStatus, hotText) = await Post(new { model = Model, n = 4, seed = 9, temperature = 1.8, max_tokens = 30, logprobs = 1 });
        Assert.Equal(HttpStatusCode.OK, hotStatus);
        int notBest = 0;
        foreach (var choice in JsonNode.Parse(hotText)!["choices"]!.AsArray())
        {
            var hotTokens = choice!["logprobs"]!["tokens"]!.AsArray().Select(t => t!.GetValue<string>()).ToList();
            var hotTops = choice["logprobs"]!["top_logprobs"]!.AsArray().Select(t => t!.AsObject()).ToList();
            for (int j = 0; j < hotTokens.Count; j++)
            {
                Assert.InRange(hotTops[j].Count, 1, 2);
                Assert.True(hotTops[j].ContainsKey(hotTokens[j]), $"position {j}: sampled '{hotTokens[j]}' not among {hotTops[j].ToJsonString()}");
                if (hotTops[j].Count == 2) notBest++;
            }
        }
        Assert.True(notBest > 0, "no sampled token outside the top 1: the test shows nothing");

        var streamed = await streamTask;
        Assert.Equal(Generate(4, new SamplingOptions { Temperature = 1.4, TopP = 0.9, MaxNewTokens = 50 }, 3).Select(m => m.Smiles), streamed.Texts);

        var withPrompt = JsonNode.Parse((await promptTask).Text)!;
        Assert.Equal(Generate(3, new SamplingOptions { MaxNewTokens = 100 }, 21, prompt: "c1ccccc1").Select(m => m.Smiles), Texts(withPrompt).Select(t => "c1ccccc1" + t));

        var valid = JsonNode.Parse((await validTask).Text)!;
        var expectedValid = Generate(3, new SamplingOptions(), 8, validOnly: true);
        Assert.Equal(expectedValid.Select(m => m.Canonical!), Texts(valid));
        Assert.Equal(expectedValid[^1].Index + 1, valid["samples"]!.GetValue<int>());

        var penalties = new SamplingOptions { MaxNewTokens = 80, RepetitionPenalty = 1.5, PresencePenalty = 0.5, FrequencyPenalty = 0.3 };
        var penalised = Texts(JsonNode.Parse((await penaltyTask).Text)!);
        Assert.Equal(Generate(4, penalties, 5).Select(m => m.Smiles), penalised);
        Assert.NotEqual(Generate(4, new SamplingOptions { MaxNewTokens = 80 }, 5).Select(m => m.Smiles), penalised);

        // Temperature 0 takes the most probable token, in the route and in generate alike: every sample the same.
        var greedy = Texts(JsonNode.Parse((await greedyTask).Text)!);
        Assert.Equal(Generate(2, new SamplingOptions { Temperature = 0, MaxNewTokens = 40 }, 4).Select(m => m.Smiles), greedy);
        Assert.Single(greedy.Distinct());

        // Any int64 seed is taken (vLLM's range); a negative one is the same 64 bits as generate's unsigned seed, and is echoed as sent.
        var negative = JsonNode.Parse((await negativeTask).Text)!;
        Assert.Equal(-1L, negative["seed"]!.GetValue<long>());
        Assert.Equal(Generate(2, new SamplingOptions { MaxNewTokens = 40 }, ulong.MaxValue).Select(m => m.Smiles), Texts(negative));
    }

    private sealed record Streamed(string[] Texts, string?[] Finish, int Events, bool Done);

    /// <summary>
    /// <c>min_tokens</c> (vLLM's): the end token is not drawn before it, and each sample equals <c>bioforge generate
    /// --min-length</c>'s for the seed, log-probabilities the model's (as with the penalties). No sample ends sooner, on the
    /// raw distribution or under the SMILES grammar, which holds back with the end the tokens after which only the end
    /// could come (an atom with no valence left, a ring closure its aromatic ring needs the last valence of).
    /// </summary>
    [Fact]
    public async Task MinTokensKeepsEverySampleGoingAsGenerateMinLengthDoes()
    {
        static int TokenCount(JsonNode? choice) => choice!["logprobs"]!["tokens"]!.AsArray().Count;
        async Task<JsonArray> Choices(object body)
        {
            var (status, text) = await Post(body);
            Assert.True(status == HttpStatusCode.OK, text);
            return JsonNode.Parse(text)!["choices"]!.AsArray();
        }
        var free = await Choices(new { model = Model, n = 16, seed = 13, max_tokens = 80, logprobs = 0 });
        int shortFree = free.Count(c => c!["finish_reason"]!.GetValue<string>() == "stop" && TokenCount(c) < 40);
        Assert.True(shortFree >= 4, $"{shortFree} of 16 samples end before 40 tokens: the test shows little");

        var held = await Choices(new { model = Model, n = 16, seed = 13, max_tokens = 80, min_tokens = 40, logprobs = 0 });
        var expected = Generate(16, new SamplingOptions { MaxNewTokens = 80, MinNewTokens = 40 }, 13);
        Assert.Equal(expected.Select(m => m.Smiles), held.Select(c => c!["text"]!.GetValue<string>()));
        for (int i = 0; i < 16; i++) Assert.Equal(expected[i].LogLikelihood, held[i]!["log_likelihood"]!.GetValue<double>(), 1e-4);
        Assert.All(held, c => Assert.True(TokenCount(c) >= 40, $"{TokenCount(c)} tokens: {c!["text"]}"));

        var raw = await Choices(new { model = Model, n = 16, seed = 13, max_tokens = 80, min_tokens = 40, logprobs = 0, grammar = "none" });
        Assert.All(raw, c => Assert.True(TokenCount(c) >= 40, $"{TokenCount(c)} tokens: {c!["text"]}"));

        // As in vLLM a stop string does not end a sample before min_tokens either (the token that completes a
        // one-character stop leaves with the cut text: one fewer).
        var stopped = await Choices(new { model = Model, n = 16, seed = 13, max_tokens = 80, stop = "C", logprobs = 0 });
        Assert.Contains(stopped, c => TokenCount(c) < 5);
        var stoppedLater = await Choices(new { model = Model, n = 16, seed = 13, max_tokens = 80, min_tokens = 12, stop = "C", logprobs = 0 });
        Assert.All(stoppedLater, c => Assert.True(TokenCount(c) >= 11, $"{TokenCount(c)} tokens: {c!["text"]}"));
    }

    /// <summary>
    /// A batch of prompts (OpenAI's and vLLM's array): choice p·n + i is sample i of prompt p, what a request of that prompt
    /// alone answers with seed + p — plain, streamed and valid_only — and usage counts each prompt once.
    /// </summary>
    [Fact]
    public async Task ABatchOfPromptsAnswersEachAsARequestOfItsOwn()
    {
        string[] prompts = ["", "c1ccccc1", "CC(=O)N"];
        var (status, text) = await Post(new { model = Model, prompt = prompts, n = 3, seed = 11, max_tokens = 60, logprobs = 0 });
        Assert.True(status == HttpStatusCode.OK, text);
        var batch = JsonNode.Parse(text)!;
        var texts = Texts(batch);
        Assert.Equal(9, texts.Length);
        int promptTokens = 0, completionTokens = 0;
        for (int p = 0; p < prompts.Length; p++)
        {
            var (aloneStatus, aloneText) = await Post(new { model = Model, prompt = prompts[p], n = 3, seed = 11 + p, max_tokens = 60, logprobs = 0 });
            Assert.Equal(HttpStatusCode.OK, aloneStatus);
            var alone = JsonNode.Parse(aloneText)!;
            Assert.Equal(Texts(alone), texts[(3 * p)..(3 * p + 3)]);
            Assert.Equal(Generate(3, new SamplingOptions { MaxNewTokens = 60 }, (ulong)(11 + p), prompt: prompts[p]).Select(m => m.Smiles), Texts(alone).Select(t => prompts[p] + t));
            promptTokens += alone["usage"]!["prompt_tokens"]!.GetValue<int>();
            completionTokens += alone["usage"]!["completion_tokens"]!.GetValue<int>();
        }
        Assert.Equal(promptTokens, batch["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.Equal(completionTokens, batch["usage"]!["completion_tokens"]!.GetValue<int>());

        var streamed = await Stream(new { model = Model, prompt = prompts, n = 3, seed = 11, max_tokens = 60, stream = true });
        Assert.Equal(texts, streamed.Texts);

        var (validStatus, validText) = await Post(new { model = Model, prompt = new[] { "", "c1ccccc1" }, n = 2, seed = 8, valid_only = true });
        Assert.True(validStatus == HttpStatusCode.OK, validText);
        var valid = JsonNode.Parse(validText)!;
        var expectedDeNovo = Generate(2, new SamplingOptions(), 8, validOnly: true);
        var expectedBenzene = Generate(2, new SamplingOptions(), 9, validOnly: true, prompt: "c1ccccc1");
        Assert.Equal(expectedDeNovo.Concat(expectedBenzene).Select(m => m.Canonical!), Texts(valid));
        Assert.Equal(expectedDeNovo[^1].Index + 1 + expectedBenzene[^1].Index + 1, valid["samples"]!.GetValue<int>());

        // Equal prompts (a client batching "" for more de novo molecules) get samples of their own; without a seed, the
        // answer's seed repeats them.
        var (_, equalText) = await Post(new { model = Model, prompt = new[] { "", "" }, n = 2, max_tokens = 60, seed = 5 });
        var equal = Texts(JsonNode.Parse(equalText)!);
        Assert.Equal(Generate(2, new SamplingOptions { MaxNewTokens = 60 }, 6).Select(m => m.Smiles), equal[2..]);
        Assert.NotEqual(equal[..2], equal[2..]);
        var (unseededStatus, unseededText) = await Post(new { model = Model, prompt = new[] { "", "" }, n = 2, max_tokens = 60 });
        Assert.True(unseededStatus == HttpStatusCode.OK, unseededText);
        var unseeded = JsonNode.Parse(unseededText)!;
        var (_, repeatedText) = await Post(new { model = Model, prompt = new[] { "", "" }, n = 2, max_tokens = 60, seed = unseeded["seed"]!.GetValue<long>() });
        Assert.Equal(Texts(unseeded), Texts(JsonNode.Parse(repeatedText)!));
    }

    /// <summary>Reads a streamed answer: every event is JSON in OpenAI's chunk shape until <c>[DONE]</c>.</summary>
    private async Task<Streamed> Stream(object body)
    {
        using var content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = content };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var texts = new Dictionary<int, StringBuilder>();
        var finish = new Dictionary<int, string?>();
        int events = 0;
        bool done = false;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.Length == 0) continue;
            Assert.StartsWith("data: ", line);
            Assert.False(done, "an event after [DONE]");
            string data = line["data: ".Length..];
            if (data == "[DONE]")
            {
                done = true;
                continue;
            }
            events++;
            var chunk = JsonNode.Parse(data)!;
            Assert.Equal("text_completion", chunk["object"]!.GetValue<string>());
            Assert.NotNull(chunk["seed"]); // a stream with a drawn seed can be repeated
            Assert.True(chunk.AsObject().ContainsKey("usage"), "a chunk without usage (OpenAI and vLLM write null until the last)");
            foreach (var choice in chunk["choices"]!.AsArray())
            {
                int index = choice!["index"]!.GetValue<int>();
                Assert.False(finish.GetValueOrDefault(index) is not null, $"text for sample {index} after its finish reason");
                (texts.TryGetValue(index, out var sb) ? sb : texts[index] = new StringBuilder()).Append(choice["text"]!.GetValue<string>());
                Assert.True(choice.AsObject().ContainsKey("finish_reason"), "a chunk's choice without finish_reason (OpenAI writes null until the end)");
                finish[index] = choice["finish_reason"]?.GetValue<string>();
            }
        }
        Assert.True(done, "the stream did not end with data: [DONE]");
        Assert.All(finish.Values, f => Assert.Contains(f, new[] { "stop", "length" }));
        return new Streamed([.. texts.OrderBy(kv => kv.Key).Select(kv => kv.Value.ToString())], [.. finish.OrderBy(kv => kv.Key).Select(kv => kv.Value)], events, done);
    }

    [Fact]
    public async Task StopStringsCutTheTextBeforeThemAlsoWhenStreamed()
    {
        var full = Generate(4, new SamplingOptions { MaxNewTokens = 80 }, 5).Select(m => m.Smiles).ToArray();
        Assert.Contains(full, s => s.Contains('(')); // the stop string occurs in some samples
        var (status, text) = await Post(new { model = Model, n = 4, seed = 5, max_tokens = 80, stop = new[] { "(", "[NH" } });
        Assert.Equal(HttpStatusCode.OK, status);
        string Cut(string s) => new[] { s.IndexOf('(', StringComparison.Ordinal), s.IndexOf("[NH", StringComparison.Ordinal) }.Where(i => i >= 0).DefaultIfEmpty(s.Length).Min() is int at ? s[..at] : s;
        Assert.Equal(full.Select(Cut), Texts(JsonNode.Parse(text)!));
        // The log-probabilities are of the tokens the text holds: none of a cut stop string, also one of two tokens ("c", "1").
        Assert.Contains(full, s => s.Contains("c1", StringComparison.Ordinal));
        Assert.Contains(full, s => s.Contains("[C@H]", StringComparison.Ordinal)); // "@H" stops inside the token "[C@H]": its "[C" is text, with its log-probability
        foreach (var stops in new[] { new[] { "(", "[NH" }, ["c1"], ["@H"] })
        {
            var (_, answer) = await Post(new { model = Model, n = 4, seed = 5, max_tokens = 80, stop = stops, logprobs = 0 });
            foreach (var choice in JsonNode.Parse(answer)!["choices"]!.AsArray())
                Assert.Equal(choice!["text"]!.GetValue<string>(), string.Concat(choice["logprobs"]!["tokens"]!.AsArray().Select(t => t!.GetValue<string>())));
        }
        var streamed = await Stream(new { model = Model, n = 4, seed = 5, max_tokens = 80, stop = new[] { "(", "[NH" }, stream = true });
        Assert.Equal(full.Select(Cut), streamed.Texts);
    }

    /// <summary>Without <c>model</c> the only decoder served answers (an encoder beside it is no candidate); a temperature
    /// near 0 samples the best tokens instead of overflowing.</summary>
    [Fact]
    public async Task TheOnlyDecoderIsTheDefaultAndATinyTemperatureIsGreedy()
    {
        var (status, text) = await Post(new { n = 2, seed = 7, max_tokens = 40, temperature = 1e-300 });
        Assert.Equal(HttpStatusCode.OK, status);
        var body = JsonNode.Parse(text)!;
        Assert.Equal(Model, body["model"]!.GetValue<string>());
        var texts = Texts(body);
        Assert.Equal(Generate(2, new SamplingOptions { Temperature = 1e-300, MaxNewTokens = 40 }, 7).Select(m => m.Smiles), texts);
        Assert.Equal(texts[0], texts[1]); // one token has all the mass at every step: both samples are the greedy one

        // OpenAI's optional fields may be sent as null (clients do): each means its default.
        var (nullStatus, nullText) = await Post(new
        {
            n = (int?)null,
            seed = 7,
            max_tokens = 30,
            temperature = (double?)null,
            top_p = (double?)null,
            top_k = (int?)null,
            presence_penalty = (double?)null,
            frequency_penalty = (double?)null,
            repetition_penalty = (double?)null,
            stream = (bool?)null,
            echo = (bool?)null,
            valid_only = (bool?)null,
            stream_options = new { include_usage = (bool?)null },
        });
        Assert.True(nullStatus == HttpStatusCode.OK, nullText);
        Assert.Equal(Generate(1, new SamplingOptions { MaxNewTokens = 30 }, 7).Select(m => m.Smiles), Texts(JsonNode.Parse(nullText)!));
    }

    [Fact]
    public async Task BadRequestsAreRefusedNamingTheField()
    {
        async Task Refused(object body, HttpStatusCode status, string? param, string part)
        {
            var (code, text) = await Post(body);
            Assert.Equal(status, code);
            var error = JsonNode.Parse(text)!["error"]!;
            Assert.Contains(part, error["message"]!.GetValue<string>(), StringComparison.Ordinal);
            if (param is not null) Assert.Equal(param, error["param"]!.GetValue<string>());
        }
        // The choices named are the decoders, not the encoders served beside them.
        await Refused(new { model = "nope" }, HttpStatusCode.NotFound, "model", $"'nope' is not served here; decoders served: {Model}");
        await Refused(new { model = "esm2-small" }, HttpStatusCode.UnprocessableEntity, "model", "does not generate");
        await Refused(new { model = Model, n = 0 }, HttpStatusCode.UnprocessableEntity, "n", "n must be 1–128");
        await Refused(new { model = Model, max_tokens = 10_000 }, HttpStatusCode.UnprocessableEntity, "max_tokens", "max_tokens must be 1–255");
        await Refused(new { model = Model, temperature = -1 }, HttpStatusCode.UnprocessableEntity, "temperature", "temperature");
        await Refused(new { model = Model, top_p = 0 }, HttpStatusCode.UnprocessableEntity, "top_p", "top_p");
        await Refused(new { model = Model, top_k = -2 }, HttpStatusCode.UnprocessableEntity, "top_k", "top_k must be −1 or 0 (all tokens) or positive (got -2)");
        await Refused(new { model = Model, logprobs = 9 }, HttpStatusCode.UnprocessableEntity, "logprobs", "logprobs must be 0–5");
        await Refused(new { model = Model, presence_penalty = 2.5 }, HttpStatusCode.UnprocessableEntity, "presence_penalty", "presence_penalty must be −2 to 2");
        await Refused(new { model = Model, repetition_penalty = 0.0 }, HttpStatusCode.UnprocessableEntity, "repetition_penalty", "repetition_penalty must be positive");
        await Refused(new { model = Model, min_tokens = -1 }, HttpStatusCode.UnprocessableEntity, "min_tokens", "min_tokens must be 0 or more");
        await Refused(new { model = Model, min_tokens = 50, max_tokens = 10 }, HttpStatusCode.UnprocessableEntity, "min_tokens", "min_tokens (50) must be at most max_tokens (10)");
        await Refused(new { model = Model, min_tokens = 400 }, HttpStatusCode.UnprocessableEntity, "min_tokens", "min_tokens must be at most 255 for this prompt");
        await Refused(new { model = Model, stop = new[] { "a", "b", "c", "d", "e" } }, HttpStatusCode.UnprocessableEntity, "stop", "at most 4");
        await Refused(new { model = Model, stop = 5 }, HttpStatusCode.BadRequest, "stop", "stop must be a string");
        await Refused(new { model = Model, stop = "" }, HttpStatusCode.UnprocessableEntity, "stop", "stop must have 1–64 characters");
        await Refused(new { model = Model, stop = new[] { "C", "" } }, HttpStatusCode.UnprocessableEntity, "stop[1]", "stop[1] must have 1–64 characters");
        await Refused(new { model = Model, stream_options = new { include_usage = true } }, HttpStatusCode.UnprocessableEntity, "stream_options", "stream_options.include_usage is only allowed when stream is true");
        // A prompt after which the grammar allows fewer tokens than the minimum cannot give it (O=C=O was answered with an empty sample).
        await Refused(new { model = Model, prompt = "O=C=O", min_tokens = 3 }, HttpStatusCode.UnprocessableEntity, "min_tokens", "after the prompt ('O=C=O') the smiles grammar allows only the end");
        await Refused(new { model = Model, prompt = "CC(F)(F)(F", min_tokens = 2 }, HttpStatusCode.UnprocessableEntity, "min_tokens", "allows 1 more token(s), then only the end");
        var (forcedStatus, forcedText) = await Post(new { model = Model, prompt = "CC(F)(F)(F", min_tokens = 1, seed = 3 });
        Assert.True(forcedStatus == HttpStatusCode.OK, forcedText);
        Assert.Equal(")", Texts(JsonNode.Parse(forcedText)!)[0]);
        await Refused(new { model = Model, prompt = "C[Xe]" }, HttpStatusCode.UnprocessableEntity, "prompt", "outside the model's vocabulary: '[Xe]' at character 2");
        await Refused(new { model = Model, prompt = "c1cc1", valid_only = true, n = 1, max_tokens = 40 }, HttpStatusCode.UnprocessableEntity, "prompt", "'c1cc1' may start none");
        await Refused(new { model = Model, prompt = "C)" }, HttpStatusCode.UnprocessableEntity, "prompt", "the prompt's token 2 (')') is not allowed there by the smiles grammar");
        // In a batch of prompts, the one at fault is named.
        await Refused(new { model = Model, prompt = new[] { "C", "C[Xe]" } }, HttpStatusCode.UnprocessableEntity, "prompt[1]", "prompt[1]: ");
        await Refused(new { model = Model, prompt = new[] { "c1ccccc1", "C)" } }, HttpStatusCode.UnprocessableEntity, "prompt[1]", "is not allowed there by the smiles grammar");
        await Refused(new { model = Model, prompt = new object[] { "C", 5 } }, HttpStatusCode.BadRequest, "prompt", "token ids are not taken here");
        await Refused(new { model = Model, prompt = new object[] { "C", true } }, HttpStatusCode.BadRequest, "prompt[1]", "prompt[1] must be a string");
        await Refused(new { model = Model, prompt = new[] { "C", "O", "N" }, n = 50 }, HttpStatusCode.UnprocessableEntity, "n", "n × prompts must be at most 128 (got 50 × 3)");
        await Refused(new { model = Model, prompt = new[] { "C", "c1cc1" }, valid_only = true, n = 1, max_tokens = 40 }, HttpStatusCode.UnprocessableEntity, "prompt[1]",
            "none of 100 samples continuing prompt[1] was a valid molecule: 'c1cc1' may start none");
        await Refused(new { model = Model, valid_only = true, stream = true }, HttpStatusCode.UnprocessableEntity, "valid_only", "cannot be streamed");
        await Refused(new { model = Model, valid_only = true, n = 1, max_tokens = 1 }, HttpStatusCode.UnprocessableEntity, "max_tokens", "100 were cut at max_tokens (1): raise max_tokens");
        // With a prompt too: samples cut short say nothing of the prompt (benzene was blamed for max_tokens 3).
        await Refused(new { model = Model, prompt = "c1ccccc1", valid_only = true, n = 4, max_tokens = 3, seed = 1 }, HttpStatusCode.UnprocessableEntity, "max_tokens", "raise max_tokens");
        await Refused(new { model = Model, echo = true }, HttpStatusCode.UnprocessableEntity, "echo", "echo");
        await Refused(new { model = Model, best_of = 2 }, HttpStatusCode.UnprocessableEntity, "best_of", "best_of must be 1");
        await Refused(new { model = Model, logit_bias = new Dictionary<string, int> { ["5"] = 10 } }, HttpStatusCode.UnprocessableEntity, "logit_bias", "not supported");
        await Refused(new { model = Model, suffix = "O" }, HttpStatusCode.UnprocessableEntity, "suffix", "not supported");
        await Refused(new { model = Model, prompt = new[] { 1, 2, 3 } }, HttpStatusCode.BadRequest, "prompt", "token ids are not taken here");
        await Refused(new { model = Model, prompt = Array.Empty<string>() }, HttpStatusCode.UnprocessableEntity, "prompt", "the array holds no prompt");
        await Refused(new { model = Model, frequency_penalty = 0, typo_field = 1 }, HttpStatusCode.BadRequest, "typo_field", "unknown field");
        // What OpenAI's defaults mean is taken as sent (LangChain's OpenAI sends logit_bias {} and best_of 1 on every call).
        var (status, text) = await Post(new { model = Model, max_tokens = 4, logit_bias = new Dictionary<string, int>(), best_of = 1, suffix = (string?)null });
        Assert.True(status == HttpStatusCode.OK, text);
        // A drawn seed survives JavaScript's numbers (below 2^53), so a browser or openai-node client can send it back.
        Assert.InRange(JsonNode.Parse(text)!["seed"]!.GetValue<ulong>(), 0UL, 1UL << 53);
        await Refused(new { model = Model, n = "2" }, HttpStatusCode.BadRequest, "n", "malformed");
    }

    [Fact]
    public async Task TheServiceDescribesAndCountsCompletions()
    {
        Assert.Equal(HttpStatusCode.OK, (await Post(new { model = Model, n = 2, max_tokens = 5 })).Status);
        string openApi = await client.GetStringAsync("/v1/openapi.json");
        Assert.Contains("\"/v1/completions\"", openApi, StringComparison.Ordinal);
        // Both answers are declared: the JSON one and the event stream (a second Produces replaced the first).
        var content = JsonNode.Parse(openApi)!["paths"]!["/v1/completions"]!["post"]!["responses"]!["200"]!["content"]!.AsObject();
        Assert.True(content.ContainsKey("application/json") && content.ContainsKey("text/event-stream"), content.ToJsonString());
        // valid_only reads molecules with RDKit: a server without it answers 501, declared as such.
        Assert.NotNull(JsonNode.Parse(openApi)!["paths"]!["/v1/completions"]!["post"]!["responses"]!["501"]);
        string metrics = await client.GetStringAsync("/v1/metrics");
        Assert.Contains($"bioforge_time_to_first_token_seconds_count{{model=\"{Model}\"}}", metrics, StringComparison.Ordinal);
        Assert.Contains($"bioforge_decode_running_sequences{{model=\"{Model}\"}}", metrics, StringComparison.Ordinal);
        Assert.Contains($"bioforge_batch_size_count{{model=\"{Model}:decode\"}}", metrics, StringComparison.Ordinal);
    }

    /// <summary>
    /// A client that leaves mid-stream: its slots are free again and the server goes on serving. (Weak: 16 samples also
    /// end on their own within the wait, and whether any was still running when the close was seen depends on the
    /// machine — asserting that one was counted in bioforge_sequences_cancelled_total failed on CI.)
    /// </summary>
    [Fact]
    public async Task AClientLeavingMidStreamFreesItsSlots()
    {
        using var content = new StringContent(JsonSerializer.Serialize(new { model = Model, n = 16, seed = 1, temperature = 3.0, stream = true }), Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse("application/json");
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = content })
        using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            Assert.StartsWith("data: {", await reader.ReadLineAsync());
        } // disposed: the connection closes with most samples unfinished
        var clock = Stopwatch.StartNew();
        while (Running() > 0 && clock.Elapsed < TimeSpan.FromSeconds(20)) await Task.Delay(50);
        Assert.Equal(0, Running());
        Assert.Equal(HttpStatusCode.OK, (await Post(new { model = Model, n = 1, max_tokens = 3 })).Status);
        Assert.Contains("# TYPE bioforge_sequences_cancelled_total counter", await client.GetStringAsync("/v1/metrics"), StringComparison.Ordinal);

        int Running()
        {
            string metrics = client.GetStringAsync("/v1/metrics").Result;
            string line = metrics.Split('\n').Single(l => l.StartsWith($"bioforge_decode_running_sequences{{model=\"{Model}\"}}", StringComparison.Ordinal));
            return int.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    /// <summary>
    /// OpenAI's official clients: the <c>openai</c> npm package's <c>completions.create</c>, plain and streamed (they
    /// agree with each other and with <c>bioforge generate</c>; a refused request is its <c>APIError</c>), and the
    /// <c>OpenAI</c> NuGet package's <c>EmbeddingClient</c> (base64 by default) against <c>/v1/embeddings</c>.
    /// </summary>
    [Fact]
    public async Task OfficialOpenAiClientsWork()
    {
        var info = new ProcessStartInfo("node", [Path.Combine(Repository.Root, "tests", "browser", "completions.mjs"), fixture.Server.Address, Model, "11"])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var node = Process.Start(info)!;
        var output = node.StandardOutput.ReadToEndAsync();
        var error = node.StandardError.ReadToEndAsync();
        Assert.True(await Task.Run(() => node.WaitForExit(TimeSpan.FromMinutes(2))), "completions.mjs did not finish within 2 minutes");
        Assert.True(node.ExitCode == 0, $"completions.mjs: {await output} {await error}");
        var result = JsonNode.Parse(await output)!;
        var expected = Generate(3, new SamplingOptions { MaxNewTokens = 60 }, 11).Select(m => m.Smiles).ToArray();
        Assert.Equal(expected, Texts(result["plain"]!));
        Assert.Equal(expected, result["streamed"]!["texts"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.Equal(result["plain"]!["usage"]!.ToJsonString(), result["streamed"]!["usage"]!.ToJsonString());
        Assert.True(result["streamed"]!["chunks"]!.GetValue<int>() > expected.Sum(s => s.Length) / 6, "the stream came in pieces");
        // The batch's first prompt is the plain request's (its first two samples), its second continues benzene with seed + 1.
        var batch = Texts(result["batch"]!);
        Assert.Equal(expected[..2], batch[..2]);
        Assert.Equal(Generate(2, new SamplingOptions { MaxNewTokens = 60 }, 12, prompt: "c1ccccc1").Select(m => m.Smiles), batch[2..].Select(t => "c1ccccc1" + t));
        Assert.Equal(422, result["refused"]!["status"]!.GetValue<int>());
        Assert.Equal("n", result["refused"]!["param"]!.GetValue<string>());

        var embeddings = new EmbeddingClient("esm2-small", new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(fixture.Server.Address + "/v1") });
        string[] inputs = ["MKTAYIAKQRQISFVKSHFSRQ", "MKV"];
        var answer = (await embeddings.GenerateEmbeddingsAsync(inputs)).Value;
        using var content = new StringContent(JsonSerializer.Serialize(new { model = "esm2-small", input = inputs }), Encoding.UTF8, "application/json");
        var plain = JsonNode.Parse(await (await client.PostAsync("/v1/embeddings", content)).Content.ReadAsStringAsync())!;
        Assert.Equal(2, answer.Count);
        for (int i = 0; i < inputs.Length; i++)
        {
            Assert.Equal(i, answer[i].Index);
            Assert.Equal(plain["data"]![i]!["embedding"]!.AsArray().Select(v => v!.GetValue<float>()), answer[i].ToFloats().ToArray());
        }
        Assert.Equal(inputs.Sum(s => s.Length + 2), answer.Usage.InputTokenCount);
        Assert.Equal("esm2-small", answer.Model);
    }
}

/// <summary>A server whose decode queue is small: a full queue sheds with 503, a request larger than the queue is refused.</summary>
public sealed class CompletionQueueTests
{
    [Fact]
    public async Task AFullQueueShedsWith503AndARequestLargerThanTheQueueIsRefused()
    {
        _ = TestData.Cpu;
        var options = ServerFixture.Options(Path.Combine(Repository.Root, "models", "smiles-llama-small")) with
        {
            Batching = new BatchingOptions { QueueCapacity = 4 },
            Decoding = new DecodeOptions { MaxRunning = 1 },
        };
        await using var server = await BioForgeServer.StartAsync(options);
        using var client = new HttpClient { BaseAddress = new Uri(server.Address), Timeout = TimeSpan.FromMinutes(2) };

        using var tooMany = await client.SendAsync(Request(n: 5, stream: false));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, tooMany.StatusCode);
        Assert.Contains("5 samples (n for each prompt) are more than model smiles-llama-small queues at once (4", await tooMany.Content.ReadAsStringAsync());

        // One slot, four long sequences: while the first runs, three wait, so two more cannot queue.
        using (var first = await client.SendAsync(Request(n: 4, stream: true), HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            using var shed = await client.SendAsync(Request(n: 2, stream: false));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, shed.StatusCode);
            Assert.NotNull(shed.Headers.RetryAfter);
            var error = JsonNode.Parse(await shed.Content.ReadAsStringAsync())!["error"]!;
            Assert.Equal("overloaded_error", error["type"]!.GetValue<string>());
            Assert.Contains("too many sequences wait for a key/value slot", error["message"]!.GetValue<string>());
        } // the streamed client leaves: its sequences free the queue

        HttpStatusCode status = 0;
        for (int i = 0; i < 100 && status != HttpStatusCode.OK; i++)
        {
            using var again = await client.SendAsync(Request(n: 2, stream: false, maxTokens: 3));
            status = again.StatusCode;
            if (status != HttpStatusCode.OK) await Task.Delay(100);
        }
        Assert.Equal(HttpStatusCode.OK, status);

        static HttpRequestMessage Request(int n, bool stream, int maxTokens = 120) => new(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { model = "smiles-llama-small", n, stream, max_tokens = maxTokens, temperature = 3.0, grammar = "none", seed = 1 }),
                Encoding.UTF8, "application/json"),
        };
    }
}

/// <summary>The load benchmark's server modes answer alike: batching changes when a sequence is computed, never what it draws.</summary>
public sealed class CompletionBatchingModeTests
{
    [Fact]
    public async Task EveryBatchingModeAnswersTheSameSamples()
    {
        _ = TestData.Cpu;
        var answers = new List<string>();
        foreach (var mode in Enum.GetValues<BatchingMode>())
        {
            var options = ServerFixture.Options(Path.Combine(Repository.Root, "models", "smiles-llama-small")) with
            {
                Decoding = new DecodeOptions { Mode = mode, MaxRunning = 3 },
            };
            await using var server = await BioForgeServer.StartAsync(options);
            using var client = new HttpClient { BaseAddress = new Uri(server.Address), Timeout = TimeSpan.FromMinutes(2) };
            // Two requests at once, more sequences than slots: batches form across requests and sequences wait.
            var requests = new[] { (N: 4, Seed: 7), (N: 3, Seed: 8) }.Select(async r =>
            {
                using var response = await client.PostAsync("/v1/completions", new StringContent(
                    JsonSerializer.Serialize(new { model = "smiles-llama-small", n = r.N, seed = r.Seed, max_tokens = 40, temperature = 1.0 }),
                    Encoding.UTF8, "application/json"));
                string body = await response.Content.ReadAsStringAsync();
                Assert.True(response.IsSuccessStatusCode, $"{mode}: {body}");
                var choices = JsonNode.Parse(body)!["choices"]!.AsArray();
                Assert.Equal(r.N, choices.Count);
                return string.Join(" | ", choices.Select(c => $"{c!["text"]} {c["finish_reason"]} {c["log_likelihood"]!.GetValue<double>():F3}"));
            });
            answers.Add(string.Join(" || ", await Task.WhenAll(requests)));
        }
        Assert.Equal(4, answers.Count);
        Assert.All(answers, a => Assert.Equal(answers[0], a));
    }
}

