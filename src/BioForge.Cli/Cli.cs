using System.CommandLine;
using System.CommandLine.Help;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using BioForge.IO;

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
        root.Subcommands.Add(QsarCommands.Create(output, error));
        root.Subcommands.Add(OptimizeCommand.Create(output, error));
        root.Subcommands.Add(ScreenCommand.Create(output, error));
        root.Subcommands.Add(QuickstartCommand.Create(output, error));
        root.Subcommands.Add(ServeCommand.Create(output, error));
        root.Subcommands.Add(EnvironmentCommand.Create(output, error));
        foreach (var option in OutputOptions(root)) option.Validators.Add(result => CheckWritable(result, option));
        AddChecks(root);
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            // One line and a hint, exit 2 like every other input error: the full help buried the message.
            string path = string.Join(' ', parsed.CommandResult.Command.Name == root.Name ? [root.Name] : Ancestry(parsed.CommandResult.Command, root));
            string message = UnknownCommand(parsed) ?? Plain(parsed.Errors[0]);
            error.WriteLine($"error: {message} (see '{path} --help')");
            return 2;
        }
        return parsed.Invoke(new InvocationConfiguration { Output = output, Error = error });
    }

    /// <summary>
    /// A word where a command has only subcommands (<c>bioforge embedd</c>): the parser said "Required command was not
    /// provided"; this names the word, the nearest command and the commands there are.
    /// </summary>
    private static string? UnknownCommand(ParseResult parsed)
    {
        var command = parsed.CommandResult.Command;
        if (command.Subcommands.Count == 0 || parsed.UnmatchedTokens.FirstOrDefault() is not { } word || word.StartsWith('-')) return null;
        var names = command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name).ToList();
        string? nearest = Spelling.Nearest(word, names);
        return $"unknown command '{word}'{(nearest is null ? "" : $"; did you mean '{nearest}'?")} (commands: {string.Join(", ", names)})";
    }

    /// <summary>
    /// The parser's message in the CLI's words, on one line: the option and value first, what was expected in words
    /// rather than a .NET type name, a choice's names on one line.
    /// </summary>
    private static string Plain(System.CommandLine.Parsing.ParseError error)
    {
        string message = error.Message.Trim();
        var typed = Regex.Match(message, @"^Cannot parse argument '(.*)' for option '(.*)' as expected type '(.*)'\.$", RegexOptions.Singleline);
        if (typed.Success) return $"{typed.Groups[2].Value} {typed.Groups[1].Value}: expected {Expected(typed.Groups[3].Value)}";
        var choice = Regex.Match(message, @"^Argument '(.*)' not recognized\. Must be one of:(.*)$", RegexOptions.Singleline);
        if (choice.Success)
        {
            string option = error.SymbolResult switch
            {
                System.CommandLine.Parsing.OptionResult o => o.Option.Name + " ",
                System.CommandLine.Parsing.ArgumentResult { Parent: System.CommandLine.Parsing.OptionResult o } => o.Option.Name + " ",
                _ => "",
            };
            var names = Regex.Matches(choice.Groups[2].Value, "'([^']*)'").Select(m => m.Groups[1].Value);
            return $"{option}{choice.Groups[1].Value}: must be one of {string.Join(", ", names)}";
        }
        return message.ReplaceLineEndings(" ");
    }

    private static string Expected(string type) => Spelling.ValueInWords(type) ?? $"a value of type {type}";

    private static IEnumerable<string> Ancestry(Command command, Command root)
    {
        var names = new List<string>();
        for (Command? c = command; c is not null; c = c.Parents.OfType<Command>().FirstOrDefault()) names.Insert(0, c.Name);
        return names.Count > 0 && names[0] == root.Name ? names : [root.Name, .. names];
    }

    /// <summary>The options a command writes to: <c>--out</c>, and the second outputs <c>--png</c>, <c>--report</c> and <c>--map</c>.</summary>
    private static readonly string[] OutputNames = ["--out", "--png", "--report", "--map"];

    /// <summary>The options a command reads files from (an output must not be one of them).</summary>
    private static readonly string[] InputNames = ["--in", "--library", "--gen", "--generated", "--natural", "--reference", "--index", "--inputs", "--seq-file", "--train", "--ref",
        "--clusters", "--config", "--target", "--actives", "--vocab", "--prior"];

    /// <summary>The input options that name a file, never a folder (the others also take a model or corpus folder).</summary>
    private static readonly string[] FileOnlyInputNames = [.. InputNames.Except(["--vocab", "--prior", "--reference", "--target"])];

    /// <summary>The options naming a folder a command reads (a model, a run, a data set): no output may replace a file in it.</summary>
    private static readonly string[] FolderInputNames = ["--model", "--models", "--run", "--data", "--esm", "--prior", "--vocab"];

    private static IEnumerable<Option<string>> OutputOptions(Command command) =>
        command.Options.OfType<Option<string>>().Where(o => OutputNames.Contains(o.Name)).Concat(command.Subcommands.SelectMany(OutputOptions));

    private static bool IsFolderOutput(Option option) => option is FolderOutputOption;

    /// <summary>
    /// Refuses an output nobody can write before any work starts, naming the option: the writer's own failure would come
    /// after the computation (and name its hidden temporary file). A file output may not be an existing folder.
    /// </summary>
    private static void CheckWritable(System.CommandLine.Parsing.OptionResult result, Option option)
    {
        if (result.GetValueOrDefault<string>() is not { Length: > 0 } path) return;
        if (!IsFolderOutput(option) && (Directory.Exists(path) || Path.EndsInDirectorySeparator(path))) result.AddError($"{option.Name} {path}: is a folder; name a file");
        else if (IsFolderOutput(option) && File.Exists(path)) result.AddError($"{option.Name} {path}: is a file; name a folder");
        else if (IO.AtomicFile.WhyNotWritable(path) is { } reason) result.AddError($"{option.Name} {path}: {reason}");
    }

    /// <summary>The checks every command gets, before any work: distinct paths, finite numbers, thread counts, addresses.</summary>
    private static void AddChecks(Command command)
    {
        AddDistinctPathCheck(command);
        AddFileInputCheck(command);
        AddNumberChecks(command);
        AddUrlCheck(command);
        foreach (var sub in command.Subcommands) AddChecks(sub);
    }

    /// <summary>
    /// A command refuses an output that is one of its inputs or another of its outputs (the input would be overwritten
    /// after it was read, or one output by the other).
    /// </summary>
    private static void AddDistinctPathCheck(Command command)
    {
        var outputs = command.Options.Where(o => OutputNames.Contains(o.Name)).ToList();
        var inputs = command.Options.Where(o => InputNames.Contains(o.Name)).ToList();
        var folders = command.Options.Where(o => FolderInputNames.Contains(o.Name)).ToList();
        if (outputs.Count > 0)
            command.Validators.Add(result =>
            {
                // A file of a model or run folder the command reads (its weights, vocabulary, predictions) or the folder itself.
                var read = folders.SelectMany(o => Paths(result.GetResult(o)).Where(Directory.Exists).Select(p => (o.Name, Folder: RealPath(p))));
                foreach (var (inputOption, folder) in read)
                    foreach (var option in outputs)
                        foreach (string given in Paths(result.GetResult(option)))
                            foreach (var (path, what) in WrittenBeside(option.Name, given))
                            {
                                string full = Path.TrimEndingDirectorySeparator(RealPath(path));
                                bool inside = full.StartsWith(Path.TrimEndingDirectorySeparator(folder) + Path.DirectorySeparatorChar, StringComparison.Ordinal);
                                if (full == Path.TrimEndingDirectorySeparator(folder) || (inside && Path.Exists(full)))
                                {
                                    result.AddError(inside
                                        ? $"{what} {path} is a file of the {inputOption} folder the command reads: write {option.Name} elsewhere"
                                        : $"{what} {path} is the {inputOption} folder the command reads: write {option.Name} elsewhere");
                                    return;
                                }
                            }
                var seen = new List<(string Option, string Path)>();
                foreach (var option in inputs.Concat(outputs))
                    foreach (string given in Paths(result.GetResult(option)))
                        foreach (var (path, what) in outputs.Contains(option) ? WrittenBeside(option.Name, given) : [(given, option.Name)])
                        {
                            string full = RealPath(path);
                            if (outputs.Contains(option) && seen.FirstOrDefault(s => s.Path == full) is { Option: { } other })
                            {
                                result.AddError($"{what} {path} is also {other}: write {option.Name} elsewhere");
                                return;
                            }
                            seen.Add((what, full));
                        }
            });
    }

    /// <summary>
    /// The path with every symbolic link among its existing parts followed, as realpath(3) resolves it (the parts that do
    /// not exist yet kept as written): an input reached through a link to its folder is the file an output names directly,
    /// and was overwritten by it.
    /// </summary>
    internal static string RealPath(string path)
    {
        string full = Path.GetFullPath(path);
        for (int links = 0; links < 40; links++) // Linux's ELOOP limit: a cycle is compared as written
        {
            string root = Path.GetPathRoot(full)!, current = root;
            var parts = full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
            int linked = -1;
            for (int i = 0; i < parts.Length && linked < 0; i++)
            {
                current = Path.Combine(current, parts[i]);
                if (LinkTarget(current) is { } target)
                {
                    // A target may itself pass through links: the walk starts again from the root.
                    full = Path.GetFullPath(Path.Combine([Path.GetFullPath(target, Path.GetDirectoryName(current)!), .. parts[(i + 1)..]]));
                    linked = i;
                }
            }
            if (linked < 0) return full;
        }
        return full;
    }

    /// <summary>Where a symbolic link points, or null for anything else (a part that cannot be read is compared as written).</summary>
    private static string? LinkTarget(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>A folder given for a file input is named as one (each reader said "file not found" of a folder that exists), and an empty path too.</summary>
    private static void AddFileInputCheck(Command command)
    {
        foreach (var option in command.Options.Where(o => FileOnlyInputNames.Contains(o.Name)))
            option.Validators.Add(result =>
            {
                foreach (string path in Paths(result).Concat(result.Implicit ? [] : RawValues(result).Where(v => v.Length == 0)))
                {
                    if (path.Length == 0) result.AddError($"{option.Name}: an empty path; name a file");
                    else if (Directory.Exists(path)) result.AddError($"{option.Name} {path}: is a folder; name a file");
                }
            });
    }

    private static IEnumerable<string> RawValues(System.CommandLine.Parsing.OptionResult result) => result.Tokens.Select(t => t.Value);

    /// <summary>An output and the files written beside it: an .npy of embeddings has its record ids in a text file.</summary>
    private static IEnumerable<(string Path, string What)> WrittenBeside(string option, string path)
    {
        yield return (path, option);
        if (Proteins.EmbeddingWriters.Companion(path) is { } ids) yield return (ids, $"{option} {path}'s ids file");
    }

    /// <summary>
    /// Number options refuse NaN and ±Infinity (which .NET parses): each range check of the form "x &lt; 0" lets NaN
    /// through, and a NaN temperature decoded junk. Thread counts are not negative.
    /// </summary>
    private static int MaxThreads => Math.Max(256, 4 * Environment.ProcessorCount);

    private static void AddNumberChecks(Command command)
    {
        foreach (var option in command.Options)
        {
            if (option is Option<double> or Option<double?>)
                option.Validators.Add(result =>
                {
                    if (result.Implicit || !TryValue(result, out double? value)) return;
                    if (value is { } x && !double.IsFinite(x)) result.AddError($"{option.Name} {x.ToString(System.Globalization.CultureInfo.InvariantCulture)}: must be a finite number");
                });
            // 0 means "the default" everywhere; a negative count was quietly read as 0.
            if (option is Option<int> threads && threads.Name == "--threads")
                threads.Validators.Add(result =>
                {
                    if (!TryValue(result, out int count)) return;
                    if (count < 0) result.AddError($"--threads {count}: must be 0 (the default) or more");
                    // Per-thread buffers are sized by it: a huge count ran out of memory with no option named.
                    else if (count > MaxThreads) result.AddError($"--threads {count}: at most {MaxThreads} (this machine has {Environment.ProcessorCount} cores)");
                });
        }
    }

    /// <summary>A <c>--url</c> is an absolute http or https address (a bare host failed inside HttpClient, unnamed).</summary>
    private static void AddUrlCheck(Command command)
    {
        foreach (var option in command.Options.OfType<Option<string>>().Where(o => o.Name == "--url"))
            option.Validators.Add(result =>
            {
                string? url = result.GetValueOrDefault<string>();
                if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                    result.AddError($"--url {url}: expected an http:// or https:// address, e.g. http://127.0.0.1:8000");
            });
    }

    /// <summary>The option's value, or false when it does not parse (the parser reports that itself; validators still run).</summary>
    private static bool TryValue<T>(System.CommandLine.Parsing.OptionResult result, out T? value)
    {
        try
        {
            value = result.GetValueOrDefault<T>();
            return true;
        }
        catch (InvalidOperationException)
        {
            value = default;
            return false;
        }
    }

    private static IEnumerable<string> Paths(System.CommandLine.Parsing.OptionResult? result) => result?.Implicit != false ? [] : result.Option switch
    {
        Option<string[]> => result.GetValueOrDefault<string[]>() ?? [],
        Option<string> => result.GetValueOrDefault<string>() is { Length: > 0 } path ? [path] : [],
        _ => [],
    };

    /// <summary>
    /// Runs a command body: any exception becomes one "error: …" line and exit code 2 (a <see cref="BioForgeException"/>
    /// as its message; anything else with its type, and the stack trace only when BIOFORGE_DEBUG is set).
    /// </summary>
    internal static int Guard(TextWriter error, Func<int> body)
    {
        // A command run inside another's keeps the outer one's handling: new handlers would abort where it stops.
        var outer = CurrentSignals.Value;
        using var signals = outer is null ? new Signals(error) : null;
        CurrentSignals.Value = outer ?? signals;
        try
        {
            int code = body();
            // Stopped cleanly by a signal, a process ends by that signal, as the shell convention asks of a program
            // that handles one: a script stops at the Ctrl+C instead of going on with its next command. Ranks under a
            // launcher exit 130 instead: dying by a signal would make it abort the job.
            if (code == 130 && signals?.StoppedBy is { } signal && !Distributed.ProcessGroup.Launch.Distributed) signals.EndBy(signal);
            return code;
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
        finally
        {
            CurrentSignals.Value = outer;
        }
    }

    /// <summary>
    /// One line for an exception nobody worded for the user (LibTorch's messages carry a C++ stack trace of many
    /// lines): its first line and type; the whole trace with BIOFORGE_DEBUG=1.
    /// </summary>
    internal static string Unexpected(Exception e)
    {
        string first = e.Message.Split('\n', 2)[0].Trim();
        first = Spelling.Excerpt(first, 300);
        // LibTorch's allocators (CPU: "DefaultCPUAllocator: can't allocate memory" or "not enough memory", CUDA: "CUDA
        // out of memory") say what failed, not what to change: the sizes of a batch are what a user sets.
        if (first.Contains("DefaultCPUAllocator", StringComparison.Ordinal) || first.Contains("out of memory", StringComparison.OrdinalIgnoreCase))
            return $"error: the device ran out of memory; a smaller batch needs less (this command's --batch, --slots or --max-running; a run file's data.tokens_per_batch, data.batch_size or sampling.batch_size) (LibTorch: {first})";
        return $"error: {first} ({e.GetType().Name}; BIOFORGE_DEBUG=1 prints the stack trace)";
    }

    /// <summary>
    /// Runs a long command whose first Ctrl+C or SIGTERM (kill, a batch scheduler's time limit, docker stop) asks it to
    /// stop cleanly: the token is cancelled and <paramref name="notice"/> printed. A second signal ends the process at
    /// once, as the first does for any other command. Runs inside <see cref="Guard"/>.
    /// </summary>
    internal static int Stoppable(string notice, Func<CancellationToken, int> body) => Stoppable(() => notice, body);

    /// <summary>As above, with the notice of the moment the signal comes (what stopping means changes as the command goes).</summary>
    internal static int Stoppable(Func<string> notice, Func<CancellationToken, int> body)
    {
        var signals = CurrentSignals.Value ?? throw new InvalidOperationException("Cli.Stoppable runs inside Cli.Guard");
        try
        {
            return body(signals.BeginStoppable(notice));
        }
        finally
        {
            signals.EndStoppable();
        }
    }

    /// <summary>The signal handling of the command running in this flow (commands run side by side in the tests' process).</summary>
    private static readonly AsyncLocal<Signals?> CurrentSignals = new();

    /// <summary>
    /// Ctrl+C and SIGTERM while a command runs. A stoppable stretch takes the first as a request to stop; otherwise the
    /// temporary files and folders of the process's unfinished writes are removed and the process ends by the signal,
    /// as with no handler (a shell script stops at a Ctrl+C only when its command died of it), but without them.
    /// </summary>
    private sealed class Signals : IDisposable
    {
        private readonly TextWriter error;
        private readonly PosixSignalRegistration interrupt;
        private readonly PosixSignalRegistration terminate;
        private readonly Lock gate = new();
        private CancellationTokenSource? stop;
        private Func<string>? notice;

        /// <summary>The signal number (2, 15) that asked a stoppable stretch to stop, if one did.</summary>
        public int? StoppedBy { get; private set; }

        public Signals(TextWriter error)
        {
            this.error = error;
            interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle);
            terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle);
        }

        public CancellationToken BeginStoppable(Func<string> notice)
        {
            lock (gate)
            {
                this.notice = notice;
                stop = new CancellationTokenSource();
                return stop.Token;
            }
        }

        public void EndStoppable()
        {
            lock (gate)
            {
                stop?.Dispose();
                stop = null;
            }
        }

        private void Handle(PosixSignalContext context)
        {
            context.Cancel = true;
            bool stopping, aborting;
            // Only deciding under the lock: a write to a standard error nobody reads (a paused terminal, a full pipe)
            // blocks, and the next signal must still get through.
            int number = context.Signal == PosixSignal.SIGINT ? 2 : 15;
            lock (gate)
            {
                stopping = stop is { IsCancellationRequested: false };
                aborting = stop is not null && !stopping;
                if (stopping)
                {
                    StoppedBy = number;
                    stop!.Cancel();
                }
            }
            string name = context.Signal == PosixSignal.SIGINT ? "Ctrl+C" : "SIGTERM";
            if (stopping)
            {
                error.WriteLine($"{notice!()}; {name} again to abort");
                return;
            }
            if (aborting) Task.Run(() => error.WriteLine("aborted")).Wait(TimeSpan.FromMilliseconds(200));
            // From here the command's writes neither begin nor finish; the process ends at once after.
            UnfinishedWrites.Abandon();
            // Not Environment.Exit: its exit handlers (ASP.NET's host among them) wait for the very work being aborted.
            DieBy(number);
            ExitNow(128 + number); // the signal did not end it
        }

        /// <summary>Ends the process by signal <paramref name="number"/> after a clean stop; returns if it could not.</summary>
        public void EndBy(int number)
        {
            error.Flush();
            Dispose(); // the runtime's handlers stand between the signal and its default action until then
            DieBy(number);
        }

        private static void DieBy(int number)
        {
            if (Environment.ProcessId == 1) return; // the kernel spares process 1 (a container without an init) its own signals
            SetDisposition(number, DefaultAction);
            Kill(Environment.ProcessId, number);
            Thread.Sleep(TimeSpan.FromMilliseconds(200));
        }

        public void Dispose()
        {
            interrupt.Dispose();
            terminate.Dispose();
            lock (gate)
            {
                stop?.Dispose();
                stop = null;
            }
        }
    }

    private static readonly IntPtr DefaultAction = IntPtr.Zero; // SIG_DFL

    [DllImport("libc", EntryPoint = "signal")]
    private static extern IntPtr SetDisposition(int signal, IntPtr handler);

    [DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);

    [DllImport("libc", EntryPoint = "_exit")]
    private static extern void ExitNow(int status);
}
