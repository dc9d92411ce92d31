using System.ComponentModel.DataAnnotations;
using BioForge.Chem;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace BioForge.Server.Routes;

/// <summary>RDKit over HTTP: properties of many molecules (as <c>bioforge chem props</c>), and SVG depictions for pages.</summary>
internal static class MoleculeRoutes
{
    public sealed class PropsRequest
    {
        [Required, Example("[\"CCO\", \"c1ccccc1O\"]")]
        public string[]? Smiles { get; set; }
    }

    /// <summary>One molecule's properties; an invalid SMILES keeps its place with <c>valid = false</c> and RDKit's reason.</summary>
    public sealed record PropsRow(int Index, string Input, bool Valid, string? Canonical, double? Molwt, double? Logp, double? Tpsa, int? Hbd, int? Hba,
        int? RotatableBonds, double? Qed, double? Sa, IReadOnlyList<string>? Pains, string? Error);

    public sealed record PropsResponse(IReadOnlyList<PropsRow> Data);

    public static void Map(IEndpointRouteBuilder app, ServerState state)
    {
        var molecule = app.MapGroup("/v1/molecule").WithTags("molecule");

        molecule.MapPost("/props", async (HttpContext context) =>
        {
            var request = await Json.ReadAsync<PropsRequest>(context.Request);
            if (request.Smiles is not { Length: > 0 } smiles) throw ApiError.BadRequest("smiles is required: an array of SMILES", "smiles");
            if (smiles.Length > state.Options.MaxInputs) throw ApiError.Invalid($"smiles has {smiles.Length} items; at most {state.Options.MaxInputs} per request", "smiles");
            Smiles.CheckEach(smiles, "smiles", state);
            // RDKit work queues on the chemistry worker: bounded (503), under the request's deadline (504), dropped when
            // the client leaves, and checked between small chunks once it runs.
            var rows = await state.WithDeadline(context, token => state.Chemistry.RunAsync(() =>
            {
                var table = state.Properties;
                var records = smiles.Select((s, i) => new MoleculeRecord(s, s, false, i + 1, new Dictionary<string, string>()));
                return table.ComputeAll(records, Math.Max(1, state.Compute.Threads), chunk: 32, token).Select((r, i) => r.Valid
                    ? new PropsRow(i, r.Input, true, r.Canonical, r.Descriptors!.MolWt, r.Descriptors.LogP, r.Descriptors.Tpsa, r.Descriptors.HBondDonors,
                        r.Descriptors.HBondAcceptors, r.Descriptors.RotatableBonds, r.Qed, r.Sa, r.Pains.Length == 0 ? [] : r.Pains.Split(';'), null)
                    : new PropsRow(i, r.Input, false, null, null, null, null, null, null, null, null, null, null, r.Error)).ToList();
            }, token, new WorkSize("props", smiles.Sum(s => s?.Length ?? 0))));
            return Results.Json(new PropsResponse(rows), Json.Options);
        })
        .WithSummary("Descriptors, QED, SA score and PAINS alerts (RDKit)").Accepts<PropsRequest>("application/json").Produces<PropsResponse>().ProducesErrors(400, 422, 501, 503, 504);

        molecule.MapMethods("/depict", EndpointMetadataExtensions.Reads, async (HttpContext context, string? smiles, int? width, int? height) =>
        {
            if (string.IsNullOrWhiteSpace(smiles)) throw ApiError.BadRequest("smiles is required (query string)", "smiles");
            int w = width ?? 300, h = height ?? 220;
            if (w is < 50 or > 2000) throw ApiError.Invalid($"width must be 50–2000 (got {w})", "width");
            if (h is < 50 or > 2000) throw ApiError.Invalid($"height must be 50–2000 (got {h})", "height");
            Smiles.CheckLength(smiles, "smiles", state);
            string svg = await state.WithDeadline(context, token => state.Chemistry.RunAsync(() =>
            {
                if (!Molecule.TryFromSmiles(smiles, out var parsed, out string? error)) throw ApiError.Invalid($"smiles: '{smiles}' is not a valid SMILES: {error}", "smiles");
                using (parsed) return parsed!.ToSvg(w, h);
            }, token, new WorkSize("depict", smiles.Length)));
            return Results.Text(svg, "image/svg+xml");
        })
        .WithSummary("2D depiction as SVG").Produces<string>(200, "image/svg+xml").ProducesErrors(400, 422, 501, 503, 504)
        .Parameter("smiles", "c1ccccc1O", required: true).Parameter("width", 300, required: false).Parameter("height", 220, required: false);
    }
}
