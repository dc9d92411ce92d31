using System.ComponentModel.DataAnnotations;
using BioForge.Models.Esm;
using BioForge.Proteins;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace BioForge.Server.Routes;

/// <summary>
/// The protein commands as routes: fill-mask, contact map, zero-shot variant scores. Each request is one sequence and
/// runs alone on the device worker (its queue is bounded like the batchers').
/// </summary>
internal static class ProteinRoutes
{
    public sealed class FillMaskRequest
    {
        [ServedModelExample(ModelKind.Protein)]
        public string? Model { get; set; }

        /// <summary>Residues with one or more <c>&lt;mask&gt;</c> tokens; with <c>positions</c>, a plain sequence.</summary>
        [Required, Example("\"MKTAYIAKQR<mask>ISFVKSHFSRQ\"")]
        public string? Sequence { get; set; }

        /// <summary>1-based positions to mask, all at once (instead of writing <c>&lt;mask&gt;</c> into the sequence).</summary>
        public int[]? Positions { get; set; }

        /// <summary>Mask every position of a plain sequence in turn: each residue's probability in its context.</summary>
        public bool EachPosition { get; set; }

        [Example("3")]
        public int TopK { get; set; } = 5;
    }

    public sealed record Candidate(string Token, double Probability);

    /// <summary>With <c>each_position</c>, also the residue that was there and the probability the model gives it.</summary>
    public sealed record MaskedPosition(int Position, IReadOnlyList<Candidate> Candidates, string? WildType = null, double? WildTypeProbability = null);

    public sealed record FillMaskResponse(string Model, string Sequence, IReadOnlyList<MaskedPosition> Predictions);

    public sealed class SequenceRequest
    {
        [ServedModelExample(ModelKind.Protein)]
        public string? Model { get; set; }

        [Required, Example("\"MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ\"")]
        public string? Sequence { get; set; }

        /// <summary>How many of the most probable contacts at least 6 apart (|i − j| ≥ 6: short, medium and long range) to list besides the full map.</summary>
        [Example("5")]
        public int Top { get; set; } = 20;
    }

    public sealed record Contact(int I, int J, double Probability);

    /// <param name="ContactHeadTrained">False for a checkpoint whose contact regression was never fitted (the map is then
    /// about 0.5 everywhere, not a prediction), as <c>bioforge contacts</c> warns.</param>
    public sealed record ContactsResponse(string Model, int Length, IReadOnlyList<float[]> Contacts, IReadOnlyList<Contact> TopContacts, bool ContactHeadTrained);

    public sealed class VariantRequest
    {
        [ServedModelExample(ModelKind.Protein)]
        public string? Model { get; set; }

        [Required, Example("\"MKTAYIAKQR\"")]
        public string? Sequence { get; set; }

        /// <summary>Mutations such as <c>A23G</c>, multi-mutants joined with <c>:</c> (<c>K45R:L50P</c>).</summary>
        [Required, Example("[\"K2R\", \"A4G:Y5F\"]")]
        public string?[]? Mutations { get; set; }

        /// <summary>The number the first residue carries in <c>mutations</c>: 1 (ProteinGym), 0, or where a fragment or mature protein starts.</summary>
        [Example("1")]
        public int IndexBase { get; set; } = 1;
    }

    public sealed record VariantScore(string Mutation, double Score);

    public sealed record VariantResponse(string Model, IReadOnlyList<VariantScore> Scores);

    private const int MaxMutations = 10_000;

    public static void Map(IEndpointRouteBuilder app, ServerState state)
    {
        var protein = app.MapGroup("/v1/protein").WithTags("protein").Serves(model => model.Kind == ModelKind.Protein);

        protein.MapPost("/fill-mask", async (HttpContext context) =>
        {
            var request = await Json.ReadAsync<FillMaskRequest>(context.Request);
            var (model, esm) = MaskedModel(state, request.Model);
            string sequence = Sequence(request.Sequence, esm, windowed: true, masks: true);
            if (request.TopK is < 1 or > 33) throw ApiError.Invalid($"top_k must be 1–33 (got {request.TopK})", "top_k");
            if (request.EachPosition)
            {
                if (sequence.Contains('<') || request.Positions is { Length: > 0 }) throw ApiError.Invalid("each_position takes a plain sequence (no <mask>, no positions)", "each_position");
                var profile = await state.WithDeadline(context, token => state.Device.RunSlicedAsync(new VariantScorer(esm, 16_384).ProfileStepwise(sequence, request.TopK), token,
                    new WorkSize("fill-mask each_position", (double)sequence.Length * Math.Min(sequence.Length, ContactPredictor.WindowResidues(esm)))));
                return Results.Json(new FillMaskResponse(model.Name, sequence, [.. profile.Select(p => new MaskedPosition(p.Position,
                    [.. p.Candidates.Select(c => new Candidate(c.Token, c.Probability))], p.WildType, p.WildTypeProbability))]), Json.Options);
            }
            if (request.Positions is { Length: > 0 } positions)
                sequence = MaskPositions(sequence, positions);
            if (!sequence.Contains("<mask>", StringComparison.Ordinal))
                throw ApiError.Invalid("sequence has no <mask> token to fill (give positions to mask, or each_position: true)", "sequence");
            // In slices, as each_position: a long protein with many masks reads a window per mask.
            var predictions = await state.WithDeadline(context, token => state.Device.RunSlicedAsync(MaskFiller.PredictStepwise(esm, sequence, request.TopK), token,
                new WorkSize("fill-mask", FillMaskTokens(sequence, esm))));
            return Results.Json(new FillMaskResponse(model.Name, sequence,
                [.. predictions.Select(p => new MaskedPosition(p.Position, [.. p.Candidates.Select(c => new Candidate(c.Token, c.Probability))]))]), Json.Options);
        })
        .WithSummary("Most probable residues at each <mask>").Accepts<FillMaskRequest>("application/json").Produces<FillMaskResponse>().ProducesErrors(400, 404, 422, 503, 504)
        .Serves(HasMaskedHead);

        protein.MapPost("/contacts", async (HttpContext context) =>
        {
            var request = await Json.ReadAsync<SequenceRequest>(context.Request);
            var (model, esm) = Model(state, request.Model);
            string sequence = Sequence(request.Sequence, esm);
            if (request.Top is < 0 or > 10_000) throw ApiError.Invalid($"top must be 0–10000 (got {request.Top})", "top");
            var (map, trained) = await state.WithDeadline(context, token => state.Device.RunAsync(() => (ContactPredictor.Predict(esm, sequence), esm.Model.ContactHeadTrained), token,
                new WorkSize("contacts", sequence.Length)));
            int n = map.GetLength(0);
            var rows = Enumerable.Range(0, n).Select(i => Enumerable.Range(0, n).Select(j => map[i, j]).ToArray()).ToList();
            var top = (from i in Enumerable.Range(0, n) from j in Enumerable.Range(i + 6, Math.Max(0, n - i - 6)) select new Contact(i + 1, j + 1, map[i, j]))
                .OrderByDescending(c => c.Probability).Take(request.Top).ToList();
            return Results.Json(new ContactsResponse(model.Name, n, rows, top, trained), Json.Options);
        })
        .WithSummary("Contact map (ESM-2 contact head)").Accepts<SequenceRequest>("application/json").Produces<ContactsResponse>().ProducesErrors(400, 404, 422, 503, 504);

        protein.MapPost("/score-variants", async (HttpContext context) =>
        {
            var request = await Json.ReadAsync<VariantRequest>(context.Request);
            var (model, esm) = MaskedModel(state, request.Model);
            string sequence = Sequence(request.Sequence, esm, windowed: true);
            if (request.Mutations is not { Length: > 0 } mutations) throw ApiError.BadRequest("mutations is required: e.g. [\"A23G\", \"K45R:L50P\"]", "mutations");
            if (mutations.Length > MaxMutations) throw ApiError.Invalid($"mutations has {mutations.Length} items; at most {MaxMutations} per request", "mutations");
            if (request.IndexBase is not (>= 0 and <= Variant.MaxIndexBase)) throw ApiError.Invalid($"index_base must be a residue number from 0 to {Variant.MaxIndexBase:N0} (got {request.IndexBase})", "index_base");
            var variants = mutations.Select((m, i) =>
            {
                if (m is null) throw ApiError.BadRequest($"mutations[{i}] is null; expected a mutation such as \"A23G\"", $"mutations[{i}]");
                try
                {
                    return Variant.Parse(m, sequence, request.IndexBase);
                }
                catch (BioForgeException e) when (!e.ServerFault)
                {
                    throw ApiError.Invalid($"mutations[{i}]: {e.Message}", $"mutations[{i}]");
                }
            }).ToList();
            var scores = await state.WithDeadline(context, token => state.Device.RunSlicedAsync(new VariantScorer(esm, 8192).ScoreStepwise(sequence, variants), token,
                new WorkSize("score-variants", (double)Math.Min(sequence.Length, ContactPredictor.WindowResidues(esm)) * variants.SelectMany(v => v.Substitutions.Select(s => s.Position)).Distinct().Count())));
            return Results.Json(new VariantResponse(model.Name, [.. variants.Select((v, i) => new VariantScore(v.Name, scores[i]))]), Json.Options);
        })
        .WithSummary("Zero-shot masked-marginal variant scores").Accepts<VariantRequest>("application/json").Produces<VariantResponse>().ProducesErrors(400, 404, 422, 503, 504)
        .Serves(HasMaskedHead);
    }

    private static (LanguageModel Model, EsmCheckpoint Esm) Model(ServerState state, string? name)
    {
        var model = state.Models.Language(name, "model", ModelKind.Protein);
        return (model, model.Esm!);
    }

    private static bool HasMaskedHead(LanguageModel model) => model.Kind == ModelKind.Protein && model.Esm!.Model.HasLanguageModelHead;

    /// <summary>A model that predicts residues: a checkpoint saved from a bare <c>EsmModel</c> has no head to predict with.</summary>
    private static (LanguageModel Model, EsmCheckpoint Esm) MaskedModel(ServerState state, string? name)
    {
        var (model, esm) = Model(state, name);
        if (!HasMaskedHead(model))
            throw ApiError.Invalid($"model {model.Name} has no masked-LM head (saved from a bare EsmModel): it serves embeddings and contacts, not residue predictions", "model");
        return (model, esm);
    }

    /// <summary>
    /// The sequence in upper case, or 422 naming the first character that is not a residue of the model's alphabet (before
    /// the request waits for the device); <c>&lt;mask&gt;</c> only where it <paramref name="masks"/>; longer than the model
    /// reads only where it is <paramref name="windowed"/> (each site read in the window centred on it).
    /// </summary>
    private static string Sequence(string? text, EsmCheckpoint esm, bool windowed = false, bool masks = false)
    {
        if (string.IsNullOrWhiteSpace(text)) throw ApiError.BadRequest("sequence is required", "sequence");
        string sequence = text.Trim();
        if (!masks && sequence.Contains('<')) throw ApiError.Invalid("sequence: special tokens such as <mask> are not allowed here", "sequence");
        string plain = sequence.Replace("<mask>", "X", StringComparison.Ordinal);
        for (int i = 0; i < plain.Length; i++)
            if (!char.IsAsciiLetter(plain[i]) || !esm.Tokenizer.Vocabulary.Contains(char.ToUpperInvariant(plain[i]).ToString()))
                throw ApiError.Invalid($"sequence: '{plain[i]}' at position {i + 1} is not an amino-acid letter of the model's alphabet", "sequence");
        if (plain.Length > esm.Config.MaxResidues && !windowed) throw ApiError.Invalid($"sequence has {plain.Length} residues; this model takes at most {esm.Config.MaxResidues}", "sequence");
        // Read in windows, a longer sequence is more passes, not a longer one: bounded as the contacts command bounds it
        // (each_position on 8,192 residues is 8,192 windowed passes; the CLI reads longer ones).
        if (plain.Length > ContactPredictor.MaxWindowedResidues)
            throw ApiError.Invalid($"sequence has {plain.Length:N0} residues; the service reads at most {ContactPredictor.MaxWindowedResidues:N0} (in windows of {ContactPredictor.WindowResidues(esm)})", "sequence");
        return sequence.Replace("<mask>", "\u0001", StringComparison.Ordinal).ToUpperInvariant().Replace("\u0001", "<mask>", StringComparison.Ordinal);
    }

    /// <summary>Tokens a fill-mask reads: the sequence once, or at most a window per mask when it is longer than a window.</summary>
    private static double FillMaskTokens(string sequence, EsmCheckpoint esm)
    {
        int masks = sequence.Split("<mask>").Length - 1, residues = sequence.Length - 5 * masks, window = ContactPredictor.WindowResidues(esm);
        return residues <= window ? residues : (double)window * masks;
    }

    private static string MaskPositions(string sequence, int[] positions)
    {
        if (sequence.Contains('<')) throw ApiError.Invalid("give either <mask> tokens in the sequence or positions, not both", "positions");
        var residues = sequence.Select(c => c.ToString()).ToArray();
        foreach (int p in positions)
        {
            if (p < 1 || p > residues.Length) throw ApiError.Invalid($"positions: {p} is outside the sequence (1–{residues.Length})", "positions");
            residues[p - 1] = "<mask>";
        }
        return string.Concat(residues);
    }
}
