using System.CommandLine;
using System.CommandLine.Help;
using System.Runtime.InteropServices;

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
        // A plain command named like the launcher, not RootCommand, whose name is the executable's (BioForge.Cli, or
        // testhost under the tests); help and --version are what RootCommand would add.
        var root = new Command("bioforge", "BioForge: biological foundation models and AI drug discovery in .NET") { new HelpOption(), new VersionOption() };
        foreach (var command in ProteinCommands.Create(output, error)) root.Subcommands.Add(command);
        root.Subcommands.Add(ProteinGenEvalCommand.Group(output, error));
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
        foreach (var option in OutputOptions(root)) option.Validators.Add(CheckWritable);
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            // One line and a hint, exit 2 like every other input error: the full help buried the message.
            string path = string.Join(' ', parsed.CommandResult.Command.Name == root.Name ? [root.Name] : Ancestry(parsed.CommandResult.Command, root));
            error.WriteLine($"error: {parsed.Errors[0].Message.TrimEnd()} (see '{path} --help')");
            return 2;
        }
        return parsed.Invoke(new InvocationConfiguration { Output = output, Error = error });
    }

    private static IEnumerable<string> Ancestry(Command command, Command root)
    {
        var names = new List<string>();
        for (Command? c = command; c is not null; c = c.Parents.OfType<Command>().FirstOrDefault()) names.Insert(0, c.Name);
        return names.Count > 0 && names[0] == root.Name ? names : [root.Name, .. names];
    }

    private static IEnumerable<Option<string>> OutputOptions(Command command) =>
        command.Options.OfType<Option<string>>().Where(o => o.Name == "--out").Concat(command.Subcommands.SelectMany(OutputOptions));

    /// <summary>
    /// Refuses an <c>--out</c> nobody can write before any work starts, naming the option; the writer's own failure
    /// would come after the computation and name its hidden temporary file.
    /// </summary>
    private static void CheckWritable(System.CommandLine.Parsing.OptionResult result)
    {
        if (result.GetValueOrDefault<string>() is not { Length: > 0 } path) return;
        if (IO.AtomicFile.WhyNotWritable(path) is { } reason) result.AddError($"--out {path}: {reason}");
    }

    /// <summary>
    /// Runs a command body: any exception becomes one "error: …" line and exit code 2 (a <see cref="BioForgeException"/>
    /// as its message; anything else with its type, and the stack trace only when BIOFORGE_DEBUG is set).
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
            error.WriteLine(Unexpected(e));
            if (Environment.GetEnvironmentVariable("BIOFORGE_DEBUG") is { Length: > 0 }) error.WriteLine(e);
            return 2;
        }
    }

    /// <summary>
    /// One line for an exception nobody worded for the user (LibTorch's messages carry a C++ stack trace of many
    /// lines): its first line and type; the whole trace with BIOFORGE_DEBUG=1.
    /// </summary>
    internal static string Unexpected(Exception e)
    {
        string first = e.Message.Split('\n', 2)[0].Trim();
        return $"error: {(first.Length > 300 ? first[..300] + "..." : first)} ({e.GetType().Name}; BIOFORGE_DEBUG=1 prints the stack trace)";
    }

    /// <summary>
    /// Runs a long command whose first Ctrl+C or SIGTERM (kill, a batch scheduler's time limit, docker stop) asks it to
    /// stop cleanly: the token is cancelled and <paramref name="notice"/> printed. The same signal again ends the
    /// process at once.
    /// </summary>
    internal static int Stoppable(TextWriter error, string notice, Func<CancellationToken, int> body)
    {
        using var cancel = new CancellationTokenSource();
        void Stop(PosixSignalContext context)
        {
            if (cancel.IsCancellationRequested) return; // the second one: the default action, the process ends
            context.Cancel = true;
            cancel.Cancel();
            error.WriteLine($"{notice}; {(context.Signal == PosixSignal.SIGINT ? "Ctrl+C" : "SIGTERM")} again to abort");
        }
        using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        return body(cancel.Token);
    }
}
