using BioForge.Cli;
using BioForge.Distributed;

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
// Under mpirun a failed rank must abort the job (MPI_Finalize would wait for ranks that may never arrive).
ProcessGroup.Shutdown(success: code == 0, code);
return code;
