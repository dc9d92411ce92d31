using System.CommandLine;
using BioForge.Server;

namespace BioForge.Cli;

/// <summary><c>bioforge serve</c>: the HTTP inference service, until Ctrl+C or SIGTERM (then it drains and stops).</summary>
internal static class ServeCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var defaults = new ServerOptions();
        var models = new Option<string[]>("--models") { Description = "model directories: ESM-2, SMILES or protein Llama and GPT-2 checkpoints, affinity models (default: models/esm2-small, models/smiles-llama-small, models/dti-davis)", AllowMultipleArgumentsPerToken = true };
        var host = new Option<string>("--host") { Description = "address to bind (loopback by default; 0.0.0.0 for all interfaces)", DefaultValueFactory = _ => defaults.Host };
        var port = Options.Int("--port", "TCP port", defaults.Port);
        var apiKey = new Option<string?>("--api-key") { Description = "require 'Authorization: Bearer KEY' or 'X-API-Key: KEY' (default: BIOFORGE_API_KEY, else no key)" };
        var batchTokens = Options.Int("--max-batch-tokens", "token budget of one batch", defaults.Batching.MaxBatchTokens);
        var batchItems = Options.Int("--max-batch-items", "requests in one batch (1 turns dynamic batching off)", defaults.Batching.MaxBatchItems);
        var delay = new Option<double>("--max-delay-ms") { Description = "how long a batch waits for company after its first request", DefaultValueFactory = _ => defaults.Batching.MaxDelay.TotalMilliseconds };
        var queue = Options.Int("--queue-capacity", "inputs (texts, samples) waiting per model before 503", defaults.Batching.QueueCapacity);
        var timeout = new Option<double>("--request-timeout-s") { Description = "answer 504 after this many seconds", DefaultValueFactory = _ => defaults.RequestTimeout.TotalSeconds };
        var maxBytes = new Option<long>("--max-request-bytes") { Description = "larger request bodies get 413", DefaultValueFactory = _ => defaults.MaxRequestBytes };
        var allowedHosts = new Option<string[]>("--allowed-hosts") { Description = "Host header values to answer (default: the loopback names when bound to loopback, any otherwise; * for any)", AllowMultipleArgumentsPerToken = true };
        var drain = new Option<double>("--drain-s") { Description = "on shutdown, seconds readiness answers 503 before requests stop being taken", DefaultValueFactory = _ => defaults.DrainDelay.TotalSeconds };
        var grace = new Option<double>("--shutdown-grace-s") { Description = "on shutdown, seconds requests in flight may go on before they are stopped and answered 503", DefaultValueFactory = _ => defaults.ShutdownGrace.TotalSeconds };
        var maxSmiles = Options.Int("--max-smiles-length", "characters of one SMILES in any request (longer ones get 422)", defaults.MaxSmilesLength);
        var decodeBatching = new Option<string>("--decode-batching") { Description = "how /v1/completions batches sequences: continuous, static (request-level), padded (request-level, ended rows computed to the batch's end) or single", DefaultValueFactory = _ => "continuous" };
        var maxRunning = Options.Int("--max-running", "sequences decoded at once per model (key/value slots)", defaults.Decoding.MaxRunning);
        var cacheMb = Options.Int("--kv-cache-mb", "key/value memory per decoder model in MiB, which may lower --max-running (0: a tenth of the device's: a CUDA card's free memory, the process's on the CPU)", 0);
        var accessLog = new Option<bool>("--access-log") { Description = "write a line per answered request to standard output (time, client, method, path, status, milliseconds, request id)" };
        var compute = new ComputeOptionSet();
        var command = new Command("serve", "HTTP inference service: embeddings, completions, protein and molecule routes, MolMIM /generate, screening jobs, a web page")
        {
            models, host, port, apiKey, batchTokens, batchItems, delay, queue, timeout, maxBytes, allowedHosts, drain, grace, maxSmiles, decodeBatching, maxRunning, cacheMb, accessLog,
        };
        compute.AddTo(command);
        command.SetAction(result => Cli.Guard(error, () =>
        {
            var options = new ServerOptions
            {
                Models = result.GetValue(models) is { Length: > 0 } dirs ? dirs : defaults.Models,
                Host = result.GetValue(host)!,
                Port = result.GetValue(port),
                ApiKey = result.GetValue(apiKey) ?? (Environment.GetEnvironmentVariable("BIOFORGE_API_KEY") is { Length: > 0 } k ? k : null),
                Batching = new BatchingOptions
                {
                    MaxBatchTokens = Positive(result.GetValue(batchTokens), "--max-batch-tokens"),
                    MaxBatchItems = Positive(result.GetValue(batchItems), "--max-batch-items"),
                    MaxDelay = Duration(TimeSpan.FromMilliseconds(1), result.GetValue(delay), "--max-delay-ms", allowZero: true),
                    QueueCapacity = Positive(result.GetValue(queue), "--queue-capacity"),
                },
                Decoding = new DecodeOptions
                {
                    Mode = result.GetValue(decodeBatching) switch
                    {
                        "continuous" => BioForge.Generation.BatchingMode.Continuous,
                        "static" => BioForge.Generation.BatchingMode.Static,
                        "padded" => BioForge.Generation.BatchingMode.Padded,
                        "single" => BioForge.Generation.BatchingMode.Single,
                        var other => throw new BioForgeException($"--decode-batching must be continuous, static, padded or single (got '{other}')"),
                    },
                    MaxRunning = Positive(result.GetValue(maxRunning), "--max-running"),
                    CacheBytes = (long)NonNegative(result.GetValue(cacheMb), "--kv-cache-mb") << 20,
                },
                RequestTimeout = Duration(TimeSpan.FromSeconds(1), result.GetValue(timeout), "--request-timeout-s", allowZero: false),
                DrainDelay = Duration(TimeSpan.FromSeconds(1), result.GetValue(drain), "--drain-s", allowZero: true),
                ShutdownGrace = Duration(TimeSpan.FromSeconds(1), result.GetValue(grace), "--shutdown-grace-s", allowZero: true),
                AllowedHosts = ServerOptions.HostsToAnswer(result.GetValue(allowedHosts), result.GetValue(host)!),
                MaxRequestBytes = result.GetValue(maxBytes) > 0 ? result.GetValue(maxBytes) : throw new BioForgeException("--max-request-bytes must be positive"),
                MaxSmilesLength = Positive(result.GetValue(maxSmiles), "--max-smiles-length"),
                Device = result.GetValue(compute.Device)!,
                DType = result.GetValue(compute.DType)!,
                Threads = result.GetValue(compute.Threads),
                AccessLog = result.GetValue(accessLog),
            };
            if (options.Port is < 0 or > 65535) throw new BioForgeException($"--port must be 0–65535 (got {options.Port})");
            return Run(options, output, error);
        }));
        return command;
    }

    private static int Run(ServerOptions options, TextWriter output, TextWriter error)
    {
        bool serving = false;
        return Cli.Stoppable(() => Volatile.Read(ref serving) ? "stopping: finishing requests in flight" : "stopping once the models have loaded (loading cannot be interrupted)", stop =>
        {
            BioForgeServer server;
            try
            {
                server = BioForgeServer.StartAsync(options, output.WriteLine, stop).GetAwaiter().GetResult();
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return 0; // stopped while loading its models: nothing was served
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
            {
                // An address in use comes as IOException, an address this machine does not have as SocketException.
                throw new BioForgeException($"--host {options.Host} --port {options.Port}: cannot listen there ({e.Message})");
            }
            Volatile.Write(ref serving, true);
            output.WriteLine($"serving on {server.Address} (web page: {server.Address}/, OpenAPI: {server.Address}/v1/openapi.json){(options.ApiKey is null ? "" : "; API key required")}");
            // Off loopback with neither a key nor a Host list, anyone who reaches the port (or a page a local browser
            // opens, by DNS rebinding) uses the service: said once, where the operator looks.
            if (options.ApiKey is null && ServerOptions.HostsToAnswer(null, options.Host).Count == 0)
                error.WriteLine($"warning: --host {options.Host} answers any client without an API key{(options.AllowedHosts.Count == 0 ? ", whatever Host it names" : "")}; set --api-key (or BIOFORGE_API_KEY){(options.AllowedHosts.Count == 0 ? " and --allowed-hosts" : "")} unless a proxy in front does");
            output.Flush();
            stop.WaitHandle.WaitOne(); // until Ctrl+C or SIGTERM; DisposeAsync drains
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            return 0;
        });
    }

    private static int Positive(int value, string name) => value > 0 ? value : throw new BioForgeException($"{name} must be positive (got {value})");

    private static double NonNegative(double value, string name) => value >= 0 ? value : throw new BioForgeException($"{name} must be 0 or more (got {value})");

    /// <summary>The longest wait .NET's timers take (about 49.7 days); a longer one would fail at run time, not here.</summary>
    private static readonly TimeSpan LongestWait = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    private static TimeSpan Duration(TimeSpan unit, double count, string name, bool allowZero)
    {
        if (!(count > 0 || (allowZero && count == 0)) || count * unit.TotalMilliseconds > LongestWait.TotalMilliseconds)
            throw new BioForgeException($"{name} must be {(allowZero ? "0 or more" : "positive")} and at most {LongestWait.TotalMilliseconds / unit.TotalMilliseconds:0} (about 49 days; got {count})");
        return TimeSpan.FromMilliseconds(count * unit.TotalMilliseconds);
    }
}
