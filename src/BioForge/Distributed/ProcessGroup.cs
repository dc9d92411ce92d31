namespace BioForge.Distributed;

/// <summary>
/// The process's place in a distributed job, static because a process has one (as it has one loaded LibTorch,
/// <see cref="Runtime.TorchRuntime"/>, and one set of writes a signal must undo, <see cref="IO.UnfinishedWrites"/>; the
/// three are BioForge's only process-wide state). Under <c>mpirun</c> or
/// <c>srun</c> the world is MPI_COMM_WORLD; otherwise a world of one, so every command runs unchanged without a launcher.
/// </summary>
public static class ProcessGroup
{
    private static readonly Lazy<Communicator> world = new(Create, LazyThreadSafetyMode.ExecutionAndPublication);

    public static Launch Launch { get; } = Launch.FromEnvironment();

    public static Communicator World => world.Value;

    /// <summary>
    /// Ends this process's part in the job: MPI_Finalize after success; after a failure MPI_Abort, which ends every
    /// rank at once instead of leaving them waiting in a collective. Nothing to do when no collective was used.
    /// </summary>
    public static void Shutdown(bool success, int exitCode)
    {
        if (!world.IsValueCreated || world.Value is not MpiCommunicator mpi) return;
        if (success) mpi.FinalizeWorld();
        else mpi.AbortWorld(exitCode);
    }

    private static Communicator Create()
    {
        if (!Launch.Distributed) return new SingleProcessCommunicator();
        var communicator = MpiCommunicator.InitializeWorld();
        if (communicator.Rank != Launch.Rank || communicator.Size != Launch.Size)
            throw new BioForgeException($"MPI says rank {communicator.Rank} of {communicator.Size}, the launcher ({Launch.Launcher}) says {Launch.Rank} of {Launch.Size}");
        return communicator;
    }
}
