using BioForge.Cli;
using BioForge.Distributed;

// Open MPI gives its ranks a pseudo-terminal for output, and .NET's console writes the terminal's keypad sequence
// (ESC[?1h ESC=) to one: it began every rank's redirected output (a JSON-lines file no longer parsed). Before the console
// is first used, a plain terminal type leaves it out.
if (Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null) Environment.SetEnvironmentVariable("TERM", "dumb");

int code;
try
{
    code = Cli.Run(args, Console.Out, Console.Error);
}
catch (Exception e)
{
    // Whatever escapes a command's own guard (parsing, the launcher checks) is still one line and exit code 2.
    Console.Error.WriteLine(Cli.Unexpected(e));
    if (Environment.GetEnvironmentVariable("BIOFORGE_DEBUG") is { Length: > 0 }) Console.Error.WriteLine(e);
    code = 2;
}
// Under mpirun a failed rank must abort the job (MPI_Finalize would wait for ranks that may never arrive). A run stopped
// by a signal (130) is no failure: its ranks agreed on the step, wrote the checkpoint and met at the end together, so
// they finalize and the job ends with 130, not with MPI_Abort's banner (a scheduler's time limit is routine).
ProcessGroup.Shutdown(success: code is 0 or 130, code);
return code;
