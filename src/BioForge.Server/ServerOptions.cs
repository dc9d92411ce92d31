using BioForge.IO;

namespace BioForge.Server;

/// <summary>How <c>bioforge serve</c> listens, which models it serves, and how it batches and sheds load.</summary>
public sealed record ServerOptions
{
    /// <summary>Model directories: ESM-2 and SMILES Llama checkpoints, and <c>bioforge dti train</c> affinity models.</summary>
    public IReadOnlyList<string> Models { get; init; } = [Shipped.Path("models/esm2-small"), Shipped.Path("models/smiles-llama-small"), Shipped.Path("models/dti-davis")];

    /// <summary>Loopback unless told otherwise: the service has no TLS of its own.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>0 picks a free port (tests); the bound address is in <see cref="BioForgeServer.Address"/>.</summary>
    public int Port { get; init; } = 8000;

    /// <summary>
    /// Host names the service answers to (the Host header); empty: any. Defaults to the loopback names, so a web page
    /// elsewhere cannot reach a loopback server through DNS rebinding; a proxy in front sends one of them.
    /// </summary>
    public IReadOnlyList<string> AllowedHosts { get; init; } = LoopbackNames;

    private static readonly IReadOnlyList<string> LoopbackNames = ["localhost", "127.0.0.1", "[::1]"];

    /// <summary>
    /// The Host names a server bound to <paramref name="host"/> answers: <paramref name="given"/> (<c>*</c>: any); by
    /// default the loopback names and the address itself on any loopback address (all of 127.0.0.0/8 is reached by a
    /// page in a local browser through DNS rebinding), any elsewhere.
    /// </summary>
    public static IReadOnlyList<string> HostsToAnswer(string[]? given, string host)
    {
        if (given is { Length: > 0 }) return given.Contains("*") ? [] : given;
        string bare = host.Trim('[', ']');
        bool loopback = host == "localhost" || System.Net.IPAddress.TryParse(bare, out var address) && System.Net.IPAddress.IsLoopback(address);
        if (!loopback) return [];
        string named = bare.Contains(':') ? $"[{bare}]" : bare;
        return LoopbackNames.Contains(named) ? LoopbackNames : [.. LoopbackNames, named];
    }

    /// <summary>How long readiness answers 503 before the server stops taking requests (one probe period or more).</summary>
    public TimeSpan DrainDelay { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// At shutdown, how long requests in flight may go on; then their work is cancelled and they are answered 503
    /// (retry elsewhere), so a long <c>/generate</c> ends with an answer instead of a dropped connection.
    /// </summary>
    public TimeSpan ShutdownGrace { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// One line per answered request on the operator's log (time, client, method, path, status, milliseconds, request
    /// id); off by default, since per-route counts and latencies are in <c>/v1/metrics</c> either way.
    /// </summary>
    public bool AccessLog { get; init; }

    /// <summary>When set, every route but the health probes needs <c>Authorization: Bearer KEY</c> (or <c>X-API-Key: KEY</c>).</summary>
    public string? ApiKey { get; init; }

    public BatchingOptions Batching { get; init; } = new();

    public DecodeOptions Decoding { get; init; } = new();

    /// <summary>A request that has not been answered by then gets 504, and is dropped if it was not computed yet.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The deadline of a /generate request (an optimization run of minutes).</summary>
    public TimeSpan JobTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Request bodies above this size get 413 before they are read.</summary>
    public long MaxRequestBytes { get; init; } = 4 << 20;

    /// <summary>Inputs in one embeddings or props request.</summary>
    public int MaxInputs { get; init; } = 2048;

    /// <summary>
    /// Characters of one SMILES anywhere a SMILES enters (props, depictions, /generate seeds, embeddings, screens). RDKit's
    /// ring perception and the SA score grow fast with size: 16 SMILES of 1,000 carbons took 45 s of CPU.
    /// </summary>
    public int MaxSmilesLength { get; init; } = 400;

    /// <summary>Screening jobs kept (running, queued or finished); older finished ones are forgotten first.</summary>
    public int MaxJobs { get; init; } = 16;

    /// <summary>Molecules in one screening job.</summary>
    public int MaxScreenMolecules { get; init; } = 100_000;

    /// <summary>CPU threads for LibTorch (0: BIOFORGE_THREADS, OMP_NUM_THREADS, or all cores).</summary>
    public int Threads { get; init; }

    public string Device { get; init; } = "auto";

    /// <summary>Number type of the language models: fp32, bf16, fp16 or auto (bf16 on CUDA, fp32 on CPU); answers are float32.</summary>
    public string DType { get; init; } = "auto";
}

/// <summary>Dynamic batching per model: a batch closes at the token budget, the item limit, or the delay after its first request.</summary>
public sealed record BatchingOptions
{
    public int MaxBatchTokens { get; init; } = 16_384;
    /// <summary>1 turns batching off (every request computed alone): the baseline of the load benchmark.</summary>
    public int MaxBatchItems { get; init; } = 128;
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>
    /// Work waiting per queue — a model's inputs (embedding texts, completion samples), the device's and the chemistry
    /// worker's requests; beyond it new work gets 503 with Retry-After instead of growing memory. At least
    /// <see cref="ServerOptions.MaxInputs"/>, or a request of that many inputs could never be admitted.
    /// </summary>
    public int QueueCapacity { get; init; } = 4096;
}

/// <summary>How <c>/v1/completions</c> batches a decoder's sequences (see <see cref="BioForge.Generation.DecodeScheduler"/>).</summary>
public sealed record DecodeOptions
{
    /// <summary>Continuous (iteration-level) batching; static and single are the load benchmark's baselines.</summary>
    public BioForge.Generation.BatchingMode Mode { get; init; } = BioForge.Generation.BatchingMode.Continuous;

    /// <summary>Sequences decoded at once per model, at most; fewer when their key/value slots would not fit <see cref="CacheBytes"/>.</summary>
    public int MaxRunning { get; init; } = 64;

    /// <summary>Key/value memory per model; 0: a tenth of the device's (a CUDA card's free memory; on the CPU what the process may use).</summary>
    public long CacheBytes { get; init; }
}
