using Spectre.Console;

namespace BioForge.Cli;

/// <summary>A progress bar on standard error when it is a terminal; silent otherwise (logs and pipes stay clean).</summary>
internal static class ProgressDisplay
{
    public static T Run<T>(string description, long? total, Func<IProgress<int>, T> work)
    {
        if (Console.IsErrorRedirected || total is null or 0)
            return work(new Progress<int>(_ => { }));
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
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
