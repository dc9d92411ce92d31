using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Threading.Channels;
using BioForge.Chem;
using BioForge.Generation;
using BioForge.Tokenizers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace BioForge.Server.Routes;

/// <summary>
/// <c>POST /v1/completions</c> in OpenAI's shape for every served decoder: <c>n</c> samples continuing <c>prompt</c>,
/// decoded by the model's <see cref="DecodeService"/> (continuous batching). Sample i of a request with seed s is
/// sequence (s, i) of <see cref="SequenceSampler"/>, so it equals molecule i of <c>bioforge generate --seed s</c> with the
/// same settings whatever else the server decodes. A batch of prompts (an array of strings, as OpenAI and vLLM take it)
/// answers each as a request of its own with seed s + p would, choice p·n + i being sample i of prompt p.
/// <c>stream</c> sends OpenAI's chunks as server-sent events, token by token, ending with <c>data: [DONE]</c>; a client
/// that leaves frees its sequences' slots at the next step.
/// </summary>
internal static class CompletionRoutes
{
    public sealed class CompletionRequest
    {
        /// <summary>The decoder to sample from; may be left out when the server has only one.</summary>
        [ServedModelExample(ModelKind.Molecule)]
        public string? Model { get; set; }

        /// <summary>
        /// The start every sample continues: a string, empty for de novo samples; or an array of strings, each answered with
        /// n samples of its own (choice p·n + i is sample i of prompt p).
        /// </summary>
        [Example("\"c1ccccc1\"")]
        public JsonElement Prompt { get; set; }

        [Example("2")]
        public int? N { get; set; }

        /// <summary>Generated tokens per sample, at most; default: until the end token or the model's length.</summary>
        [Example("40")]
        public int? MaxTokens { get; set; }

        /// <summary>
        /// BioForge extra (vLLM's name): tokens each sample generates before its end token may be drawn (0: any time),
        /// as <c>bioforge generate --min-length</c>; a protein's minimum length in residues.
        /// </summary>
        public int? MinTokens { get; set; }

        /// <summary>0 takes the most probable token at each step.</summary>
        public double? Temperature { get; set; }

        public double? TopP { get; set; }

        /// <summary>BioForge extra (vLLM's name): sample among the k most probable tokens; 0 or −1: all.</summary>
        public int? TopK { get; set; }

        /// <summary>OpenAI's: lowers the logit of a token already generated, once (−2 to 2; 0: off).</summary>
        public double? PresencePenalty { get; set; }

        /// <summary>OpenAI's: lowers the logit of a token by this much per time it was generated (−2 to 2; 0: off).</summary>
        public double? FrequencyPenalty { get; set; }

        /// <summary>BioForge extra (vLLM's and TGI's name): CTRL's penalty on tokens already in the prompt or sample (1: off; ProtGPT2 uses 1.2).</summary>
        public double? RepetitionPenalty { get; set; }

        /// <summary>
        /// Reproducible samples; absent: a random seed, returned in the answer. Any 64-bit signed integer (vLLM's range);
        /// a negative seed s samples as <c>bioforge generate --seed</c> s + 2⁶⁴ (the same 64 bits).
        /// </summary>
        [Example("7")]
        public long? Seed { get; set; }

        public bool? Stream { get; set; }

        public StreamOptionsBody? StreamOptions { get; set; }

        /// <summary>Token log-probabilities with up to this many alternatives per token (0–5).</summary>
        public int? Logprobs { get; set; }

        /// <summary>A string or up to 4 strings: a sample ends before the first one it produces (not included).</summary>
        public JsonElement Stop { get; set; }

        /// <summary>BioForge extra for SMILES models: only RDKit-valid molecules, as canonical SMILES of the whole molecule.</summary>
        public bool? ValidOnly { get; set; }

        /// <summary>
        /// BioForge extra: <c>smiles</c> (the default for SMILES models) samples under SMILES syntax and valence, with the
        /// constrained distribution's log-probabilities; <c>none</c> samples the model's raw distribution.
        /// </summary>
        [Example("\"smiles\"")]
        public string? Grammar { get; set; }

        /// <summary>Accepted for OpenAI clients; not used.</summary>
        public string? User { get; set; }

        /// <summary>Accepted when false (OpenAI's default).</summary>
        public bool? Echo { get; set; }

        /// <summary>Accepted when 1 (OpenAI's default; LangChain sends it): one candidate per sample.</summary>
        public int? BestOf { get; set; }

        /// <summary>Accepted when empty (LangChain sends <c>{}</c>): token ids differ between models, so no bias is taken.</summary>
        public Dictionary<string, double>? LogitBias { get; set; }

        /// <summary>Accepted when empty: samples are continued, not filled in before a suffix.</summary>
        public string? Suffix { get; set; }
    }

    public sealed class StreamOptionsBody
    {
        public bool? IncludeUsage { get; set; }
    }

    public sealed record Logprobs(IReadOnlyList<string> Tokens, IReadOnlyList<double> TokenLogprobs, IReadOnlyList<Dictionary<string, double>> TopLogprobs,
        IReadOnlyList<int> TextOffset);

    /// <summary>
    /// One sample; <c>log_likelihood</c> (BioForge extra) is the sum of log p at temperature 1 over every drawn token, end
    /// token included. <c>logprobs</c> and <c>finish_reason</c> are written even when null, as OpenAI writes them: strict
    /// clients read a chunk's missing <c>finish_reason</c> as a malformed chunk rather than "not finished yet".
    /// </summary>
    public sealed record Choice(string Text, int Index,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] Logprobs? Logprobs,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason,
        double? LogLikelihood = null);

    /// <summary>Named apart from the embeddings' usage: the document's schemas are keyed by type name.</summary>
    public sealed record CompletionUsage(int PromptTokens, int CompletionTokens, int TotalTokens);

    /// <summary><c>seed</c>: the seed used (given or drawn); <c>samples</c>: with <c>valid_only</c>, how many samples it took.</summary>
    public sealed record CompletionResponse(string Id, string Object, long Created, string Model, IReadOnlyList<Choice> Choices, CompletionUsage? Usage,
        long? Seed = null, int? Samples = null);

    private const int MaxChoices = 128, MaxStops = 4, MaxStopLength = 64, MaxLogprobs = 5;

    public static void Map(IEndpointRouteBuilder app, ServerState state)
    {
        app.MapPost("/v1/completions", async (HttpContext context) =>
        {
            var clock = Stopwatch.StartNew();
            var request = await Json.ReadAsync<CompletionRequest>(context.Request);
            var plan = Validate(request, state);
            if (request.Stream == true) await StreamAsync(context, state, plan, clock);
            else await AnswerAsync(context, state, plan, clock);
            return Results.Empty; // the answer is written above (a stream cannot be an IResult made in advance)
        })
        .WithTags("generation").WithSummary("Samples from a decoder model (OpenAI completions; stream: server-sent events)")
        .Accepts<CompletionRequest>(isOptional: true, "application/json").Produces<CompletionResponse>(200, "application/json", "text/event-stream")
        .ProducesErrors(400, 404, 422, 500, 501, 503, 504)
        .Serves(model => model.Completions is not null);
    }

    /// <summary>One prompt of a request: its text, its tokens (the begin token first) and its sampling settings (its room sets the default length).</summary>
    private sealed record Prompt(string Text, int[] Ids, SamplingOptions Options, string Param);

    private sealed record Plan(LanguageModel Model, DecodeService Decoder, IReadOnlyList<Prompt> Prompts, long Seed, int N,
        string[] Stops, int? Logprobs, bool ValidOnly, bool IncludeUsage)
    {
        /// <summary>Choices in the answer: n for each prompt.</summary>
        public int Choices => Prompts.Count * N;

        /// <summary>usage.prompt_tokens: each prompt once, however many samples continue it (OpenAI's and vLLM's count).</summary>
        public int PromptTokens => Prompts.Sum(p => p.Ids.Length);

        public CompletionUsage Usage(int generated) => new(PromptTokens, generated, PromptTokens + generated);
    }

    private static Plan Validate(CompletionRequest r, ServerState state)
    {
        var model = state.Models.Decoder(r.Model, "model");
        var decoder = model.Completions ?? throw ApiError.Invalid($"model {model.Name} does not generate; /v1/completions serves decoder models", "model");
        var texts = PromptTexts(r.Prompt);
        // OpenAI's fields may be null, meaning their defaults.
        int n = r.N ?? 1, topK = r.TopK ?? 0;
        double temperature = r.Temperature ?? 1, topP = r.TopP ?? 1, presence = r.PresencePenalty ?? 0, frequency = r.FrequencyPenalty ?? 0, repetition = r.RepetitionPenalty ?? 1;
        bool stream = r.Stream == true, validOnly = r.ValidOnly == true;
        if (n is < 1 or > MaxChoices) throw ApiError.Invalid($"n must be 1–{MaxChoices} (got {n})", "n");
        var options = new SamplingOptions
        {
            Temperature = temperature,
            TopP = topP,
            TopK = topK,
            MinNewTokens = r.MinTokens ?? 0,
            PresencePenalty = presence,
            FrequencyPenalty = frequency,
            RepetitionPenalty = repetition,
        };
        if (options.FirstProblem() is { } problem)
        {
            string field = problem.Setting switch
            {
                SamplingSetting.Temperature => "temperature",
                SamplingSetting.TopP => "top_p",
                SamplingSetting.TopK => "top_k",
                SamplingSetting.MaxNewTokens => "max_tokens",
                SamplingSetting.MinNewTokens => "min_tokens",
                SamplingSetting.RepetitionPenalty => "repetition_penalty",
                SamplingSetting.PresencePenalty => "presence_penalty",
                _ => "frequency_penalty",
            };
            throw ApiError.Invalid($"{field} {problem.Problem}", field);
        }
        if (r.MinTokens is { } least && r.MaxTokens is { } most && least > most) throw ApiError.Invalid($"min_tokens ({least}) must be at most max_tokens ({most})", "min_tokens");
        if ((long)n * texts.Count > MaxChoices)
            throw ApiError.Invalid($"n × prompts must be at most {MaxChoices} (got {n} × {texts.Count}); send the prompts in several requests", "n");
        if (r.Logprobs is < 0 or > MaxLogprobs) throw ApiError.Invalid($"logprobs must be 0–{MaxLogprobs} (got {r.Logprobs})", "logprobs");
        if (r.Echo == true) throw ApiError.Invalid("echo is not supported: the answer holds the continuation only", "echo");
        if (r.BestOf is { } bestOf && bestOf != 1) throw ApiError.Invalid($"best_of must be 1 here (got {bestOf}): ask for n samples and rank them by log_likelihood", "best_of");
        if (r.LogitBias is { Count: > 0 }) throw ApiError.Invalid("logit_bias is not supported (only {} or null)", "logit_bias");
        if (!string.IsNullOrEmpty(r.Suffix)) throw ApiError.Invalid("suffix is not supported: samples continue the prompt", "suffix");
        var stops = Stops(r.Stop);
        // As vLLM and OpenAI refuse it; an object of nulls (a client's defaults) asks for nothing.
        if (r.StreamOptions?.IncludeUsage is not null && !stream) throw ApiError.Invalid("stream_options.include_usage is only allowed when stream is true", "stream_options");
        if (validOnly)
        {
            if (model.Kind != ModelKind.Molecule)
                throw ApiError.Invalid($"valid_only applies to SMILES models; model {model.Name} is a {(model.Kind == ModelKind.ProteinDecoder ? "protein" : "text")} model", "valid_only");
            if (stream) throw ApiError.Invalid("valid_only cannot be streamed: whether a sample is kept is known only at its end", "valid_only");
            if (stops.Length > 0) throw ApiError.Invalid("valid_only cannot be combined with stop: a cut sample is not the molecule sampled", "stop");
        }
        var grammar = r.Grammar switch
        {
            null => decoder.Grammar,
            "none" => null,
            var name when decoder.Grammar?.Name == name => decoder.Grammar,
            var name => throw ApiError.Invalid($"grammar must be {(decoder.Grammar is { } g ? $"{g.Name} or " : "")}none for model {model.Name} (got '{name}')", "grammar"),
        };
        options = options with { Grammar = grammar };
        var prompts = texts.Select((text, p) => ReadPrompt(text, texts.Count == 1 && r.Prompt.ValueKind != JsonValueKind.Array ? "prompt" : $"prompt[{p}]",
            model, decoder, options, r.MaxTokens, state)).ToList();
        long seed = r.Seed ?? RequestSeed.Fresh();
        return new Plan(model, decoder, prompts, seed, n, stops, r.Logprobs, validOnly, r.StreamOptions?.IncludeUsage == true);
    }

    /// <summary>The prompts of a request: absent or null is one empty prompt, a string one prompt, an array of strings a batch.</summary>
    private static IReadOnlyList<string> PromptTexts(JsonElement prompt) => prompt.ValueKind switch
    {
        JsonValueKind.Undefined or JsonValueKind.Null => [""],
        JsonValueKind.String => [prompt.GetString()!],
        JsonValueKind.Array when prompt.EnumerateArray().Any(p => p.ValueKind is JsonValueKind.Number or JsonValueKind.Array) =>
            throw ApiError.BadRequest("prompt: token ids are not taken here, only text (a SMILES or protein start, or empty): each model's ids are its own", "prompt"),
        JsonValueKind.Array when prompt.GetArrayLength() == 0 => throw ApiError.Invalid("prompt: the array holds no prompt (send \"\" for de novo samples)", "prompt"),
        JsonValueKind.Array when prompt.GetArrayLength() > MaxChoices =>
            throw ApiError.Invalid($"prompt: {prompt.GetArrayLength()} prompts; at most {MaxChoices} in one request", "prompt"),
        JsonValueKind.Array => [.. prompt.EnumerateArray().Select((p, i) => p.ValueKind == JsonValueKind.String ? p.GetString()!
            : throw ApiError.BadRequest($"prompt[{i}] must be a string (got {p.ValueKind.ToString().ToLowerInvariant()})", $"prompt[{i}]"))],
        _ => throw ApiError.BadRequest($"prompt must be a string or an array of strings (got {prompt.ValueKind.ToString().ToLowerInvariant()})", "prompt"),
    };

    /// <summary>One prompt checked and tokenized; <paramref name="param"/> names it in errors (<c>prompt</c>, or <c>prompt[p]</c> in a batch).</summary>
    private static Prompt ReadPrompt(string text, string param, LanguageModel model, DecodeService decoder, SamplingOptions options, int? maxTokens, ServerState state)
    {
        if (model.Kind == ModelKind.Molecule) Smiles.CheckLength(text, param, state);
        // Before tokenizing, which holds the model's tokenizer: no token spans more characters than this, so a longer
        // prompt cannot fit whatever its tokens.
        if ((long)text.Length > (long)decoder.Length * LanguageModel.MaxCharactersPerToken)
            throw ApiError.Invalid($"{param} is {text.Length:N0} characters; model {model.Name} takes {decoder.Length} tokens in all", param);
        int[] ids;
        try
        {
            ids = decoder.Encode(text);
        }
        catch (BioForgeException e) when (!e.ServerFault)
        {
            throw ApiError.Invalid(param == "prompt" ? e.Message : $"{param}: {e.Message}", param);
        }
        if (ids.Length >= decoder.Length) throw ApiError.Invalid($"{param} takes {ids.Length} tokens; model {model.Name} takes {decoder.Length} in all", param);
        int room = decoder.Length - ids.Length;
        if (maxTokens is { } max && (max < 1 || max > room))
            throw ApiError.Invalid($"max_tokens must be 1–{room} for {(param == "prompt" ? "this prompt" : param)} (model {model.Name} takes {decoder.Length} tokens in all; got {max})", "max_tokens");
        if (options.MinNewTokens > room)
            throw ApiError.Invalid($"min_tokens must be at most {room} for {(param == "prompt" ? "this prompt" : param)} (model {model.Name} takes {decoder.Length} tokens in all; got {options.MinNewTokens})", "min_tokens");
        if (options.Grammar is { } grammar)
        {
            try
            {
                grammar.StartAfter(ids.AsSpan(1));
            }
            catch (BioForgeException e) when (!e.ServerFault)
            {
                throw ApiError.Invalid($"{(param == "prompt" ? "" : param + ": ")}{e.Message}; send \"grammar\": \"none\" to continue it anyway", param);
            }
            if (options.MinNewTokens > 0 && grammar.ForcedTokens(ids.AsSpan(1), decoder.EndToken) is { } forced && forced < options.MinNewTokens)
                throw ApiError.Invalid($"min_tokens is {options.MinNewTokens}, but after {(param == "prompt" ? "the prompt" : param)} ('{Spelling.Excerpt(text)}') the {grammar.Name} grammar allows "
                    + $"{(forced == 0 ? "only the end" : $"{forced} more token(s), then only the end")}; send a lower min_tokens, or \"grammar\": \"none\"", "min_tokens");
        }
        return new Prompt(text, ids, options with { MaxNewTokens = maxTokens ?? room }, param);
    }

    private static string[] Stops(JsonElement stop)
    {
        string[] stops = stop.ValueKind switch
        {
            JsonValueKind.Undefined or JsonValueKind.Null => [],
            JsonValueKind.String => [stop.GetString()!],
            JsonValueKind.Array => [.. stop.EnumerateArray().Select((s, i) => s.ValueKind == JsonValueKind.String ? s.GetString()!
                : throw ApiError.BadRequest($"stop[{i}] must be a string", $"stop[{i}]"))],
            _ => throw ApiError.BadRequest($"stop must be a string or an array of strings (got {stop.ValueKind.ToString().ToLowerInvariant()})", "stop"),
        };
        if (stops.Length > MaxStops) throw ApiError.Invalid($"stop has {stops.Length} strings; at most {MaxStops}", "stop");
        for (int i = 0; i < stops.Length; i++)
        {
            string param = stop.ValueKind == JsonValueKind.String ? "stop" : $"stop[{i}]";
            if (stops[i].Length is 0 or > MaxStopLength) throw ApiError.Invalid($"{param} must have 1–{MaxStopLength} characters", param);
        }
        return stops;
    }

    /// <summary>
    /// One sample as it is generated: text (cut at a stop string), token log-probabilities, the end. <see cref="Index"/> is
    /// its choice's index; <see cref="Sequence"/> its index among its prompt's samples (the sampler's sequence index).
    /// </summary>
    private sealed class Sample(Plan plan, Prompt prompt, int sequence)
    {
        private readonly StringBuilder text = new();
        private readonly int holdBack = plan.Stops.Length == 0 ? 0 : plan.Stops.Max(s => s.Length) - 1;
        private bool stopString;
        public Prompt Prompt { get; } = prompt;
        public int Sequence { get; } = sequence;
        /// <summary>Where the prompt stands in the request's batch (0 for a single prompt).</summary>
        public int PromptIndex { get; } = plan.Prompts.Count == 1 ? 0 : IndexOf(plan, prompt);
        public int Index => PromptIndex * plan.N + Sequence;
        public List<string> Tokens { get; } = [];
        public List<double> TokenLogprobs { get; } = [];
        public List<Dictionary<string, double>> Top { get; } = [];
        public List<int> Offsets { get; } = [];
        /// <summary>Tokens drawn, the end token included (usage's completion_tokens).</summary>
        public int Generated { get; private set; }
        public string? FinishReason { get; private set; }
        public double LogLikelihood { get; private set; }
        public bool Cancelled { get; private set; }
        /// <summary>Why this sample's own decoding failed (it then ended alone, as cancelled).</summary>
        public string? Failure { get; set; }
        /// <summary>Characters of <see cref="Text"/> already sent (streaming).</summary>
        public int Sent { get; set; }
        /// <summary>Tokens whose log-probabilities were already sent (streaming).</summary>
        public int SentTokens { get; set; }
        public string Text => text.ToString();

        /// <summary>False when the token completed a stop string (the text is cut before it).</summary>
        public bool Add(TokenDraw draw, DecodeService decoder)
        {
            Generated++;
            string piece = decoder.Piece(draw.Token);
            int before = text.Length;
            text.Append(piece);
            // As vLLM: no stop string ends a sample before min_tokens, as the end token does not.
            if (plan.Stops.Length > 0 && Generated >= Prompt.Options.MinNewTokens)
            {
                string all = text.ToString();
                // The earliest stop string that this token completed (the window starts where one could: a stop completed
                // earlier ended the sample then, or came before min_tokens and stays text).
                int at = plan.Stops.Select(stop => all.IndexOf(stop, Math.Max(0, before - stop.Length + 1), StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(-1).Min();
                if (at >= 0)
                {
                    text.Length = at;
                    // The log-probabilities follow the text: tokens wholly inside the cut stop string leave, one running into
                    // it keeps the part before it. A streamed token stays (only text no stop string can start is sent).
                    while (Tokens.Count > SentTokens && Offsets[^1] >= at)
                    {
                        Tokens.RemoveAt(Tokens.Count - 1);
                        TokenLogprobs.RemoveAt(TokenLogprobs.Count - 1);
                        Top.RemoveAt(Top.Count - 1);
                        Offsets.RemoveAt(Offsets.Count - 1);
                    }
                    if (Tokens.Count > SentTokens && Offsets[^1] + Tokens[^1].Length > at) Tokens[^1] = Tokens[^1][..(at - Offsets[^1])];
                    // This token's own text before the stop string stays in the text: its log-probability with it.
                    if (at > before) AddToken(piece[..(at - before)], draw, decoder, before);
                    stopString = true;
                    return false;
                }
            }
            AddToken(piece, draw, decoder, before);
            return true;
        }

        private void AddToken(string piece, TokenDraw draw, DecodeService decoder, int offset)
        {
            Tokens.Add(piece);
            TokenLogprobs.Add(draw.LogProb);
            // OpenAI's rule: the sampled token is always among them, so there are up to logprobs + 1 (logprobs 0: it alone).
            var top = draw.Top?.GroupBy(t => decoder.Piece(t.Token)).ToDictionary(g => g.Key, g => g.First().LogProb) ?? [];
            top.TryAdd(decoder.Piece(draw.Token), draw.LogProb);
            Top.Add(top);
            Offsets.Add(offset);
        }

        public void Finish(FinishReason reason, double logLikelihood)
        {
            Cancelled = reason == Generation.FinishReason.Cancelled;
            if (reason == Generation.FinishReason.Stop && !stopString) Generated++; // the end token: generated, though not text
            FinishReason = reason == Generation.FinishReason.Length ? "length" : "stop";
            LogLikelihood = logLikelihood;
        }

        /// <summary>Text that no later token can cut: all of it once finished, else all but what could start a stop string.</summary>
        public int Releasable => FinishReason is not null ? text.Length : Math.Max(Sent, text.Length - holdBack);

        public Logprobs? LogprobsFrom(int firstToken, int lastToken) => plan.Logprobs is null ? null
            : new Logprobs(Tokens[firstToken..lastToken], TokenLogprobs[firstToken..lastToken], Top[firstToken..lastToken], Offsets[firstToken..lastToken]);
    }

    private static int IndexOf(Plan plan, Prompt prompt)
    {
        for (int p = 0; p < plan.Prompts.Count; p++)
            if (ReferenceEquals(plan.Prompts[p], prompt)) return p;
        throw new InvalidOperationException("the prompt is not the plan's");
    }

    /// <summary>Every prompt's n samples, in choice order.</summary>
    private static List<Sample> Samples(Plan plan) => [.. plan.Prompts.SelectMany(p => Enumerable.Range(0, plan.N).Select(i => new Sample(plan, p, i)))];

    private static SequenceJob Job(Plan plan, Sample sample, Action<Sample> onToken, Action<Sample> onFinished, CancellationToken cancellation) => new()
    {
        Prompt = sample.Prompt.Ids,
        Options = sample.Prompt.Options,
        // Prompt p draws with seed + p: a batch of equal prompts (["", ""] for more de novo samples) would otherwise
        // answer copies, and each prompt's samples are still what it answers alone with that seed.
        Seed = unchecked((ulong)plan.Seed + (ulong)sample.PromptIndex),
        Index = sample.Sequence,
        TopLogprobs = plan.Logprobs ?? 0,
        Cancelled = () => cancellation.IsCancellationRequested,
        OnFailed = e =>
        {
            lock (sample) sample.Failure = $"{e.GetType().Name}: {e.Message}";
        },
        // The scheduler's thread writes a sample while a stream's writer reads it: both under the sample's lock.
        OnToken = draw =>
        {
            bool more;
            lock (sample) more = sample.Add(draw, plan.Decoder);
            onToken(sample);
            return more;
        },
        OnFinished = (reason, ll) =>
        {
            lock (sample) sample.Finish(reason, ll);
            onFinished(sample);
        },
    };

    private static string NewId() => "cmpl-" + Guid.NewGuid().ToString("N");

    private static async Task AnswerAsync(HttpContext context, ServerState state, Plan plan, Stopwatch clock)
    {
        var (choices, samples, taken) = await state.WithDeadline(context, token => plan.ValidOnly ? ValidOnly(state, plan, clock, token) : Plain(state, plan, clock, token));
        var response = new CompletionResponse(NewId(), "text_completion", DateTimeOffset.UtcNow.ToUnixTimeSeconds(), plan.Model.Name, choices,
            plan.Usage(samples.Sum(s => s.Generated)), plan.Seed, taken);
        await Results.Json(response, Json.Options).ExecuteAsync(context);
    }

    /// <summary>The n samples of every prompt, answered when the last one ends.</summary>
    /// <summary>The choices, every sample computed (usage counts their tokens), and with <c>valid_only</c> how many samples the answer took.</summary>
    private static async Task<(List<Choice> Choices, List<Sample> Computed, int? Taken)> Plain(ServerState state, Plan plan, Stopwatch clock, CancellationToken token)
    {
        var samples = Samples(plan);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int remaining = samples.Count, first = 0;
        var jobs = samples.Select(s => Job(plan, s, _ =>
        {
            if (Interlocked.Exchange(ref first, 1) == 0) state.Metrics.FirstToken(plan.Model.Name, clock.Elapsed.TotalSeconds);
        }, _ =>
        {
            if (Interlocked.Decrement(ref remaining) == 0) done.TrySetResult();
        }, token)).ToList();
        plan.Decoder.Submit(jobs);
        await done.Task;
        Check(samples, plan, token);
        return ([.. samples.Select(s => new Choice(s.Text, s.Index, s.LogprobsFrom(0, s.Tokens.Count), s.FinishReason, s.LogLikelihood))], samples, null);
    }

    /// <summary>A failed batch ended the samples though their client is still there: 500, not a partial answer.</summary>
    private static void Check(List<Sample> samples, Plan plan, CancellationToken token)
    {
        token.ThrowIfCancellationRequested();
        if (samples.FirstOrDefault(s => s.Failure is not null) is { } failed)
            throw new ApiError(StatusCodes.Status500InternalServerError, $"model {plan.Model.Name}: decoding sample {failed.Sequence}{(plan.Prompts.Count > 1 ? $" of {failed.Prompt.Param}" : "")} failed ({failed.Failure})");
        if (samples.Any(s => s.Cancelled))
            throw new ApiError(StatusCodes.Status500InternalServerError, $"model {plan.Model.Name}: a decoding step failed; retry");
    }

    /// <summary>
    /// <c>valid_only</c>: for each prompt, waves of samples in sequence order until n are RDKit-valid; the answer is each
    /// prompt's first n valid ones by sequence index (what <c>bioforge generate --valid-only</c> writes), as canonical
    /// SMILES of prompt + sample. Every prompt's first wave is admitted together (503 for all or none); the waves after
    /// it carry on an admitted request, never refused and ahead of new requests, so a busy queue cannot fail a request halfway.
    /// </summary>
    private static async Task<(List<Choice> Choices, List<Sample> Computed, int? Taken)> ValidOnly(ServerState state, Plan plan, Stopwatch clock, CancellationToken token)
    {
        // A prompt that fails (no valid molecule after its attempts) ends the request: the other prompts stop sampling.
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(token);
        int started = 0;
        void FirstToken(Sample _)
        {
            if (Interlocked.Exchange(ref started, 1) == 0) state.Metrics.FirstToken(plan.Model.Name, clock.Elapsed.TotalSeconds);
        }
        var draws = plan.Prompts.Select(p => new ValidDraw(plan, p, FirstToken)).ToList();
        var first = draws.Select(d => d.NextWave(failed.Token)).ToList();
        plan.Decoder.Submit([.. first.SelectMany(w => w.Jobs)]);
        async Task Run(ValidDraw draw, Wave wave)
        {
            try
            {
                while (true)
                {
                    await wave.Done;
                    Check(wave.Samples, plan, failed.Token);
                    if (draw.Keep(wave.Samples)) return;
                    wave = draw.NextWave(failed.Token);
                    plan.Decoder.Submit(wave.Jobs, continuing: true);
                }
            }
            catch
            {
                failed.Cancel();
                throw;
            }
        }
        // The prompts stopped for another's failure end cancelled, not faulted: the failure is what WhenAll throws.
        await Task.WhenAll(draws.Select((d, p) => Run(d, first[p])));
        var choices = draws.SelectMany((draw, p) => draw.Kept.Select((k, i) =>
            new Choice(k.Canonical, p * plan.N + i, k.Sample.LogprobsFrom(0, k.Sample.Tokens.Count), k.Sample.FinishReason, k.Sample.LogLikelihood))).ToList();
        return (choices, [.. draws.SelectMany(d => d.All)], draws.Sum(d => d.Taken));
    }

    /// <summary>A wave of samples, the jobs that draw them, and a task that ends with the last of them.</summary>
    private sealed record Wave(List<Sample> Samples, SequenceJob[] Jobs, Task Done);

    /// <summary>One prompt's <c>valid_only</c> draw: its samples so far and the valid molecules among them.</summary>
    private sealed class ValidDraw(Plan plan, Prompt prompt, Action<Sample> onToken)
    {
        private readonly long limit = (long)plan.N * SmilesGenerator.ValidOnlyAttempts;

        public List<Sample> All { get; } = [];

        public List<(Sample Sample, string Canonical)> Kept { get; } = [];

        /// <summary>Samples up to the n-th valid one (what <c>bioforge generate --valid-only</c> draws): a wave may compute a few past it.</summary>
        public int Taken => Kept.Count == plan.N ? Kept[^1].Sample.Sequence + 1 : All.Count;

        /// <summary>
        /// The next samples in sequence order: as many as valid molecules are still missing, more where the validity so
        /// far says they will be needed (a prompt that seldom starts a molecule took a hundred waves of one sample), at
        /// most the request's first admission or 16, and never more than the queue holds. Refused past the attempts allowed.
        /// </summary>
        public Wave NextWave(CancellationToken token)
        {
            if (All.Count >= limit) throw Exhausted();
            int missing = plan.N - Kept.Count;
            double wanted = Kept.Count == 0 ? Math.Max(missing, All.Count) : Math.Ceiling(missing * (double)All.Count / Kept.Count);
            int cap = Math.Min(Math.Max(plan.N * plan.Prompts.Count, 16), plan.Decoder.QueueCapacity);
            int size = (int)Math.Min(Math.Min(Math.Max(wanted, missing), Math.Max(cap, missing)), limit - All.Count);
            var samples = Enumerable.Range(All.Count, size).Select(i => new Sample(plan, prompt, i)).ToList();
            All.AddRange(samples);
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            int remaining = size;
            var jobs = samples.Select(s => Job(plan, s, onToken, _ =>
            {
                if (Interlocked.Decrement(ref remaining) == 0) done.TrySetResult();
            }, token)).ToArray();
            return new Wave(samples, jobs, done.Task);
        }

        /// <summary>Keeps the wave's valid molecules, in sequence order; true once there are n.</summary>
        public bool Keep(List<Sample> samples)
        {
            foreach (var s in samples)
            {
                if (Kept.Count == plan.N) break;
                string smiles = prompt.Text + s.Text;
                if (s.FinishReason != "stop" || smiles.Length == 0 || !Molecule.TryFromSmiles(smiles, out var molecule, out _)) continue;
                using (molecule) Kept.Add((s, molecule!.ToSmiles()));
            }
            return Kept.Count == plan.N;
        }

        private ApiError Exhausted()
        {
            // In a batch each message names its prompt; alone, "the prompt".
            string of = prompt.Param == "prompt" ? "" : $" of {prompt.Param}";
            // Samples cut at max_tokens are not molecules: when most were cut, the limit is to blame (or the prompt,
            // which can keep a sample from ever ending); at the model's whole length, only the prompt or the model.
            int cut = All.Count(s => s.FinishReason == "length");
            bool mostCut = 2 * cut > All.Count, wholeLength = prompt.Options.MaxNewTokens >= plan.Decoder.Length - prompt.Ids.Length;
            string cutAt = wholeLength ? $"the model's length ({plan.Decoder.Length} tokens)" : $"max_tokens ({prompt.Options.MaxNewTokens})";
            // The prompt is blamed only on samples that ended and still were not molecules: samples all cut short say
            // nothing of it (benzene was blamed when max_tokens 3 cut every sample).
            return Kept.Count == 0 && prompt.Text.Length > 0 && cut < All.Count
                ? ApiError.Invalid($"none of {All.Count} samples continuing {(of == "" ? "the prompt" : prompt.Param)} was a valid molecule: '{prompt.Text}' may start none (a ring it closes cannot be aromatic, say)"
                    + (mostCut && !wholeLength ? $"; {cut} were cut at {cutAt}, so a larger max_tokens may help" : ""), prompt.Param)
                : mostCut && !wholeLength
                ? ApiError.Invalid($"only {Kept.Count} of {plan.N} samples{of} were valid molecules after {All.Count} samples; {cut} were cut at {cutAt}: raise max_tokens", "max_tokens")
                : ApiError.Invalid($"only {Kept.Count} of {plan.N} samples{of} were valid molecules after {All.Count} samples"
                    + (mostCut ? $" ({cut} cut at {cutAt})" : "") + "; the model is not trained well enough for valid_only", "valid_only");
        }
    }

    /// <summary>
    /// An event of a stream; each carries the request's <c>seed</c>, so a stream with a drawn seed can be repeated.
    /// <c>usage</c> is null but in the last event of a stream that asked for it, and written as null (OpenAI's and vLLM's
    /// chunks), so a typed client finds the field in every event.
    /// </summary>
    private sealed record StreamChunk(string Id, string Object, long Created, string Model, IReadOnlyList<Choice> Choices, long Seed,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] CompletionUsage? Usage = null);

    /// <summary>
    /// Server-sent events: a chunk per sample whenever it has new text (one token, or several held back by a possible stop
    /// string), a last chunk per sample with its finish reason, usage when asked for, then <c>[DONE]</c>. A timeout or a
    /// failed step after the first byte sends one error event and no <c>[DONE]</c>, so clients see an error, never a
    /// silently short answer.
    /// </summary>
    private static async Task StreamAsync(HttpContext context, ServerState state, Plan plan, Stopwatch clock)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, state.Stopping);
        deadline.CancelAfter(state.Options.RequestTimeout);
        var token = deadline.Token;
        var updates = Channel.CreateUnbounded<Sample>(new UnboundedChannelOptions { SingleReader = true });
        var samples = Samples(plan);
        int remaining = samples.Count, first = 0;
        var jobs = samples.Select(s => Job(plan, s, sample =>
        {
            if (Interlocked.Exchange(ref first, 1) == 0) state.Metrics.FirstToken(plan.Model.Name, clock.Elapsed.TotalSeconds);
            updates.Writer.TryWrite(sample);
        }, sample =>
        {
            updates.Writer.TryWrite(sample);
            if (Interlocked.Decrement(ref remaining) == 0) updates.Writer.TryComplete();
        }, token)).ToList();
        plan.Decoder.Submit(jobs); // a full queue answers 503 here, before any byte is sent

        string id = NewId();
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no"; // nginx: pass events through as they come
        var finished = new bool[samples.Count];
        try
        {
            // Inside the try: a start that fails (the client gone already) still cancels the sequences submitted above.
            await response.StartAsync(context.RequestAborted);
            while (await updates.Reader.WaitToReadAsync(token))
            {
                var pieces = new List<Choice>();
                while (updates.Reader.TryRead(out var sample))
                {
                    Choice? chunk;
                    lock (sample) chunk = Release(sample, finished);
                    if (chunk is not null) pieces.Add(chunk);
                }
                foreach (var piece in pieces) await Event(response, new StreamChunk(id, "text_completion", created, plan.Model.Name, [piece], plan.Seed), context.RequestAborted);
                await response.Body.FlushAsync(context.RequestAborted);
            }
            Check(samples, plan, token);
            if (plan.IncludeUsage)
            {
                await Event(response, new StreamChunk(id, "text_completion", created, plan.Model.Name, [], plan.Seed, plan.Usage(samples.Sum(s => s.Generated))),
                    context.RequestAborted);
            }
            await response.WriteAsync("data: [DONE]\n\n", context.RequestAborted);
        }
        catch (Exception e) when (!context.RequestAborted.IsCancellationRequested)
        {
            var error = e is ApiError api ? api
                : e is OperationCanceledException && state.Stopping.IsCancellationRequested ? ServerState.ShuttingDown()
                : e is OperationCanceledException ? new ApiError(StatusCodes.Status504GatewayTimeout, $"the stream did not end within {state.Options.RequestTimeout.TotalSeconds:0.###} s")
                : null;
            if (error is null || error.Status == StatusCodes.Status500InternalServerError)
            {
                state.Log?.Invoke($"{context.Request.Method} {context.Request.Path} [{context.TraceIdentifier}]: stream failed: {e}");
                error = ApiError.Internal(context.TraceIdentifier);
            }
            context.Items[BioForgeServer.StreamStatus] = error.Status;
            await Event(response, new ErrorResponse(new ErrorDetail(error.Message, error.Type, error.Param, error.Status)), CancellationToken.None);
        }
        finally
        {
            // Whatever ended the stream, its sequences stop decoding for nobody and give their key/value slots back.
            deadline.Cancel();
        }
        await response.Body.FlushAsync(CancellationToken.None);
    }

    /// <summary>The sample's new text (and its tokens' log-probabilities) as one choice chunk, with the finish reason once it ended.</summary>
    private static Choice? Release(Sample sample, bool[] finished)
    {
        if (finished[sample.Index]) return null;
        // Stopped without an end (its decoding failed, or the request's did): no finish_reason a client would take for a
        // whole sample; the stream's error event says what happened.
        if (sample.Cancelled || sample.Failure is not null) return null;
        string text = sample.Text;
        int end = Math.Min(sample.Releasable, text.Length);
        int tokens = sample.SentTokens;
        while (tokens < sample.Tokens.Count && sample.Offsets[tokens] + sample.Tokens[tokens].Length <= end) tokens++;
        if (sample.FinishReason is not null) tokens = sample.Tokens.Count;
        bool last = sample.FinishReason is not null;
        if (end == sample.Sent && tokens == sample.SentTokens && !last) return null;
        var choice = new Choice(text[sample.Sent..end], sample.Index, sample.LogprobsFrom(sample.SentTokens, tokens), sample.FinishReason, last ? sample.LogLikelihood : null);
        sample.Sent = end;
        sample.SentTokens = tokens;
        finished[sample.Index] = last;
        return choice;
    }

    private static async Task Event<T>(HttpResponse response, T body, CancellationToken cancellation)
    {
        await response.WriteAsync("data: " + JsonSerializer.Serialize(body, Json.Options) + "\n\n", cancellation);
    }
}
