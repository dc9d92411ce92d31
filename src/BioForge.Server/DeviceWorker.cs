using System.Diagnostics;
using System.Threading.Channels;
using BioForge.Runtime;

namespace BioForge.Server;

/// <summary>What a piece of work is, for predicting how long it takes: its kind and its size in that kind's units (tokens, residues², SMILES characters).</summary>
internal readonly record struct WorkSize(string Kind, double Units);

/// <summary>
/// One thread that runs all model work for one device, one piece at a time: batches from every model's batcher and
/// single requests queue here, so models never fight over the device, and LibTorch's thread-local state (no-grad
/// mode, dispose scopes) stays on one thread. Work whose caller has gone is skipped, never computed.
/// It also predicts its backlog: each kind of work keeps a fit of its time as a fixed part plus a part per unit, measured
/// as it runs (<see cref="WorkCostModel"/>), so a request that would wait past <see cref="MaxWait"/> is refused with 503 at once (as Triton's queue
/// policy does with a timeout) instead of waiting into a 504.
/// </summary>
internal sealed class DeviceWorker : IDisposable
{
    private readonly Channel<Action> queue = Channel.CreateUnbounded<Action>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Thread thread;
    private readonly int capacity;
    private readonly WorkCostModel costs = new();
    private readonly ServerMetrics metrics;
    private int waiting;
    private long queuedTicks; // predicted Stopwatch ticks of the pieces waiting
    private long runningEnd; // Stopwatch timestamp at which the running piece should end; 0 when idle
    private long slicedTicks; // predicted ticks of sliced work beyond each job's queued or running slice

    /// <param name="maxWait">The longest predicted wait a request is admitted with (the request timeout); infinite by default.</param>
    public DeviceWorker(string name, int capacity, ServerMetrics metrics, TimeSpan? maxWait = null)
    {
        Name = name;
        this.capacity = capacity;
        this.metrics = metrics;
        MaxWait = maxWait ?? Timeout.InfiniteTimeSpan;
        metrics.QueueDepth(name, () => Volatile.Read(ref waiting));
        metrics.QueueBusy(name, () => Volatile.Read(ref runningEnd) == 0 ? 0 : 1);
        thread = new Thread(Loop) { IsBackground = true, Name = $"bioforge {name}" };
        thread.Start();
    }

    public string Name { get; }

    public TimeSpan MaxWait { get; }

    /// <summary>Predicted time until the worker has done what it holds now (waiting pieces and the rest of the running one).</summary>
    public TimeSpan Backlog
    {
        get
        {
            long end = Volatile.Read(ref runningEnd);
            long running = end == 0 ? 0 : Math.Max(0, end - Stopwatch.GetTimestamp());
            return Stopwatch.GetElapsedTime(0, Volatile.Read(ref queuedTicks) + running);
        }
    }

    /// <summary>Predicted run time of a piece; zero for a kind not measured yet (its first pieces are admitted).</summary>
    public TimeSpan Estimate(WorkSize size) => costs.Predict(size);

    /// <summary>
    /// 503 with Retry-After when the work <paramref name="ahead"/> of a request and its <paramref name="own"/> piece
    /// are predicted to pass <see cref="Headroom"/> of <see cref="MaxWait"/>. The rest of the timeout absorbs what the
    /// prediction misses: load from outside the server, a whole batch ending late at once (measured: admitting up to
    /// the full timeout still let 6–9 % of a 200-request burst time out). With nothing ahead a request is always
    /// admitted: its own length is bounded by its deadline, and running it keeps the measurement fresh (an estimate
    /// inflated by a slow first batch must not refuse everything after it).
    /// </summary>
    public void Admit(TimeSpan ahead, TimeSpan own, string what)
    {
        if (MaxWait == Timeout.InfiniteTimeSpan || ahead <= TimeSpan.Zero || ahead + own <= MaxWait * Headroom) return;
        throw ApiError.Overloaded($"{what}: about {(ahead + own).TotalSeconds:0.#} s of work is ahead; requests are admitted while that is under {Headroom * 100:0} % of the {MaxWait.TotalSeconds:0.###} s timeout; retry later",
            ahead);
    }

    /// <summary>Share of <see cref="MaxWait"/> that admitted work may be predicted to take.</summary>
    public const double Headroom = 0.5;

    /// <summary>
    /// Runs <paramref name="work"/> on the device thread; 503 when <c>capacity</c> pieces already wait, or (unless
    /// <paramref name="admitted"/>: a batch whose requests were admitted by their batcher) when the backlog and this
    /// piece are predicted to take longer than <see cref="MaxWait"/>.
    /// </summary>
    public Task<T> RunAsync<T>(Func<T> work, CancellationToken cancellation, WorkSize size, bool admitted = false)
    {
        var estimate = Estimate(size);
        long ticks = Reserve(estimate, admitted ? null : size);
        // Admitted work (a batch its batcher admitted, a decoding step of admitted sequences) is never refused for a
        // full queue: one such piece per batcher or decoder waits at a time, and refusing it left admitted requests
        // without steps until they timed out while new requests took the freed places.
        if (Interlocked.Increment(ref waiting) > capacity && !admitted)
        {
            Interlocked.Decrement(ref waiting);
            Interlocked.Add(ref queuedTicks, -ticks);
            metrics.Rejected(Name);
            throw ApiError.Overloaded($"the {Name} queue is full ({capacity} waiting); retry later");
        }
        return Enqueue(() =>
        {
            long start = Stopwatch.GetTimestamp();
            var result = work();
            costs.Add(size, Stopwatch.GetElapsedTime(start));
            return result;
        }, cancellation, ticks);
    }

    /// <summary>
    /// Counts a piece's predicted time into the queue's before deciding on it, so requests arriving together each see
    /// the others (checked first and counted after, a burst was admitted whole and then timed out); with
    /// <paramref name="check"/>, refuses it (503) when the work ahead is predicted too long, taking the count back.
    /// </summary>
    /// <param name="own">The request's whole predicted time, when <paramref name="estimate"/> is only its first slice.</param>
    /// <param name="sharing">Work of other sliced requests that runs between this one's slices (round robin).</param>
    private long Reserve(TimeSpan estimate, WorkSize? check, TimeSpan? own = null, TimeSpan sharing = default)
    {
        long ticks = Ticks(estimate);
        Interlocked.Add(ref queuedTicks, ticks);
        if (check is null) return ticks;
        try
        {
            Admit(Backlog - estimate + sharing, own ?? estimate, $"the {Name} queue");
            return ticks;
        }
        catch
        {
            Interlocked.Add(ref queuedTicks, -ticks);
            metrics.Rejected(Name);
            throw;
        }
    }

    /// <summary>Device time of one slice of <see cref="RunSlicedAsync"/>: other requests wait at most about this long for it.</summary>
    public static readonly TimeSpan SliceTime = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Long work (<c>each_position</c>, large <c>score-variants</c>) in slices of about <see cref="SliceTime"/>: after
    /// each slice the work goes to the back of the queue, so requests that arrived meanwhile run in between instead of
    /// waiting for all of it (round robin between long requests, too). Admitted (503) and measured as one piece of
    /// <paramref name="size"/> (a kind not measured yet from its first slice, when the work knows its progress); once admitted its slices are not refused for a full queue, so an answer is never lost
    /// half-way. Cancellation (the deadline, the client leaving) is checked between passes.
    /// </summary>
    public async Task<T> RunSlicedAsync<T>(StepwiseWork<T> work, CancellationToken cancellation, WorkSize size)
    {
        var estimate = Estimate(size);
        // The queue's prediction holds one slice of this work, what a request arriving later waits for it (the slices go
        // round); the rest is counted apart, as the share of the device other long work gets while it runs.
        var others = Stopwatch.GetElapsedTime(0, Volatile.Read(ref slicedTicks));
        long ticks = Reserve(Slice(estimate), size, own: estimate, sharing: others < estimate ? others : estimate);
        if (Interlocked.Increment(ref waiting) > capacity)
        {
            Interlocked.Decrement(ref waiting);
            Interlocked.Add(ref queuedTicks, -ticks);
            metrics.Rejected(Name);
            throw ApiError.Overloaded($"the {Name} queue is full ({capacity} waiting); retry later");
        }
        long rest = Math.Max(0, Ticks(estimate) - ticks);
        Interlocked.Add(ref slicedTicks, rest);
        try
        {
            var spent = TimeSpan.Zero;
            for (bool first = true; ; first = false)
            {
                if (!first)
                {
                    Interlocked.Increment(ref waiting);
                    var left = estimate > spent ? estimate - spent : TimeSpan.Zero;
                    ticks = Reserve(Slice(left), null);
                    long now = Math.Max(0, Ticks(left) - ticks);
                    Interlocked.Add(ref slicedTicks, now - rest);
                    rest = now;
                }
                bool done = await Enqueue(() =>
                {
                    long start = Stopwatch.GetTimestamp();
                    bool finished = work.Run(SliceTime, cancellation);
                    spent += Stopwatch.GetElapsedTime(start);
                    if (finished) costs.Add(size, spent);
                    else if (!costs.Knows(size.Kind) && work.Progress is > 0 and double share)
                    {
                        // A kind's first request would be measured only when it ends: requests arriving meanwhile were
                        // admitted unmeasured and timed out instead of being shed. Its first slice tells the rate already.
                        costs.Add(size with { Units = size.Units * share }, spent);
                        estimate = Estimate(size);
                    }
                    return finished;
                }, cancellation, ticks);
                if (done) return work.Result;
            }
        }
        finally
        {
            Interlocked.Add(ref slicedTicks, -rest);
        }
    }

    private static long Ticks(TimeSpan time) => (long)(time.TotalSeconds * Stopwatch.Frequency);

    private static TimeSpan Slice(TimeSpan left) => left < SliceTime ? left : SliceTime;

    /// <summary>Queues a piece already counted in <c>waiting</c>, whose predicted <paramref name="ticks"/> are already in the queue's.</summary>
    private Task<T> Enqueue<T>(Func<T> work, CancellationToken cancellation, long ticks)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        bool queued = queue.Writer.TryWrite(() =>
        {
            Interlocked.Decrement(ref waiting);
            Interlocked.Add(ref queuedTicks, -ticks);
            if (cancellation.IsCancellationRequested)
            {
                done.TrySetCanceled(cancellation);
                return;
            }
            Volatile.Write(ref runningEnd, Stopwatch.GetTimestamp() + Math.Max(1, ticks));
            try
            {
                done.TrySetResult(work());
            }
            catch (Exception e)
            {
                done.TrySetException(e);
            }
            finally
            {
                Volatile.Write(ref runningEnd, 0);
            }
        });
        if (!queued)
        {
            Interlocked.Decrement(ref waiting);
            Interlocked.Add(ref queuedTicks, -ticks);
            throw ApiError.Overloaded($"the {Name} worker is shutting down");
        }
        return done.Task;
    }

    private void Loop()
    {
        var reader = queue.Reader;
        long lastRelease = 0;
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            while (reader.TryRead(out var work)) work();
            // Idle: what the work freed goes back to the system, at most once per interval (the heap walk costs milliseconds).
            if (Stopwatch.GetElapsedTime(lastRelease) >= ReleaseInterval)
            {
                TorchRuntime.ReleaseFreedMemory();
                lastRelease = Stopwatch.GetTimestamp();
            }
        }
    }

    private static readonly TimeSpan ReleaseInterval = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Takes no more work and waits up to <paramref name="timeout"/> for the thread to finish what it holds. False when
    /// work is still running: its model weights must then stay allocated (freeing them under a running forward pass
    /// crashes the process), and are left to the process's exit.
    /// </summary>
    public bool Stop(TimeSpan timeout)
    {
        queue.Writer.TryComplete();
        return thread.Join(timeout);
    }

    public void Dispose() => Stop(TimeSpan.FromSeconds(30));
}
