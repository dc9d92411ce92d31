using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace BioForge.Server.Routes;

/// <summary>
/// <c>POST /v1/embeddings</c> in the OpenAI/NIM shape: protein sequences for an ESM-2 model, SMILES for a SMILES
/// model; each input's mean final hidden state. Every input of a request joins the model's dynamic batches on its own,
/// so one large request and many small ones are batched alike.
/// </summary>
internal static class EmbeddingRoutes
{
    public sealed class EmbeddingRequest
    {
        [Required, ServedModelExample(ModelKind.Protein)]
        public string? Model { get; set; }

        /// <summary>One string or an array of strings.</summary>
        [Required, Example("\"MKTAYIAKQRQISFVKSHFSRQ\"")]
        public JsonElement Input { get; set; }

        /// <summary><c>float</c> (default) or <c>base64</c> (little-endian float32 bytes, as OpenAI encodes them).</summary>
        [Example("\"float\"")]
        public string? EncodingFormat { get; set; }

        /// <summary>Accepted for OpenAI clients; not used.</summary>
        [Example("\"docs-example\"")]
        public string? User { get; set; }

        /// <summary>NIM's <c>query</c> or <c>passage</c>: accepted; these models embed both alike.</summary>
        [Example("\"query\"")]
        public string? InputType { get; set; }

        /// <summary>NIM's <c>NONE</c> (default: too long is an error), <c>END</c> (drop the end) or <c>START</c> (drop the start).</summary>
        [Example("\"NONE\"")]
        public string? Truncate { get; set; }

        /// <summary>OpenAI's: accepted when it is the model's own width (no projection is offered).</summary>
        public int? Dimensions { get; set; }
    }

    public sealed record EmbeddingItem(string Object, int Index, object Embedding);

    public sealed record Usage(int PromptTokens, int TotalTokens);

    public sealed record EmbeddingResponse(string Object, IReadOnlyList<EmbeddingItem> Data, string Model, Usage Usage);

    public static void Map(IEndpointRouteBuilder app, ServerState state)
    {
        app.MapPost("/v1/embeddings", async (HttpContext context) =>
        {
            var request = await Json.ReadAsync<EmbeddingRequest>(context.Request);
            var model = state.Models.Language(request.Model, "model");
            bool base64 = request.EncodingFormat switch
            {
                null or "float" => false,
                "base64" => true,
                _ => throw ApiError.Invalid($"encoding_format must be float or base64 (got '{request.EncodingFormat}')", "encoding_format"),
            };
            if (request.InputType is not (null or "query" or "passage"))
                throw ApiError.Invalid($"input_type must be query or passage (got '{request.InputType}')", "input_type");
            if (request.Dimensions is { } dimensions && dimensions != model.HiddenSize)
                throw ApiError.Invalid($"dimensions: model {model.Name} gives {model.HiddenSize} numbers per input (got {dimensions})", "dimensions");
            string truncate = request.Truncate?.ToUpperInvariant() ?? "NONE";
            if (truncate is not ("NONE" or "END" or "START"))
                throw ApiError.Invalid($"truncate must be NONE, END or START (got '{request.Truncate}')", "truncate");
            var inputs = Inputs(request.Input, state.Options.MaxInputs).Select(text => model.Truncate(text, truncate)).ToList();
            var encoded = inputs.Select((text, i) =>
            {
                string param = inputs.Count == 1 && request.Input.ValueKind == JsonValueKind.String ? "input" : $"input[{i}]";
                if (model.Kind == ModelKind.Molecule) Smiles.CheckLength(text, param, state);
                return model.Encode(text, param, truncate);
            }).ToList();
            var vectors = await state.WithDeadline(context, token => model.Embeddings.SubmitAllAsync(encoded, token));
            var data = vectors.Select((v, i) => new EmbeddingItem("embedding", i, base64 ? Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(v.AsSpan())) : v)).ToList();
            int tokens = encoded.Sum(e => e.Ids.Length);
            return Results.Json(new EmbeddingResponse("list", data, model.Name, new Usage(tokens, tokens)), Json.Options);
        })
        .WithTags("embeddings").WithSummary("Embeddings of protein sequences or SMILES (OpenAI/NIM shape)")
        .Accepts<EmbeddingRequest>("application/json").Produces<EmbeddingResponse>().ProducesErrors(400, 404, 422, 501, 503, 504)
        .Serves(_ => true);
    }

    /// <summary>The <c>input</c> field: a string or a non-empty array of at most <paramref name="max"/> strings.</summary>
    internal static List<string> Inputs(JsonElement input, int max, string param = "input")
    {
        switch (input.ValueKind)
        {
            case JsonValueKind.String:
                return [input.GetString()!];
            case JsonValueKind.Array:
                var list = new List<string>();
                foreach (var item in input.EnumerateArray())
                {
                    // An array of strings (pandas' values.tolist() of one column) is not token ids: named as what it is.
                    if (item.ValueKind == JsonValueKind.Array && item.EnumerateArray().Any(e => e.ValueKind == JsonValueKind.String))
                        throw ApiError.BadRequest($"{param}[{list.Count}] is an array of strings; {param} is a string or an array of strings (flatten the list)", $"{param}[{list.Count}]");
                    if (item.ValueKind is JsonValueKind.Array or JsonValueKind.Number)
                        throw ApiError.BadRequest($"{param}[{list.Count}] is token ids: this server reads text only, each model's token ids being its own (LangChain's OpenAIEmbeddings sends ids unless check_embedding_ctx_length=False)", $"{param}[{list.Count}]");
                    if (item.ValueKind != JsonValueKind.String) throw ApiError.BadRequest($"{param}[{list.Count}] must be a string (got {item.ValueKind.ToString().ToLowerInvariant()})", $"{param}[{list.Count}]");
                    list.Add(item.GetString()!);
                }
                if (list.Count == 0) throw ApiError.Invalid($"{param} is an empty array", param);
                if (list.Count > max) throw ApiError.Invalid($"{param} has {list.Count} items; at most {max} per request (a client's batch or chunk size, e.g. LangChain's chunk_size)", param);
                return list;
            case JsonValueKind.Undefined:
                throw ApiError.BadRequest($"{param} is required: a string or an array of strings", param);
            default:
                throw ApiError.BadRequest($"{param} must be a string or an array of strings (got {input.ValueKind.ToString().ToLowerInvariant()})", param);
        }
    }
}
