using System.Threading.Channels;

namespace BioForge.Server;

/// <summary>
/// One thread that runs all model work for one device, one piece at a time: batches from every model's batcher and
/// single requests queue here, so models never fight over the device, and LibTorch's thread-local state (no-grad
/// mode, dispose scopes) stays on one thread. Work whose caller has gone is skipped, never computed.
/// </summary>
public sealed class DeviceWorker : IDisposable
{
    private readonly Channel<Action> queue = Channel.CreateUnbounded<Action>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Thread thread;
    private readonly int capacity;
    private int waiting;

    public DeviceWorker(string name, int capacity, ServerMetrics metrics)
    {
        Name = name;
        this.capacity = capacity;
        metrics.QueueDepth(name, () => Volatile.Read(ref waiting));
        thread = new Thread(Loop) { IsBackground = true, Name = $"bioforge {name}" };
        thread.Start();
    }

    public string Name { get; }

    /// <summary>Runs <paramref name="work"/> on the device thread; 503 when <c>capacity</c> pieces already wait.</summary>
    public Task<T> RunAsync<T>(Func<T> work, CancellationToken cancellation)
    {
        if (Interlocked.Increment(ref waiting) > capacity)
        {
            Interlocked.Decrement(ref waiting);
            throw ApiError.Overloaded($"the {Name} queue is full ({capacity} waiting); retry later");
        }
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        bool queued = queue.Writer.TryWrite(() =>
        {
            Interlocked.Decrement(ref waiting);
            if (cancellation.IsCancellationRequested)
            {
                done.TrySetCanceled(cancellation);
                return;
            }
            try
            {
                done.TrySetResult(work());
            }
            catch (Exception e)
            {
                done.TrySetException(e);
            }
        });
        if (!queued)
        {
            Interlocked.Decrement(ref waiting);
            throw ApiError.Overloaded($"the {Name} worker is shutting down");
        }
        return done.Task;
    }

    private void Loop()
    {
        var reader = queue.Reader;
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
            while (reader.TryRead(out var work)) work();
    }

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
