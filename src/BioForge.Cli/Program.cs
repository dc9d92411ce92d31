using BioForge.Cli;
using BioForge.Distributed;

int code = Cli.Run(args, Console.Out, Console.Error);
// Under mpirun a failed rank must abort the job (MPI_Finalize would wait for ranks that may never arrive).
ProcessGroup.Shutdown(success: code == 0, code);
return code;
