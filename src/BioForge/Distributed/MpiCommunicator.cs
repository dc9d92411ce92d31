using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BioForge.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.Distributed;

/// <summary>
/// Collectives over Open MPI. Tensors are reduced in their own memory when they are contiguous float32/float64/int64
/// CPU tensors; anything else (CUDA, bf16, strided) goes through a CPU copy: float32 for floats, int64 for integers. The blocking collectives
/// are used (Open MPI's tuned algorithms; its non-blocking ones measured 2× slower here), each watched by a timer: a
/// collective still unfinished after <see cref="Communicator.Timeout"/> prints one line naming the rank that holds
/// it up (<see cref="LivenessProbe"/>) and aborts the whole job with MPI_Abort, so no rank hangs.
/// </summary>
internal sealed unsafe class MpiCommunicator : Communicator
{
    // MPI counts are C ints: all-reduce and broadcast send larger tensors in pieces; all-gather and reduce-scatter (whose
    // pieces would interleave the ranks' parts) refuse more than 2^31 − 1 elements per rank, ZeRO-1 on the CPU past
    // about 4 billion parameters a group on two ranks.
    private const long MaxCount = 1L << 30;

    private readonly MpiLibrary mpi;
    private readonly bool canAbortFromWatchdog;
    private readonly LivenessProbe? liveness;
    /// <summary>Every live probe of the process (the world's and its groups'), shared by them: all stop before MPI_Finalize, or a responder would call MPI after it.</summary>
    private readonly List<LivenessProbe> probes;
    private IntPtr comm;
    private readonly bool owned;

    public override int Rank { get; }
    public override int Size { get; }
    public override string Backend => "mpi";

    /// <param name="probes">The process's probes (the world's list, shared by its groups); null: this communicator runs none.</param>
    /// <param name="worldRank">This rank's world rank, for the probe to name ranks by (null: this is the world).</param>
    private MpiCommunicator(MpiLibrary mpi, IntPtr comm, bool owned, bool canAbortFromWatchdog, List<LivenessProbe>? probes, int? worldRank = null)
    {
        this.mpi = mpi;
        this.probes = probes ?? [];
        this.canAbortFromWatchdog = canAbortFromWatchdog;
        this.comm = comm;
        this.owned = owned;
        int rank, size;
        mpi.Check(mpi.CommRank(comm, &rank), "MPI_Comm_rank");
        mpi.Check(mpi.CommSize(comm, &size), "MPI_Comm_size");
        Rank = rank;
        Size = size;
        if (probes is not null && canAbortFromWatchdog)
        {
            liveness = new LivenessProbe(mpi, comm, rank, size, WorldRanks(worldRank ?? rank));
            lock (probes) probes.Add(liveness);
        }
    }

    /// <summary>Every member's world rank, in this communicator's rank order (collective: every member constructs it together).</summary>
    private int[] WorldRanks(int mine)
    {
        long own = mine;
        var all = new long[Size];
        fixed (long* target = all) mpi.Check(mpi.Allgather((IntPtr)(&own), 1, mpi.Int64, (IntPtr)target, 1, mpi.Int64, comm), "MPI_Allgather");
        return [.. all.Select(r => (int)r)];
    }

    internal override LivenessProbe? Liveness => liveness;

    /// <summary>Initialises MPI (once per process) and returns MPI_COMM_WORLD.</summary>
    public static MpiCommunicator InitializeWorld()
    {
        var mpi = MpiLibrary.Load();
        int initialized, provided = 0;
        mpi.Check(mpi.Initialized(&initialized), "MPI_Initialized");
        // MPI_THREAD_MULTIPLE lets the watchdog thread call MPI_Abort while a collective blocks the caller.
        if (initialized == 0) mpi.Check(mpi.InitThread(null, IntPtr.Zero, MpiLibrary.ThreadMultiple, &provided), "MPI_Init_thread");
        return new MpiCommunicator(mpi, mpi.CommWorld, owned: false, provided == MpiLibrary.ThreadMultiple, probes: []);
    }

    /// <summary>MPI_Finalize (once): the normal end of a distributed run.</summary>
    internal void FinalizeWorld()
    {
        lock (probes)
        {
            foreach (var probe in probes) probe.Dispose();
            probes.Clear();
        }
        int finalized;
        if (mpi.Finalized(&finalized) == MpiLibrary.Success && finalized == 0) mpi.Finalize();
    }

    /// <summary>MPI_Abort on MPI_COMM_WORLD: every rank of the job ends with <paramref name="exitCode"/>.</summary>
    internal void AbortWorld(int exitCode) => mpi.Abort(mpi.CommWorld, exitCode == 0 ? 1 : exitCode);

    /// <summary>The sum into the average: integers divided as integers, truncated as NCCL's average divides them (true division cannot be stored in place).</summary>
    private void DivideBySize(Tensor sum)
    {
        if (sum.is_floating_point())
        {
            sum.DivInPlace(Size);
            return;
        }
        using var size = ((long)Size).ToScalar();
        sum.div_(size, RoundingMode.trunc);
    }

    public override void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        using var scope = NewDisposeScope();
        var (buffer, type) = Staged(tensor);
        IntPtr reduce = Op(op);
        ForEachPiece(buffer, (pointer, count) => mpi.Allreduce(MpiLibrary.InPlace, pointer, count, type, reduce, comm), "all-reduce");
        if (op == ReduceOp.Average) DivideBySize(buffer);
        if (!ReferenceEquals(buffer, tensor)) CopyBack(buffer, tensor);
    }

    public override void Broadcast(Tensor tensor, int root = 0)
    {
        if (root < 0 || root >= Size) throw new BioForgeException($"broadcast root {root} is outside a group of {Size}");
        using var scope = NewDisposeScope();
        var (buffer, type) = Staged(tensor);
        ForEachPiece(buffer, (pointer, count) => mpi.Bcast(pointer, count, type, root, comm), "broadcast");
        if (!ReferenceEquals(buffer, tensor)) CopyBack(buffer, tensor);
    }

    public override Tensor AllGather(Tensor tensor)
    {
        using var scope = NewDisposeScope();
        var (buffer, type) = Staged(tensor);
        long n = buffer.numel();
        CheckCount(n, "all-gather");
        var gathered = empty([Size * n], buffer.dtype);
        IntPtr source = Address(buffer), target = Address(gathered);
        Watched(() => mpi.Allgather(source, (int)n, type, target, (int)n, type, comm), "all-gather");
        long[] shape = [Size * (tensor.dim() == 0 ? 1 : tensor.shape[0]), .. tensor.shape.Skip(1)];
        return gathered.reshape(shape).to(tensor.dtype, tensor.device).MoveToOuterDisposeScope();
    }

    public override Tensor ReduceScatter(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        CheckDivisible(tensor, "reduce-scatter");
        using var scope = NewDisposeScope();
        var (buffer, type) = Staged(tensor);
        long part = buffer.numel() / Size;
        CheckCount(part, "reduce-scatter");
        var result = empty([part], buffer.dtype);
        IntPtr source = Address(buffer), target = Address(result), reduce = Op(op);
        Watched(() => mpi.ReduceScatterBlock(source, target, (int)part, type, reduce, comm), "reduce-scatter");
        if (op == ReduceOp.Average) DivideBySize(result);
        long[] shape = [tensor.shape[0] / Size, .. tensor.shape.Skip(1)];
        return result.reshape(shape).to(tensor.dtype, tensor.device).MoveToOuterDisposeScope();
    }

    public override void Barrier(TimeSpan? timeout = null) => Watched(() => mpi.Barrier(comm), "barrier", timeout);

    public override Communicator Split(int color, int key)
    {
        IntPtr child;
        mpi.Check(mpi.CommSplit(comm, color, key, &child), "MPI_Comm_split");
        return new MpiCommunicator(mpi, child, owned: true, canAbortFromWatchdog, liveness is null ? null : probes, liveness?.WorldRank) { Timeout = Timeout };
    }

    public override void Dispose()
    {
        if (!owned || comm == IntPtr.Zero) return;
        if (liveness is not null)
            lock (probes)
                if (probes.Remove(liveness)) liveness.Dispose();
        fixed (IntPtr* handle = &comm) mpi.CommFree(handle);
        comm = IntPtr.Zero;
    }

    /// <summary>A contiguous CPU tensor MPI can read and write, and its MPI type: the tensor itself when possible.</summary>
    private (Tensor Buffer, IntPtr Type) Staged(Tensor tensor)
    {
        var type = tensor.dtype switch
        {
            ScalarType.Float32 => mpi.Float,
            ScalarType.Float64 => mpi.Double,
            ScalarType.Int64 => mpi.Int64,
            _ => IntPtr.Zero,
        };
        if (type != IntPtr.Zero && tensor.device_type == DeviceType.CPU && tensor.is_contiguous()) return (tensor, type);
        // Integers and booleans travel as int64 (float32 would round integers above 2^24), other floats as float32.
        var wide = tensor.dtype == ScalarType.Float64 ? tensor.dtype : tensor.is_floating_point() ? ScalarType.Float32 : ScalarType.Int64;
        var copy = tensor.detach().to(wide, CPU).contiguous().clone();
        return (copy, wide switch { ScalarType.Float64 => mpi.Double, ScalarType.Int64 => mpi.Int64, _ => mpi.Float });
    }

    private static void CopyBack(Tensor buffer, Tensor tensor)
    {
        using var _ = no_grad();
        tensor.copy_(buffer.view(tensor.shape));
    }

    private IntPtr Op(ReduceOp op) => op switch
    {
        ReduceOp.Max => mpi.OpMax,
        ReduceOp.Min => mpi.OpMin,
        _ => mpi.OpSum,
    };

    private void ForEachPiece(Tensor buffer, Func<IntPtr, int, int> call, string what)
    {
        long total = buffer.numel(), elementSize = buffer.ElementSize;
        var basePointer = Address(buffer);
        for (long offset = 0; offset < total; offset += MaxCount)
        {
            int count = (int)Math.Min(MaxCount, total - offset);
            IntPtr pointer = basePointer + (nint)(offset * elementSize);
            Watched(() => call(pointer, count), what);
        }
    }

    /// <summary>
    /// The first byte of a contiguous CPU tensor (storage offset included): <c>bytes</c> spans native memory, taken of
    /// a one-element view because a span cannot cover more than 2 GB.
    /// </summary>
    private static IntPtr Address(Tensor tensor)
    {
        if (tensor.numel() == 0) return IntPtr.Zero; // MPI reads no buffer for a count of 0
        using var flat = tensor.view(-1);
        using var first = flat.narrow(0, 0, 1);
        return (IntPtr)Unsafe.AsPointer(ref MemoryMarshal.GetReference(first.bytes));
    }

    private static void CheckCount(long n, string what)
    {
        if (n > int.MaxValue) throw new BioForgeException($"{what} of {n:N0} elements per rank exceeds MPI's int count (2,147,483,647): use more ranks, or CUDA tensors (NCCL)");
    }

    /// <summary>
    /// Runs one blocking collective under a watchdog timer. The caller's thread cannot be interrupted inside MPI, so
    /// past the timeout the watchdog writes the reason and ends the job itself: MPI_Abort (every rank exits), or, when
    /// MPI lacks thread support for that, this process (mpirun then ends the others).
    /// </summary>
    private void Watched(Func<int> call, string what, TimeSpan? timeout = null)
    {
        var limit = timeout ?? Timeout;
        var completed = new StrongBox<bool>();
        using var watchdog = new Timer(_ =>
        {
            string cause = liveness?.Suspects(TimeSpan.FromSeconds(5)) ?? "another rank has died or is stuck";
            // The others were asked for up to 5 s: a collective that completed meanwhile was only late.
            if (Volatile.Read(ref completed.Value)) return;
            // The one place the library writes to the console: the process is about to end and cannot throw.
            Console.Error.WriteLine($"error: {liveness?.Name ?? $"rank {Rank} of {Size}"}: {what} did not complete within {limit.TotalSeconds:F0} s: {cause} (BIOFORGE_COLLECTIVE_TIMEOUT sets the limit)");
            Console.Error.Flush();
            if (canAbortFromWatchdog) mpi.Abort(mpi.CommWorld, 3);
            Environment.Exit(3);
        }, null, limit, System.Threading.Timeout.InfiniteTimeSpan);
        liveness?.Enter();
        try
        {
            int status = call();
            Volatile.Write(ref completed.Value, true);
            mpi.Check(status, what);
        }
        finally
        {
            liveness?.Leave();
        }
    }
}
