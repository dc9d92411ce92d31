using Spectre.Console;

namespace BioForge.Cli;

/// <summary>
/// A progress bar on standard error when it is a terminal (a running count and the time taken where the total is not
/// known beforehand); silent otherwise (logs and pipes stay clean).
/// </summary>
internal static class ProgressDisplay
{
    public static T Run<T>(string description, long? total, Func<IProgress<int>, T> work)
    {
        if (Console.IsErrorRedirected || total is 0)
            return work(new Progress<int>(_ => { }));
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        if (total is null)
            return console.Progress()
                .Columns(new TaskDescriptionColumn(), new SpinnerColumn(), new ElapsedTimeColumn())
                .Start(context =>
                {
                    var task = context.AddTask(description).IsIndeterminate();
                    long done = 0;
                    // The description is rebuilt every thousand items, not every item (a corpus has millions).
                    return work(new SynchronousProgress(n =>
                    {
                        long before = done;
                        done += n;
                        if (done / 1000 != before / 1000) task.Description = $"{description}: {done:N0}";
                    }));
                });
        return console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                var task = context.AddTask(description, maxValue: total.Value);
                return work(new SynchronousProgress(n => task.Increment(n)));
            });
    }

    /// <summary>Reports on the calling thread (System.Progress posts to the thread pool and would lag behind).</summary>
    private sealed class SynchronousProgress(Action<int> report) : IProgress<int>
    {
        public void Report(int value) => report(value);
    }
}
