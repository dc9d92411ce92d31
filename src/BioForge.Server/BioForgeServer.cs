using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using BioForge.Chem;
using BioForge.Runtime;
using BioForge.Server.Routes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BioForge.Server;

/// <summary>What every route handler gets: the models, the workers they run on, the metrics, the settings.</summary>
internal sealed class ServerState(ServerOptions options, ComputeOptions compute, ModelCatalog models, DeviceWorker device, DeviceWorker longWork,
    DeviceWorker chemistry, ServerMetrics metrics, ScreenJobs jobs, Action<string>? log = null)
{
    /// <summary>The operator's log (standard output of <c>bioforge serve</c>): internal errors go here with their stack, and the access log.</summary>
    public Action<string>? Log { get; } = log;

    public ServerOptions Options { get; } = options;
    public ComputeOptions Compute { get; } = compute;
    public ModelCatalog Models { get; } = models;

    /// <summary>Short work (embedding batches, fill-mask, contacts, variant scores) on the device.</summary>
    public DeviceWorker Device { get; } = device;

    /// <summary>Minutes-long work (/generate, screening jobs) on its own thread, so short requests are not stuck behind it.</summary>
    public DeviceWorker LongWork { get; } = longWork;

    /// <summary>
    /// RDKit work of requests (properties, depictions) on a thread of its own: queued and bounded like model work, under
    /// the request's deadline, but not on the device's thread, where it held up embedding batches and decoding steps.
    /// </summary>
    public DeviceWorker Chemistry { get; } = chemistry;

    private PropertyTable? properties;

    /// <summary>
    /// Descriptors, QED, SA score and PAINS for requests' molecules: one table for the server's life, made at its first
    /// use and used on the chemistry worker only (made per request, reading its SA fragment table cost every props
    /// request about 0.25 s, even for one molecule).
    /// </summary>
    public PropertyTable Properties => properties ??= new PropertyTable();

    /// <summary>Frees the property table once the chemistry worker has stopped.</summary>
    internal void DisposeChemistry() => properties?.Dispose();

    public ServerMetrics Metrics { get; } = metrics;
    public ScreenJobs Jobs { get; } = jobs;
    public DateTimeOffset Started { get; } = DateTimeOffset.UtcNow;

    private volatile bool ready;
    private readonly CancellationTokenSource stopping = new();

    /// <summary>False while starting and once shutdown began: /v1/health/ready answers 503 so a proxy stops sending.</summary>
    public bool Ready
    {
        get => ready;
        set => ready = value;
    }

    /// <summary>Cancels the work of every request in flight (their answer is 503): the shutdown grace has passed.</summary>
    internal void StopRequests() => stopping.Cancel();

    /// <summary>Fires when the shutdown grace has passed: work that answers on its own (a stream) stops with a 503 event.</summary>
    public CancellationToken Stopping => stopping.Token;

    /// <summary>The 503 of a request the server stopped at shutdown.</summary>
    public static ApiError ShuttingDown() => ApiError.Overloaded("the server is shutting down and stopped this request; retry (another replica answers)");

    /// <summary>
    /// Awaits work queued for a request with the request's own deadline: 504 when the timeout passes first, 503 when
    /// the server stops it at shutdown, nothing when the client went away (the work, if not started yet, is dropped).
    /// </summary>
    public async Task<T> WithDeadline<T>(HttpContext context, Func<CancellationToken, Task<T>> work, TimeSpan? timeout = null)
    {
        var limit = timeout ?? Options.RequestTimeout;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping.Token);
        deadline.CancelAfter(limit);
        try
        {
            return await work(deadline.Token).WaitAsync(deadline.Token);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested && !context.RequestAborted.IsCancellationRequested)
        {
            throw ShuttingDown();
        }
        catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested)
        {
            throw new ApiError(StatusCodes.Status504GatewayTimeout, $"the request was not answered within {limit.TotalSeconds:0.###} s; retry later or send less per request");
        }
        catch
        {
            // A part refused (a full queue) or failed: the parts already queued are not computed for nobody.
            deadline.Cancel();
            throw;
        }
    }
}

/// <summary>
/// <c>bioforge serve</c>: an ASP.NET Core (Kestrel) app whose routes are declared in <c>Routes/</c> beside their
/// handlers; this class only wires the models, the workers and the middleware together.
/// </summary>
public sealed class BioForgeServer : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly ServerState state;
    private readonly Action<string>? log;

    private BioForgeServer(WebApplication app, ServerState state, Action<string>? log)
    {
        this.app = app;
        this.state = state;
        this.log = log;
    }

    /// <summary>The address Kestrel bound, e.g. <c>http://127.0.0.1:8000</c>.</summary>
    public string Address => app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    /// <summary>Loads the models and starts listening; failures (a bad model directory, a port in use) throw before anything is served.</summary>
    public static async Task<BioForgeServer> StartAsync(ServerOptions options, Action<string>? log = null, CancellationToken cancellation = default)
    {
        // Kestrel binds a host name other than localhost on every interface: a mistyped name would open the service to the network.
        if (options.Host != "localhost" && !System.Net.IPAddress.TryParse(options.Host.Trim('[', ']'), out _))
            throw new BioForgeException($"--host {options.Host}: not an IP address; give an address of this machine to bind (127.0.0.1, or 0.0.0.0 for every interface)");
        // HTTP drops a header value's outer spaces, and Authorized reads none: such a key would refuse every request.
        if (options.ApiKey is { } key && (key.Length == 0 || key != key.Trim() || key.Any(char.IsControl)))
            throw new BioForgeException("--api-key (or BIOFORGE_API_KEY) is empty, starts or ends with a space, or holds a control character: "
                + "no client could send that key; leave it out to serve without one");
        var compute = ComputeOptions.Resolve(options.Device, options.DType, options.Threads);
        var metrics = new ServerMetrics();
        var device = new DeviceWorker(ComputeOptions.DeviceLabel(compute.Device), options.Batching.QueueCapacity, metrics, options.RequestTimeout);
        var longWork = new DeviceWorker("jobs", options.MaxJobs, metrics, options.JobTimeout);
        var chemistry = new DeviceWorker("chemistry", options.Batching.QueueCapacity, metrics, options.RequestTimeout);
        void DisposeWorkers()
        {
            device.Dispose();
            longWork.Dispose();
            chemistry.Dispose();
        }
        ModelCatalog models;
        try
        {
            models = new ModelCatalog(options.Models, compute, options.Batching, device, metrics, options.Decoding, log);
        }
        catch
        {
            DisposeWorkers();
            throw;
        }
        foreach (var m in models.LanguageModels)
        {
            log?.Invoke($"model {m.Name}: {Described(m.Kind)} language model ({m.Directory}, hidden {m.HiddenSize})");
            if (m.Completions is { } c)
                log?.Invoke($"model {m.Name}: /v1/completions, {c.Mode.ToString().ToLowerInvariant()} batching, {c.Slots} sequences of {c.Length} tokens ({c.CacheBytes / 1e6:F0} MB of keys and values)");
        }
        foreach (var (name, dir, m) in models.AffinityModels) log?.Invoke($"model {name}: affinity ({m.Manifest.Measure}, {dir})");
        if (Molecule.Unavailable() is { } noRdkit) log?.Invoke($"no RDKit: requests that read molecules answer 501 ({noRdkit})");
        var state = new ServerState(options, compute, models, device, longWork, chemistry, metrics, new ScreenJobs(options.MaxJobs), log);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        // Whoever starts the server owns the process's signals (serve: the first drains, a second aborts); ASP.NET's
        // console lifetime would take SIGINT and SIGTERM as well, and a runtime whose handler chain stops at the first
        // handler that cancels would never pass them on.
        builder.Services.AddSingleton<IHostLifetime, CallerOwnedLifetime>();
        builder.WebHost.UseUrls($"http://{(options.Host.Contains(':') ? $"[{options.Host}]" : options.Host)}:{options.Port}");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = options.MaxRequestBytes);
        ApiDocument.Add(builder.Services, options, models);
        // A query value that does not bind (width=abc) throws, so Answer can name it; otherwise the answer is a bare 400.
        builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        var app = builder.Build();
        app.Use(async (context, next) => await Guard(context, next, state));
        MapRoutes(app, state);
        app.MapOpenApi("/v1/openapi.json");
        try
        {
            await app.StartAsync(cancellation);
        }
        catch
        {
            await app.DisposeAsync();
            models.Dispose();
            DisposeWorkers();
            throw;
        }
        state.Ready = true;
        return new BioForgeServer(app, state, log);
    }

    private static void MapRoutes(IEndpointRouteBuilder app, ServerState state)
    {
        HealthRoutes.Map(app, state);
        EmbeddingRoutes.Map(app, state);
        ProteinRoutes.Map(app, state);
        MoleculeRoutes.Map(app, state);
        GenerateRoutes.Map(app, state);
        CompletionRoutes.Map(app, state);
        ScreenRoutes.Map(app, state);
        WebPage.Map(app);
    }

    /// <summary>nginx's status for a request its client closed (no answer was read).</summary>
    private const int ClientClosedRequest = 499;

    /// <summary>
    /// Where a stream that ended in an error event leaves that error's status: its status line said 200 before the
    /// first event, but metrics and the access log count how it ended.
    /// </summary>
    internal const string StreamStatus = "bioforge.stream-status";

    /// <summary>
    /// Around every request: the API key, errors as one JSON message with the right status, and the metrics
    /// (route pattern, status, latency).
    /// </summary>
    private static async Task Guard(HttpContext context, RequestDelegate next, ServerState state)
    {
        var clock = Stopwatch.StartNew();
        bool clientLeft = false;
        try
        {
            if (state.Options.AllowedHosts is { Count: > 0 } hosts && !hosts.Contains(context.Request.Host.Host, StringComparer.OrdinalIgnoreCase))
                throw ApiError.BadRequest($"Host '{context.Request.Host.Host}' is not served here (allowed: {string.Join(", ", hosts)}; see --allowed-hosts)");
            if (!Authorized(context, state.Options.ApiKey))
                throw new ApiError(StatusCodes.Status401Unauthorized, "missing or wrong API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'");
            await next(context);
            if (context.Response.StatusCode >= 400 && !context.Response.HasStarted)
                await Unexplained(context).WriteAsync(context);
        }
        catch (Exception e) when (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            var error = Answer(e, state.Options);
            if (error.Status >= 500 && error.Status is not (StatusCodes.Status501NotImplemented or StatusCodes.Status503ServiceUnavailable or StatusCodes.Status504GatewayTimeout))
            {
                state.Log?.Invoke($"{context.Request.Method} {context.Request.Path} [{context.TraceIdentifier}]: {error.Status} {error.Message}\n{e}");
                error = ApiError.Internal(context.TraceIdentifier);
            }
            await error.WriteAsync(context);
        }
        catch (Exception) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client closed the request; nobody reads the answer. A started response (a stream) keeps its status line.
            clientLeft = true;
            if (!context.Response.HasStarted) context.Response.StatusCode = ClientClosedRequest;
        }
        finally
        {
            string route = (context.GetEndpoint() as RouteEndpoint ?? RefusedByContentType(context))?.RoutePattern.RawText is { } raw ? (raw.Length > 1 ? raw.TrimEnd('/') : raw) : "unmatched";
            int status = clientLeft ? ClientClosedRequest : context.Items[StreamStatus] is int ended ? ended : context.Response.StatusCode;
            state.Metrics.Request(route, status, clock.Elapsed.TotalSeconds);
            if (state.Options.AccessLog) state.Log?.Invoke(AccessLine(context, status, clock.Elapsed));
        }
    }

    /// <summary>
    /// The route a request with another Content-Type was meant for: routing answers it (415) with an endpoint of its own,
    /// not the route's, and such requests would otherwise be counted as matching no route.
    /// </summary>
    private static RouteEndpoint? RefusedByContentType(HttpContext context) =>
        context.Response.StatusCode != StatusCodes.Status415UnsupportedMediaType ? null
        : context.RequestServices.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .FirstOrDefault(e => string.Equals(e.RoutePattern.RawText?.TrimEnd('/'), context.Request.Path.Value?.TrimEnd('/'), StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// <c>2026-12-05T21:40:12.345Z 127.0.0.1 POST /v1/completions 200 812.4ms 0HNA1B2C3D4E5:00000001</c>: when the answer
    /// ended (a stream: its last event), the client (the proxy's address behind one), the request, its status
    /// (499: the client left), its time, and the id a 500 answer names.
    /// </summary>
    internal static string AccessLine(HttpContext context, int status, TimeSpan elapsed) => string.Create(CultureInfo.InvariantCulture,
        $"{DateTimeOffset.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} {context.Connection.RemoteIpAddress?.ToString() ?? "-"} {context.Request.Method} {context.Request.Path}{Printable(context.Request.QueryString.Value)} {status} {elapsed.TotalMilliseconds:F1}ms {context.TraceIdentifier}");

    /// <summary>
    /// Text from a request as one log line can hold it: control characters as <c>%XX</c>. Kestrel passes raw control bytes
    /// of a query through (the path it escapes itself), and a carriage return or an escape sequence forged a second log
    /// line or overprinted the real one on a terminal.
    /// </summary>
    internal static string Printable(string? text) =>
        string.IsNullOrEmpty(text) || !text.Any(char.IsControl) ? text ?? ""
            : string.Concat(text.Select(c => char.IsControl(c) ? $"%{(int)c:X2}" : c.ToString()));

    private static string Described(ModelKind kind) => kind switch
    {
        ModelKind.Protein => "protein masked",
        ModelKind.ProteinDecoder => "protein causal",
        ModelKind.Molecule => "SMILES causal",
        ModelKind.Text => "text (GPT-2) causal",
        _ => kind.ToString().ToLowerInvariant(),
    };

    /// <summary>
    /// The answer to a request that failed with <paramref name="e"/>: a user-worded problem is the request's (422) unless
    /// the machine lacks a library the request needs (501, e.g. SMILES on a server built without RDKit) or it is marked
    /// as the server's (<see cref="BioForgeException.ServerFault"/>); anything else is a fault of ours (500, logged with
    /// its stack).
    /// </summary>
    internal static ApiError Answer(Exception e, ServerOptions options) => e switch
    {
        ApiError api => api,
        BadHttpRequestException bad when bad.StatusCode == StatusCodes.Status413PayloadTooLarge =>
            new ApiError(StatusCodes.Status413PayloadTooLarge, $"the request body is larger than {options.MaxRequestBytes:N0} bytes (the server's --max-request-bytes)"),
        BadHttpRequestException bad when Regex.Match(bad.Message, "^Failed to bind parameter \"(?<type>[^ \"]+) (?<name>[^ \"]+)\" from \"(?<value>.*)\"\\.?$") is { Success: true } query =>
            ApiError.BadRequest($"{query.Groups["name"].Value}: '{query.Groups["value"].Value}' is not {(query.Groups["type"].Value is "int" or "long" or "Nullable<int>" or "Nullable<long>" or "int?" ? "a whole number" : "a valid value")}",
                query.Groups["name"].Value),
        BadHttpRequestException bad => new ApiError(bad.StatusCode, bad.Message),
        BioForgeException { MissingDependency: true } missing =>
            new ApiError(StatusCodes.Status501NotImplemented, $"this server cannot answer this request: {missing.Message}"),
        BioForgeException { ServerFault: false } bio => ApiError.Invalid(bio.Message),
        _ => new ApiError(StatusCodes.Status500InternalServerError, $"internal error: {e.GetType().Name}: {e.Message}"),
    };

    /// <summary>A message for the answers ASP.NET gives without a body (no such route, wrong method, wrong content type).</summary>
    private static ApiError Unexplained(HttpContext context) => context.Response.StatusCode switch
    {
        404 => ApiError.NotFound($"no route {context.Request.Method} {context.Request.Path}; see /v1/openapi.json"),
        405 => new ApiError(405, $"{context.Request.Path} does not take {context.Request.Method}; see /v1/openapi.json"),
        415 => new ApiError(415, $"Content-Type must be application/json (got '{context.Request.ContentType}')"),
        int status => new ApiError(status, $"HTTP {status}"),
    };

    private static bool Authorized(HttpContext context, string? key)
    {
        if (key is null) return true;
        if (Routes.OpenWithoutKey.On(context.GetEndpoint())) return true;
        string? given = context.Request.Headers.Authorization.ToString() is { Length: > 7 } auth && auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
            ? auth[7..].Trim()
            : context.Request.Headers["X-API-Key"].ToString();
        return given is { Length: > 0 } && System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
            System.Text.Encoding.UTF8.GetBytes(given), System.Text.Encoding.UTF8.GetBytes(key));
    }

    /// <summary>
    /// Drains and stops: readiness answers 503 for <see cref="ServerOptions.DrainDelay"/> (so a proxy stops sending), the
    /// requests in flight get <see cref="ServerOptions.ShutdownGrace"/> to finish and are then stopped with a 503 answer,
    /// jobs are stopped, the workers end their current work, and only then are the weights freed.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        state.Ready = false;
        if (state.Options.DrainDelay > TimeSpan.Zero) await Task.Delay(state.Options.DrainDelay);
        // Kestrel drops the connections still open when its token fires: it must outlast the grace plus the time
        // the stopped requests take to write their 503 (they stop waiting at once; see WithDeadline).
        using (var abort = new CancellationTokenSource(state.Options.ShutdownGrace + AnswerTime))
        {
            var kestrel = app.StopAsync(abort.Token);
            if (await Task.WhenAny(kestrel, Task.Delay(state.Options.ShutdownGrace)) != kestrel) state.StopRequests();
            await kestrel;
        }
        await app.DisposeAsync();
        state.Jobs.Dispose();
        // Joining the worker threads blocks for up to their timeout: off the caller's (thread-pool) thread.
        bool stopped = await Task.Run(() =>
        {
            if (state.Chemistry.Stop(WorkerStopTimeout)) state.DisposeChemistry(); // holds no model weights
            return state.LongWork.Stop(WorkerStopTimeout) & state.Device.Stop(WorkerStopTimeout);
        });
        if (stopped) state.Models.Dispose();
        else log?.Invoke($"a device worker is still running after {WorkerStopTimeout.TotalSeconds:F0} s; its model weights are left to the process exit");
    }

    private static readonly TimeSpan WorkerStopTimeout = TimeSpan.FromSeconds(30);

    /// <summary>What a stopped request gets, after the grace, to write its 503 before Kestrel closes connections.</summary>
    private static readonly TimeSpan AnswerTime = TimeSpan.FromSeconds(5);
}

/// <summary>A host lifetime that neither waits for nor listens to anything: whoever starts the server stops it.</summary>
internal sealed class CallerOwnedLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
