using System.Diagnostics;
using BioForge.Generation;
using BioForge.Runtime;
using BioForge.Tokenizers;

namespace BioForge.Server;

/// <summary>
/// A served decoder's <see cref="DecodeScheduler"/> driven on the device worker: while sequences run or wait, one step
/// after another is queued on the device thread, each a piece of work like an embedding batch, so other models' work
/// interleaves between decoding steps. Steps stop when nothing is left and start again with the next submission.
/// </summary>
internal sealed class DecodeService : IDisposable
{
    private readonly DecodeScheduler scheduler;
    private readonly DeviceWorker device;
    private readonly ServerMetrics metrics;
    private readonly Func<string, int[]> encode;
    private readonly Func<int, string> piece;
    private readonly Action<string>? log;
    private int stepping;

    /// <param name="encode">A prompt's token ids, begin token first; <see cref="BioForgeException"/> for text the vocabulary cannot hold.</param>
    /// <param name="piece">The text of one generated token.</param>
    /// <param name="grammar">The default constraint on samples (<see cref="SamplingOptions.Grammar"/>).</param>
    public DecodeService(string name, DecoderNetwork model, DecodeOptions options, int queueCapacity, DeviceWorker device, ServerMetrics metrics,
        Func<string, int[]> encode, Func<int, string> piece, ITokenGrammar? grammar = null, Action<string>? log = null)
    {
        this.log = log;
        Grammar = grammar;
        Name = name;
        this.device = device;
        this.metrics = metrics;
        this.encode = encode;
        this.piece = piece;
        int length = model.MaxPositions;
        long perSlot = SlotCache.BytesPerSlot(model, length);
        // A tenth of the device's memory (a CUDA card's free memory, or what the process may use on the CPU) unless set.
        long budget = options.CacheBytes > 0 ? options.CacheBytes
            : (DeviceMemory.AvailableBytes(model.Device) ?? throw new BioForgeException($"model {name}: cannot read the free memory of {ComputeOptions.DeviceLabel(model.Device)} (nvidia-smi); set --kv-cache-mb")) / 10;
        int slots = (int)Math.Min(options.MaxRunning, budget / perSlot);
        if (slots < 1) throw new BioForgeException($"model {name}: one key/value slot takes {perSlot:N0} bytes, more than the cache budget of {budget:N0} (--kv-cache-mb)");
        scheduler = new DecodeScheduler(model, slots, length, options.Mode, queueCapacity);
        CacheBytes = perSlot * scheduler.Slots;
        metrics.QueueDepth($"{name}:decode", () => scheduler.Waiting);
        metrics.Gauge("bioforge_decode_running_sequences", "sequences holding a key/value slot, by model", name, () => scheduler.Running);
    }

    public string Name { get; }

    /// <summary>The grammar samples follow unless a request asks for none (SMILES syntax for SMILES models).</summary>
    public ITokenGrammar? Grammar { get; }
    public int Slots => scheduler.Slots;
    public long CacheBytes { get; }
    public BatchingMode Mode => scheduler.Mode;

    /// <summary>Sequences that may wait for a slot at once (<c>--queue-capacity</c>).</summary>
    public int QueueCapacity => scheduler.QueueCapacity;

    /// <summary>Positions per sequence (prompt and generated tokens).</summary>
    public int Length => scheduler.Length;
    public int EndToken => scheduler.EndToken;

    public int[] Encode(string prompt) => encode(prompt);

    public string Piece(int token) => piece(token);

    /// <summary>Queues the sequences (all or none) and makes sure steps run; 503 when the queue cannot take them.</summary>
    /// <param name="continuing">The sequences carry on a request admitted earlier: never refused, ahead of new requests (<see cref="DecodeScheduler.TrySubmit"/>).</param>
    public void Submit(IReadOnlyList<SequenceJob> jobs, bool continuing = false)
    {
        // More sequences than the queue holds would get 503 forever, however long the client waited: say so instead.
        if (jobs.Count > scheduler.QueueCapacity)
            throw ApiError.Invalid($"{jobs.Count} samples (n for each prompt) are more than model {Name} queues at once ({scheduler.QueueCapacity}, --queue-capacity); ask for fewer", "n");
        if (!scheduler.TrySubmit(jobs, continuing))
        {
            metrics.Rejected($"{Name}:decode");
            throw ApiError.Overloaded($"model {Name}: too many sequences wait for a key/value slot; retry later");
        }
        if (Interlocked.CompareExchange(ref stepping, 1, 0) == 0) _ = Pump();
    }

    private async Task Pump()
    {
        try
        {
            while (!disposed)
            {
                try
                {
                    // Admitted: the requests were admitted by Submit; a step must run for them to end.
                    await device.RunAsync(Step, CancellationToken.None, new WorkSize($"{Name}:decode-step", 1), admitted: true);
                }
                catch (ApiError e) when (e.Status == 503)
                {
                    // The worker is stopping (an admitted step is never refused for a full queue): what is left ends now
                    // instead of this loop retrying until the service is disposed.
                    scheduler.CancelRunning(waitingToo: true);
                    Volatile.Write(ref stepping, 0);
                    return;
                }
                catch (Exception e)
                {
                    // A failed step leaves its batch in an unknown state: its sequences end as cancelled, and requests whose
                    // client is still there answer 500. It touches no tensor, so it may run here, off the device thread.
                    // The cause (a device out of memory, say) is the operator's to see: the 500s say only that a step failed.
                    log?.Invoke($"model {Name}: a decoding step failed; the sequences it ran end with 500\n{e}");
                    scheduler.CancelRunning();
                }
                if (scheduler.Busy) continue;
                Volatile.Write(ref stepping, 0);
                // A submission between the check and the reset found steps running and left: take it over.
                if (!scheduler.Busy || Interlocked.CompareExchange(ref stepping, 1, 0) != 0) return;
            }
        }
        catch (Exception e)
        {
            // A callback that threw while sequences were cancelled ended the loop. Nothing awaits it, so the operator's log
            // is where the error can be seen; sequences still waiting get a new loop now rather than at the next request.
            Volatile.Write(ref stepping, 0);
            log?.Invoke($"model {Name}: decoding stopped on an error\n{e}");
            if (!disposed && scheduler.Busy && Interlocked.CompareExchange(ref stepping, 1, 0) == 0) _ = Pump();
        }
    }

    private DecodeStepReport Step()
    {
        var clock = Stopwatch.StartNew();
        var report = scheduler.Step();
        // A batch's size is the rows computed, a padded batch's padding rows included.
        if (report.Tokens > 0) metrics.Batch($"{Name}:decode", report.Prefilled + report.Decoded, report.Tokens, clock.Elapsed.TotalSeconds);
        if (report.Dropped > 0) metrics.Dropped($"{Name}:decode", report.Dropped);
        if (report.Cancelled > 0) metrics.Cancelled($"{Name}:decode", report.Cancelled);
        return report;
    }

    private volatile bool disposed;

    /// <summary>Called once the device worker has stopped: no step runs any more.</summary>
    public void Dispose()
    {
        disposed = true;
        scheduler.Dispose();
    }
}
