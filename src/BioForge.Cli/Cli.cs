using System.CommandLine;

namespace BioForge.Cli;

/// <summary>The command tree. Each command group lives in its own file and only parses, calls the library and prints.</summary>
public static class Cli
{
    /// <summary>Commands that share their work across ranks under mpirun/srun; any other would run N copies racing on one output.</summary>
    private static readonly string[][] Distributable = [["train"], ["embed"], ["chem", "props"], ["dist"]];

    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var launch = Distributed.ProcessGroup.Launch;
        if (launch.Distributed && args.Length > 0 && !args[0].StartsWith('-') && !Distributable.Any(d => args.Take(d.Length).SequenceEqual(d)))
        {
            error.WriteLine($"error: '{string.Join(' ', args.TakeWhile(a => !a.StartsWith('-')).Take(2))}' runs on one process; launched as rank {launch.Rank} of {launch.Size} by {launch.Launcher}, start it without mpirun/srun (distributed: {string.Join(", ", Distributable.Select(d => string.Join(' ', d)))})");
            return 2;
        }
        var root = new RootCommand("BioForge: biological foundation models and AI drug discovery in .NET");
        foreach (var command in ProteinCommands.Create(output, error)) root.Subcommands.Add(command);
        root.Subcommands.Add(ChemCommands.Create(output, error));
        root.Subcommands.Add(DataCommands.Create(output, error));
        root.Subcommands.Add(TrainCommands.Create(output, error));
        root.Subcommands.Add(GenerateCommand.Create(output, error));
        root.Subcommands.Add(FineTuneCommands.Create(output, error));
        root.Subcommands.Add(BenchCommands.Create(output, error));
        root.Subcommands.Add(DistributedCommands.Create(output, error));
        root.Subcommands.Add(PlanCommand.Create(output, error));
        root.Subcommands.Add(DtiCommands.Create(output, error));
        root.Subcommands.Add(OptimizeCommand.Create(output, error));
        root.Subcommands.Add(ScreenCommand.Create(output, error));
        root.Subcommands.Add(QuickstartCommand.Create(output, error));
        root.Subcommands.Add(ServeCommand.Create(output, error));
        root.Subcommands.Add(EnvironmentCommand.Create(output, error));
        return root.Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
    }

    /// <summary>
    /// Runs a command body: a <see cref="BioForgeException"/> becomes one "error: …" line and exit code 2; anything
    /// else is reported as an internal error (exit 1) with the stack trace only when BIOFORGE_DEBUG is set.
    /// </summary>
    internal static int Guard(TextWriter error, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (BioForgeException e)
        {
            error.WriteLine($"error: {e.Message}");
            return 2;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"error: {e.Message}");
            return 2;
        }
        catch (Exception e)
        {
            error.WriteLine($"internal error: {e.GetType().Name}: {e.Message}");
            if (Environment.GetEnvironmentVariable("BIOFORGE_DEBUG") is { Length: > 0 }) error.WriteLine(e);
            return 1;
        }
    }

    /// <summary>
    /// Runs a long command whose first Ctrl+C asks it to stop cleanly (the token is cancelled and
    /// <paramref name="notice"/> printed); a second Ctrl+C ends the process at once.
    /// </summary>
    internal static int StoppableByCtrlC(TextWriter error, string notice, Func<CancellationToken, int> body)
    {
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (cancel.IsCancellationRequested) return;
            e.Cancel = true;
            cancel.Cancel();
            error.WriteLine(notice);
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            return body(cancel.Token);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }
}
