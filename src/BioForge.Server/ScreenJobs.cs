using BioForge.Discovery;

namespace BioForge.Server;

public enum JobStatus { Queued, Running, Succeeded, Failed, Cancelled }

/// <summary>One screening job: its progress while it runs, its hits once it is done.</summary>
public sealed class ScreenJob
{
    private long processed;

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
    public JobStatus Status { get; internal set; } = JobStatus.Queued;
    public long Processed => Interlocked.Read(ref processed);
    public ScreenSummary? Result { get; internal set; }
    public string? Error { get; internal set; }
    public DateTimeOffset? Finished { get; internal set; }
    internal CancellationTokenSource Cancel { get; } = new();

    internal void Advance(int molecules) => Interlocked.Add(ref processed, molecules);

    public bool Done => Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled;
}

/// <summary>
/// The screening jobs of one server, in memory: at most <c>capacity</c> kept; a new job evicts the oldest finished
/// one, and is refused (503) when all are queued or running. Jobs live in the replica that took them; behind a proxy
/// the client polls the same replica (the job id's answer says which, in <c>Location</c>).
/// </summary>
public sealed class ScreenJobs(int capacity) : IDisposable
{
    private readonly Dictionary<string, ScreenJob> jobs = new(StringComparer.Ordinal);
    private readonly Lock gate = new();

    public ScreenJob Add(string model, int total, int top)
    {
        lock (gate)
        {
            if (jobs.Count >= capacity)
            {
                var oldest = jobs.Values.Where(j => j.Done).OrderBy(j => j.Finished).FirstOrDefault()
                    ?? throw ApiError.Overloaded($"{capacity} screening jobs are queued or running (max_jobs); retry later");
                jobs.Remove(oldest.Id);
                oldest.Cancel.Dispose();
            }
            var job = new ScreenJob(Guid.NewGuid().ToString("N"), model, total, top);
            jobs[job.Id] = job;
            return job;
        }
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
