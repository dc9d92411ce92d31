using BioForge.Discovery;

namespace BioForge.Server;

internal enum JobStatus { Queued, Running, Succeeded, Failed, Cancelled }

/// <summary>
/// One screening job: its progress while it runs, its hits once it is done. Its state moves Queued → Running → one
/// end (or Queued → Cancelled) under a lock, once: the worker thread, a DELETE and the task's continuation may race.
/// </summary>
internal sealed class ScreenJob
{
    private readonly Lock gate = new();
    private long processed;
    private (JobStatus Status, ScreenSummary? Result, string? Error, DateTimeOffset? Finished) state = (JobStatus.Queued, null, null, null);

    internal ScreenJob(string id, string model, int total, int top)
    {
        Id = id;
        Model = model;
        Total = total;
        Top = top;
    }

    public string Id { get; }
    public string Model { get; }
    public int Total { get; }
    public int Top { get; }
    public DateTimeOffset Submitted { get; } = DateTimeOffset.UtcNow;
    public long Processed => Interlocked.Read(ref processed);
    internal CancellationTokenSource Cancel { get; } = new();

    /// <summary>Status, result, error and end time read together, as one consistent state.</summary>
    public (JobStatus Status, ScreenSummary? Result, string? Error, DateTimeOffset? Finished) Snapshot()
    {
        lock (gate) return state;
    }

    public bool Done => Snapshot().Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled;

    internal void Advance(int molecules) => Interlocked.Add(ref processed, molecules);

    /// <summary>Queued → Running; false when the job was cancelled first.</summary>
    internal bool TryStart()
    {
        lock (gate)
        {
            if (state.Status != JobStatus.Queued) return false;
            state = state with { Status = JobStatus.Running };
            return true;
        }
    }

    /// <summary>
    /// A DELETE: asks a running job to stop (it ends Cancelled when the worker sees it) and ends a queued one at once,
    /// under the lock, so a job the worker starts meanwhile is not marked cancelled while it runs. The token source
    /// is not disposed while the job is listed (an evicted job's source stays valid for a DELETE already holding it).
    /// </summary>
    internal void RequestCancel()
    {
        Cancel.Cancel();
        lock (gate)
            if (state.Status == JobStatus.Queued) state = (JobStatus.Cancelled, null, null, DateTimeOffset.UtcNow);
    }

    /// <summary>Ends the job unless it has ended already (the first end wins).</summary>
    internal void Finish(JobStatus status, ScreenSummary? result = null, string? error = null)
    {
        lock (gate)
            if (state.Status is JobStatus.Queued or JobStatus.Running)
                state = (status, result, error, DateTimeOffset.UtcNow);
    }
}

/// <summary>
/// The screening jobs of one server, in memory: at most <c>capacity</c> kept; a new job evicts the oldest finished
/// one, and is refused (503) when all are queued or running. Jobs live in the replica that took them; behind a proxy
/// the client polls the same replica (the job id's answer says which, in <c>Location</c>).
/// </summary>
internal sealed class ScreenJobs(int capacity) : IDisposable
{
    private readonly Dictionary<string, ScreenJob> jobs = new(StringComparer.Ordinal);
    private readonly Lock gate = new();

    public ScreenJob Add(string model, int total, int top)
    {
        lock (gate)
        {
            if (jobs.Count >= capacity)
            {
                var oldest = jobs.Values.Where(j => j.Done).OrderBy(j => j.Snapshot().Finished).FirstOrDefault()
                    ?? throw ApiError.Overloaded($"{capacity} screening jobs are queued or running, as many as this server keeps; retry later");
                // Not disposed: a DELETE that fetched the job before it was evicted may still cancel its token source
                // (ended, the job has no work left; the source holds no timer, so the collector takes it).
                jobs.Remove(oldest.Id);
            }
            var job = new ScreenJob(Guid.NewGuid().ToString("N"), model, total, top);
            jobs[job.Id] = job;
            return job;
        }
    }

    /// <summary>Forgets a job that could not be queued.</summary>
    public void Remove(ScreenJob job)
    {
        lock (gate)
            jobs.Remove(job.Id);
    }

    public ScreenJob Get(string id)
    {
        lock (gate)
            return jobs.TryGetValue(id, out var job) ? job : throw ApiError.NotFound($"no screening job '{id}' here (finished jobs are kept until {capacity} newer ones arrive)", "id");
    }

    public void Dispose()
    {
        lock (gate)
        {
            foreach (var job in jobs.Values)
            {
                job.Cancel.Cancel();
                job.Cancel.Dispose();
            }
            jobs.Clear();
        }
    }
}
