using System.Diagnostics;

namespace BioForge.Runtime;

/// <summary>
/// Work made of many forward passes that a caller may run a few at a time: a server runs each slice as its own piece
/// on the device worker, so requests that arrive meanwhile are answered in between instead of after all of it. The
/// passes come from an iterator that yields after each one (the count of items it finished); nothing may span a yield
/// (no dispose scope, no no-grad scope), since other work runs on the same thread between slices.
/// </summary>
public sealed class StepwiseWork<T> : IDisposable
{
    private readonly IEnumerator<int> passes;
    private readonly Func<T> finish;
    private readonly int items;
    private int finished;
    private bool done;

    /// <param name="items">How many items the passes finish in all (their yields add up to it); 0 when not known.</param>
    public StepwiseWork(IEnumerable<int> passes, Func<T> finish, int items = 0)
    {
        this.passes = passes.GetEnumerator();
        this.finish = finish;
        this.items = items;
    }

    /// <summary>The share of the items finished so far (1 once done); null when the total is not known.</summary>
    public double? Progress => done ? 1 : items > 0 ? Math.Min(1, (double)finished / items) : null;

    /// <summary>The answer once <see cref="Run"/> has returned true.</summary>
    public T Result { get; private set; } = default!;

    /// <summary>
    /// Runs passes until the work is done (true) or <paramref name="budget"/> has passed (false; at least one pass runs).
    /// Cancellation is checked before every pass; a cancelled work releases what its current pass holds.
    /// </summary>
    public bool Run(TimeSpan budget, CancellationToken cancellation, IProgress<int>? progress = null)
    {
        if (done) return true;
        long start = Stopwatch.GetTimestamp();
        do
        {
            if (cancellation.IsCancellationRequested)
            {
                passes.Dispose();
                cancellation.ThrowIfCancellationRequested();
            }
            if (!passes.MoveNext())
            {
                passes.Dispose();
                Result = finish();
                done = true;
                return true;
            }
            finished += passes.Current;
            progress?.Report(passes.Current);
        }
        while (Stopwatch.GetElapsedTime(start) < budget);
        return false;
    }

    /// <summary>All passes at once, as a command-line run wants them.</summary>
    public T RunToEnd(IProgress<int>? progress = null, CancellationToken cancellation = default)
    {
        while (!Run(TimeSpan.MaxValue, cancellation, progress)) { }
        return Result;
    }

    public void Dispose() => passes.Dispose();
}
