using System.ComponentModel.DataAnnotations;
using BioForge.Chem;
using BioForge.Discovery;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace BioForge.Server.Routes;

/// <summary>
/// Virtual screening as a job (it can take minutes): <c>POST /v1/screen</c> answers 202 with the job's id at once;
/// <c>GET /v1/screen/{id}</c> shows its progress, <c>GET /v1/screen/{id}/results</c> its hits, <c>DELETE</c> stops it.
/// </summary>
internal static class ScreenRoutes
{
    public sealed class ScreenRequest
    {
        /// <summary>An affinity model served here (default: the one served).</summary>
        [ServedModelExample(ModelKind.Affinity)]
        public string? Model { get; set; }

        /// <summary>The target protein's sequence.</summary>
        [Required, Example("\"MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ\"")]
        public string? Target { get; set; }

        [Required, Example("[\"CCO\", \"c1ccccc1O\"]")]
        public string[]? Smiles { get; set; }

        /// <summary>Names for the molecules, one per SMILES (default: their 1-based index).</summary>
        [Example("[\"ethanol\", \"phenol\"]")]
        public string[]? Ids { get; set; }

        [Example("10")]
        public int Top { get; set; } = 100;

        /// <summary>Property limits a molecule must meet to be scored (mw, logp, tpsa, hbd, hba, rotatable_bonds, rings, aromatic_rings, qed, sa; or ro5, veber).</summary>
        [Example("[\"mw<=500\", \"logp<=5\"]")]
        public string[]? Limits { get; set; }

        /// <summary>PAINS/Brenk rules not reported as alerts (Michael_acceptor_1 for covalent acrylamides).</summary>
        [Example("[\"Michael_acceptor_1\"]")]
        public string[]? AllowAlerts { get; set; }
    }

    public sealed record JobView(string Id, string Status, string Model, int Total, long Processed, double Progress, string Submitted, string? Finished,
        string? Error, long? Invalid, double? MoleculesPerSecond, string StatusUrl, string ResultsUrl);

    public sealed record Hit(int Rank, string Id, string Smiles, double Affinity, double Qed, double Sa, double Logp, double Molwt, double Tpsa, int Hbd, int Hba,
        string Alerts, string? NearestKnownBinder, string? NearestBinderName, double? NearestBinderSimilarity, double? NearestTrainingLigandSimilarity,
        double? NearestBinderMeasured);

    /// <param name="WithoutCarbon">Molecules not scored for having no carbon atom (water, inorganic salts).</param>
    public sealed record ResultsView(string Id, string Measure, long Scored, long Invalid, long OutsideLimits, long WithoutCarbon, IReadOnlyList<string> FirstErrors, IReadOnlyList<Hit> Hits);

    /// <summary>The shape of a job id, for the document (the ids themselves are random).</summary>
    private const string ExampleId = "0123456789abcdef0123456789abcdef";

    public static void Map(IEndpointRouteBuilder app, ServerState state)
    {
        var screen = app.MapGroup("/v1/screen").WithTags("screening");

        screen.MapPost("", async (HttpContext context) =>
        {
            var request = await Json.ReadAsync<ScreenRequest>(context.Request);
            var (name, model) = state.Models.Affinity(request.Model, "model");
            var (targetName, target) = Target(request.Target);
            if (request.Smiles is not { Length: > 0 } smiles) throw ApiError.BadRequest("smiles is required: the library as an array of SMILES", "smiles");
            if (smiles.Length > state.Options.MaxScreenMolecules)
                throw ApiError.Invalid($"smiles has {smiles.Length:N0} molecules; at most {state.Options.MaxScreenMolecules:N0} per job", "smiles");
            Smiles.CheckEach(smiles, "smiles", state);
            if (request.Ids is { } ids && ids.Length != smiles.Length) throw ApiError.Invalid($"ids has {ids.Length} names for {smiles.Length} SMILES", "ids");
            if (request.Top is < 1 or > 10_000) throw ApiError.Invalid($"top must be 1–10000 (got {request.Top})", "top");
            // Said now (501), not as a job that fails later: screening reads every molecule with RDKit.
            if (Molecule.Unavailable() is { } noRdkit) throw new BioForgeException(noRdkit) { MissingDependency = true };
            var options = new ScreenOptions { Top = request.Top, BatchSize = 256, Limits = Limits(request.Limits), AllowedAlerts = AllowedAlerts(request.AllowAlerts), TargetName = targetName };
            var job = state.Jobs.Add(name, smiles.Length, request.Top);
            var library = smiles.Select((s, i) => new MoleculeRecord(request.Ids?[i] ?? $"#{i + 1}", s, false, i + 1, new Dictionary<string, string>())
            { Where = request.Ids?[i] is { } id ? $"smiles[{i}] ({id})" : $"smiles[{i}]" });
            var token = job.Cancel.Token;
            Task<bool> run;
            try
            {
                // Admitted without a predicted wait (a job is not waited for; jobs are bounded by the number kept); once
                // running, it has the job timeout, so one job cannot hold the jobs worker indefinitely.
                run = state.LongWork.RunAsync(() => Execute(job, model, target, library, options, state.Options.JobTimeout, token), token,
                    new WorkSize("screen", smiles.Length), admitted: true);
            }
            catch (ApiError)
            {
                state.Jobs.Remove(job); // refused (the queue is full): nothing was started, nothing to keep
                throw;
            }
            _ = run.ContinueWith(t =>
            {
                if (t.IsCanceled || t.Exception?.InnerException is OperationCanceledException) job.Finish(JobStatus.Cancelled);
                else if ((t.Exception?.InnerException ?? t.Exception) is Exception e)
                {
                    // As a 500 answers: a fault of ours is logged, and its message (which can carry the server's paths) is not shown.
                    if (e is BioForgeException { ServerFault: false } or ApiError) job.Finish(JobStatus.Failed, error: e.Message);
                    else
                    {
                        state.Log?.Invoke($"screen job {job.Id} failed: {e}");
                        job.Finish(JobStatus.Failed, error: $"internal error; the server's log has the details under job {job.Id}");
                    }
                }
            }, TaskScheduler.Default);
            context.Response.Headers.Location = $"/v1/screen/{job.Id}";
            return Results.Json(View(job), Json.Options, statusCode: StatusCodes.Status202Accepted);
        })
        .WithSummary("Submit a screening job: a library of SMILES against one target").Accepts<ScreenRequest>("application/json")
        .Produces<JobView>(202).ProducesErrors(400, 404, 422, 501, 503).ServesAffinityModels();

        screen.MapMethods("/{id}", EndpointMetadataExtensions.Reads, (string id) => Results.Json(View(state.Jobs.Get(id)), Json.Options))
            .WithSummary("A screening job's status and progress").Produces<JobView>().ProducesErrors(404).Parameter("id", ExampleId, required: true);

        screen.MapMethods("/{id}/results", EndpointMetadataExtensions.Reads, (string id) =>
        {
            var job = state.Jobs.Get(id);
            var (status, result, error, _) = job.Snapshot();
            if (status != JobStatus.Succeeded)
                throw new ApiError(StatusCodes.Status409Conflict, $"job {id} is {status.ToString().ToLowerInvariant()}; results exist once it has succeeded{(error is null ? "" : $" ({error})")}", "id");
            var r = result!;
            string measure = state.Models.Affinity(job.Model, "model").Model.Manifest.Measure;
            return Results.Json(new ResultsView(job.Id, measure, r.Scored, r.Invalid, r.OutsideLimits, r.WithoutCarbon, r.FirstErrors,
                [.. r.Hits.Select(h => new Hit(h.Rank, h.Id, h.Smiles, h.Affinity, h.Qed, h.Sa, h.LogP, h.MolWt, h.Tpsa, h.Donors, h.Acceptors, h.Alerts, h.NearestBinder, h.NearestBinderName, h.NearestSimilarity, h.TrainingSimilarity,
                    h.NearestBinderAffinity))]), Json.Options);
        })
        .WithSummary("A finished job's hits, best first").Produces<ResultsView>().ProducesErrors(404, 409).Parameter("id", ExampleId, required: true);

        screen.MapDelete("/{id}", (string id) =>
        {
            var job = state.Jobs.Get(id);
            if (job.Done) return Results.Json(View(job), Json.Options);
            job.RequestCancel();
            return Results.Json(View(job), Json.Options, statusCode: StatusCodes.Status202Accepted);
        })
        .WithSummary("Stop a queued or running job (202; 200 when it had already ended)").Produces<JobView>(202).Produces<JobView>(200).ProducesErrors(404).Parameter("id", ExampleId, required: true);
    }

    private static bool Execute(ScreenJob job, AffinityModel model, string target, IEnumerable<MoleculeRecord> library, ScreenOptions options, TimeSpan timeout,
        CancellationToken cancellation)
    {
        if (!job.TryStart()) throw new OperationCanceledException(cancellation);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        deadline.CancelAfter(timeout);
        ScreenSummary summary;
        try
        {
            summary = VirtualScreen.Run(model, target, Cancellable(library, deadline.Token), options,
                new Progress(job), deadline.Token);
        }
        catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
        {
            throw new BioForgeException($"the job ran past the {timeout.TotalSeconds:0.###} s job timeout after {job.Processed:N0} of {job.Total:N0} molecules; screen a smaller library per job");
        }
        if (summary.Scored == 0 && summary.OutsideLimits > 0) throw new BioForgeException($"all {summary.OutsideLimits:N0} molecules read are outside the limits");
        if (summary.Scored == 0 && summary.WithoutCarbon > 0) throw new BioForgeException($"none of the {summary.WithoutCarbon:N0} molecules read has a carbon atom (water, inorganic salts): nothing to screen");
        if (summary.Scored == 0) throw new BioForgeException($"no molecule of the library could be read ({summary.Invalid} invalid; first: {summary.FirstErrors.FirstOrDefault()})");
        job.Finish(JobStatus.Succeeded, summary);
        return true;
    }

    private static IEnumerable<MoleculeRecord> Cancellable(IEnumerable<MoleculeRecord> records, CancellationToken cancellation)
    {
        foreach (var r in records)
        {
            cancellation.ThrowIfCancellationRequested();
            yield return r;
        }
    }

    /// <summary>Counts on the calling thread (IProgress without a synchronization context).</summary>
    private sealed class Progress(ScreenJob job) : IProgress<int>
    {
        public void Report(int value) => job.Advance(value);
    }

    /// <summary>The target's name and sequence; the request's text is never taken for a file name on the server.</summary>
    private static (string Name, string Sequence) Target(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) throw ApiError.BadRequest("target is required: a target name such as ABL1, a UniProt accession such as Q06187, or the target protein's sequence", "target");
        try
        {
            var resolved = ProteinTarget.Resolve(text, files: false);
            return (resolved.Name, resolved.Sequence);
        }
        catch (BioForgeException e) when (!e.ServerFault)
        {
            throw ApiError.Invalid(e.Message, "target");
        }
    }

    private static IReadOnlyList<PropertyLimit> Limits(string[]? texts)
    {
        var limits = new List<PropertyLimit>();
        for (int i = 0; texts is not null && i < texts.Length; i++)
        {
            try
            {
                limits.AddRange(PropertyLimit.ParseAll([texts[i] ?? ""], $"limits[{i}]"));
            }
            catch (BioForgeException e) when (!e.ServerFault)
            {
                throw ApiError.Invalid(e.Message, "limits");
            }
        }
        return limits;
    }

    /// <summary>Rule names checked now (422), not when the job runs.</summary>
    private static string[] AllowedAlerts(string[]? names)
    {
        if (names is not { Length: > 0 }) return [];
        try
        {
            using var _ = new StructuralFilters(FilterCatalogs.Pains | FilterCatalogs.Brenk, [.. names.Select(n => n ?? "")]);
        }
        catch (BioForgeException e) when (!e.ServerFault)
        {
            throw ApiError.Invalid(e.Message, "allow_alerts");
        }
        return names;
    }

    private static JobView View(ScreenJob job)
    {
        var (status, result, error, finished) = job.Snapshot();
        return new(job.Id, status.ToString().ToLowerInvariant(), job.Model, job.Total, job.Processed,
            job.Total == 0 ? 0 : Math.Round(job.Processed / (double)job.Total, 4), job.Submitted.ToString("O"), finished?.ToString("O"), error,
            result?.Invalid, result is { } r ? Math.Round(r.MoleculesPerSecond, 1) : null, $"/v1/screen/{job.Id}", $"/v1/screen/{job.Id}/results");
    }
}
