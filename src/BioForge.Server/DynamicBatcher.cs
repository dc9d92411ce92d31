using System.Diagnostics;
using System.Threading.Channels;

namespace BioForge.Server;

/// <summary>
/// Dynamic batching for one model, as Triton and NIM do it: requests queue; a batch opens with the first waiting
/// request and closes when the token budget or the item limit is reached or the delay since that first request has
/// passed; it then runs on the device worker while the next batch gathers. Results go back to each caller. A request
/// whose caller has gone (disconnected, timed out) is dropped before its batch runs; a full queue answers 503, and so
/// does a request predicted to wait past the device's <see cref="DeviceWorker.MaxWait"/>: the device's backlog plus
/// the tokens waiting here (this one's included) at the model's measured seconds per token (the batching delay is
/// left out: under load batches close on their size, not on the delay).
/// </summary>
internal sealed class DynamicBatcher<TIn, TOut> : IDisposable
{
    private sealed record Pending(TIn Input, int Cost, CancellationToken Cancellation, TaskCompletionSource<TOut> Result);

    private readonly Channel<Pending> queue = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });
    private readonly string model;
    private readonly BatchingOptions options;
    private readonly Func<TIn, int> cost;
    private readonly Func<IReadOnlyList<TIn>, IReadOnlyList<TOut>> execute;
    private readonly DeviceWorker device;
    private readonly ServerMetrics metrics;
    private readonly CancellationTokenSource stopping = new();
    private readonly Task loop;
    private Pending? carried;
    private int waiting;
    private long waitingTokens;

    /// <param name="cost">Tokens of one input (its share of the budget).</param>
    /// <param name="execute">Computes a batch on the device thread; one result per input, in order.</param>
    public DynamicBatcher(string model, BatchingOptions options, Func<TIn, int> cost, Func<IReadOnlyList<TIn>, IReadOnlyList<TOut>> execute,
        DeviceWorker device, ServerMetrics metrics)
    {
        this.model = model;
        this.options = options;
        this.cost = cost;
        this.execute = execute;
        this.device = device;
        this.metrics = metrics;
        metrics.QueueDepth(model, () => Volatile.Read(ref waiting));
        loop = Task.Run(Loop);
    }

    public Task<TOut> SubmitAsync(TIn input, CancellationToken cancellation) => Enqueue([input], cancellation)[0].Result.Task;

    /// <summary>
    /// The inputs of one request, admitted together: the work ahead of them is what waits before the first, so a request
    /// of many inputs on an idle server is not refused for its own (they run in the batches that form).
    /// </summary>
    public Task<TOut[]> SubmitAllAsync(IReadOnlyList<TIn> inputs, CancellationToken cancellation) =>
        Task.WhenAll(Enqueue(inputs, cancellation).Select(p => p.Result.Task));

    /// <summary>Admits and queues the inputs, or refuses them all at once (503, thrown here rather than in the task).</summary>
    private List<Pending> Enqueue(IReadOnlyList<TIn> inputs, CancellationToken cancellation)
    {
        // More than the queue holds would be refused as "busy, retry" on an idle server too, for ever.
        if (inputs.Count > options.QueueCapacity)
            throw ApiError.Invalid($"{inputs.Count} inputs in one request are more than model {model} queues at once ({options.QueueCapacity}, --queue-capacity); send fewer per request", "input");
        if (Interlocked.Add(ref waiting, inputs.Count) > options.QueueCapacity)
        {
            Interlocked.Add(ref waiting, -inputs.Count);
            metrics.Rejected(model);
            throw ApiError.Overloaded($"model {model}: {options.QueueCapacity} inputs are already waiting or this request's would pass that; retry later");
        }
        var pending = inputs.Select(input => new Pending(input, Math.Max(1, cost(input)), cancellation, new TaskCompletionSource<TOut>(TaskCreationOptions.RunContinuationsAsynchronously))).ToList();
        long own = pending.Sum(p => p.Cost);
        long tokens = Interlocked.Add(ref waitingTokens, own);
        try
        {
            device.Admit(device.Backlog + device.Estimate(new WorkSize(model, tokens - own)), device.Estimate(new WorkSize(model, own)), $"model {model}");
        }
        catch (ApiError)
        {
            Interlocked.Add(ref waiting, -inputs.Count);
            Interlocked.Add(ref waitingTokens, -own);
            metrics.Rejected(model);
            throw;
        }
        for (int i = 0; i < pending.Count; i++)
        {
            if (queue.Writer.TryWrite(pending[i])) continue;
            // The batcher is shutting down: what cannot be queued is answered now, never left waiting.
            Interlocked.Add(ref waiting, -(pending.Count - i));
            Interlocked.Add(ref waitingTokens, -pending.Skip(i).Sum(p => p.Cost));
            throw ApiError.Overloaded($"model {model}: the server is shutting down");
        }
        return pending;
    }

    private async Task Loop()
    {
        var reader = queue.Reader;
        try
        {
            while (true)
            {
                var batch = await Gather(reader);
                if (batch is null) return;
                var live = new List<Pending>(batch.Count);
                foreach (var p in batch)
                {
                    if (p.Cancellation.IsCancellationRequested)
                    {
                        metrics.Dropped(model);
                        p.Result.TrySetCanceled(p.Cancellation);
                    }
                    else live.Add(p);
                }
                Interlocked.Add(ref waiting, -batch.Count);
                Interlocked.Add(ref waitingTokens, -batch.Sum(p => (long)p.Cost));
                if (live.Count == 0) continue;
                await Run(live);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
    }

    /// <summary>The next batch: null once the queue is closed and empty.</summary>
    private async Task<List<Pending>?> Gather(ChannelReader<Pending> reader)
    {
        Pending first;
        if (carried is { } c)
        {
            first = c;
            carried = null;
        }
        else
        {
            if (!await reader.WaitToReadAsync(stopping.Token)) return null;
            if (!reader.TryRead(out first!)) return [];
        }
        var batch = new List<Pending> { first };
        long tokens = first.Cost;
        var clock = Stopwatch.StartNew();
        while (batch.Count < options.MaxBatchItems && tokens < options.MaxBatchTokens)
        {
            if (reader.TryRead(out var next))
            {
                if (tokens + next.Cost > options.MaxBatchTokens)
                {
                    carried = next; // opens the next batch
                    break;
                }
                batch.Add(next);
                tokens += next.Cost;
                continue;
            }
            var remaining = options.MaxDelay - clock.Elapsed;
            if (remaining <= TimeSpan.Zero) break;
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
            wait.CancelAfter(remaining);
            try
            {
                if (!await reader.WaitToReadAsync(wait.Token)) break;
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
            {
                break; // the delay is over
            }
            catch (OperationCanceledException)
            {
                // Stopping: what this batch took off the queue is answered too, as what is left in it is by Dispose.
                foreach (var p in batch) p.Result.TrySetCanceled();
                throw;
            }
        }
        return batch;
    }

    private async Task Run(List<Pending> live)
    {
        try
        {
            var inputs = live.Select(p => p.Input).ToList();
            long tokens = live.Sum(p => (long)p.Cost);
            var results = await device.RunAsync(() =>
            {
                long start = Stopwatch.GetTimestamp();
                var r = execute(inputs);
                metrics.Batch(model, inputs.Count, tokens, Stopwatch.GetElapsedTime(start).TotalSeconds);
                return r;
            }, CancellationToken.None, new WorkSize(model, tokens), admitted: true);
            for (int i = 0; i < live.Count; i++) live[i].Result.TrySetResult(results[i]);
        }
        catch (Exception e)
        {
            foreach (var p in live) p.Result.TrySetException(e);
        }
    }

    public void Dispose()
    {
        queue.Writer.TryComplete();
        stopping.Cancel();
        try
        {
            loop.Wait(TimeSpan.FromSeconds(30));
        }
        catch (AggregateException)
        {
        }
        while (queue.Reader.TryRead(out var p)) p.Result.TrySetCanceled();
        carried?.Result.TrySetCanceled();
        stopping.Dispose();
    }
}
