namespace BioForge.Distributed;

/// <summary>
/// Names the rank that holds a collective up. Every rank runs a small responder thread on a private duplicate of the
/// communicator; it answers a ping with how many collectives this rank has entered and whether it is inside one now.
/// When a collective times out, the waiting rank pings the others: no answer means dead (or hung inside MPI); an
/// answer from a rank that has not reached this collective means alive but stuck outside it. Every communicator has
/// its own (MPI_COMM_WORLD and the groups split from it: a data × tensor-parallel grid's collectives run in its groups),
/// counting its own collectives, and names the ranks by their world rank. Needs MPI_THREAD_MULTIPLE (Open MPI provides it).
/// </summary>
internal sealed unsafe class LivenessProbe : IDisposable
{
    private const int PingTag = 0x51EE, AnswerTag = 0x51EF;
    private readonly MpiLibrary mpi;
    private readonly IntPtr comm;
    private readonly int rank, size;
    /// <summary>Member i's rank in MPI_COMM_WORLD.</summary>
    private readonly int[] worldRanks;
    private readonly Thread responder;
    private volatile bool stopping;
    private long entered;
    private volatile bool inside;

    public LivenessProbe(MpiLibrary mpi, IntPtr communicator, int rank, int size, int[] worldRanks)
    {
        this.mpi = mpi;
        this.rank = rank;
        this.size = size;
        this.worldRanks = worldRanks;
        IsGroup = worldRanks.Where((w, i) => w != i).Any() || !IsWholeWorld(mpi, communicator);
        IntPtr duplicate;
        mpi.Check(mpi.CommDup(communicator, &duplicate), "MPI_Comm_dup");
        comm = duplicate;
        responder = new Thread(Respond) { IsBackground = true, Name = "bioforge-liveness" };
        responder.Start();
    }

    private static bool IsWholeWorld(MpiLibrary mpi, IntPtr communicator)
    {
        int worldSize;
        mpi.Check(mpi.CommSize(mpi.CommWorld, &worldSize), "MPI_Comm_size");
        int size;
        mpi.Check(mpi.CommSize(communicator, &size), "MPI_Comm_size");
        return size == worldSize;
    }

    public void Enter()
    {
        Interlocked.Increment(ref entered);
        inside = true;
    }

    public void Leave() => inside = false;

    /// <summary>This rank's world rank.</summary>
    public int WorldRank => worldRanks[rank];

    /// <summary>This rank as a message names it: in a group split from the world, by its world rank too.</summary>
    public string Name => IsGroup ? $"world rank {WorldRank} (rank {rank} of {size} in its group)" : $"rank {rank} of {size}";

    /// <summary>The communicator is a group split from the world, whose ranks are not the world's.</summary>
    private bool IsGroup { get; }

    private void Respond()
    {
        long* answer = stackalloc long[2];
        while (!stopping)
        {
            int flag;
            MpiLibrary.Status status;
            if (mpi.Iprobe(MpiLibrary.AnySource, PingTag, comm, &flag, &status) != MpiLibrary.Success || flag == 0)
            {
                Thread.Sleep(20);
                continue;
            }
            byte ping;
            mpi.Recv((IntPtr)(&ping), 1, mpi.Byte, status.Source, PingTag, comm, IntPtr.Zero);
            answer[0] = Interlocked.Read(ref entered);
            answer[1] = inside ? 1 : 0;
            mpi.Send((IntPtr)answer, 16, mpi.Byte, status.Source, AnswerTag, comm);
        }
    }

    /// <summary>Pings every other rank and describes those that hold up collective number <c>entered</c>.</summary>
    public string Suspects(TimeSpan window)
    {
        byte ping = 1;
        for (int r = 0; r < size; r++)
            if (r != rank) mpi.Send((IntPtr)(&ping), 1, mpi.Byte, r, PingTag, comm);
        long mine = Interlocked.Read(ref entered);
        var answers = new Dictionary<int, (long Entered, bool Inside)>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long* answer = stackalloc long[2];
        while (answers.Count < size - 1 && clock.Elapsed < window)
        {
            int flag;
            MpiLibrary.Status status;
            mpi.Iprobe(MpiLibrary.AnySource, AnswerTag, comm, &flag, &status);
            if (flag == 0)
            {
                Thread.Sleep(10);
                continue;
            }
            mpi.Recv((IntPtr)answer, 16, mpi.Byte, status.Source, AnswerTag, comm, IntPtr.Zero);
            answers[status.Source] = (answer[0], answer[1] != 0);
        }
        var findings = new List<string>();
        for (int r = 0; r < size; r++)
        {
            if (r == rank) continue;
            string who = IsGroup ? $"world rank {worldRanks[r]}" : $"rank {r}";
            if (!answers.TryGetValue(r, out var a)) findings.Add($"{who} does not answer (dead, or hung inside MPI)");
            else if (a.Entered < mine || !a.Inside) findings.Add($"{who} is alive but has not reached this collective (it entered {a.Entered} of {mine})");
        }
        return findings.Count == 0 ? "every rank answers and waits in this collective" : string.Join("; ", findings);
    }

    public void Dispose()
    {
        stopping = true;
        responder.Join();
        IntPtr duplicate = comm;
        mpi.CommFree(&duplicate);
    }
}
