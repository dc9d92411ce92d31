using System.Runtime.InteropServices;

namespace BioForge.Distributed;

/// <summary>
/// The few Open MPI entry points BioForge uses, bound at run time from <c>libmpi.so.40</c> (Debian's openmpi-bin /
/// libopenmpi-dev; <c>BIOFORGE_MPI_LIBRARY</c> names another file). Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT,
/// MPI_SUM, …) are the addresses of its exported globals. The library is opened RTLD_GLOBAL because Open MPI's own
/// plug-ins, loaded later, resolve symbols against it.
/// </summary>
internal sealed unsafe partial class MpiLibrary
{
    public const int Success = 0, ThreadMultiple = 3;
    public static readonly IntPtr InPlace = 1;

    public IntPtr CommWorld { get; }
    public IntPtr Float { get; }
    public IntPtr Double { get; }
    public IntPtr Int64 { get; }
    public IntPtr OpSum { get; }
    public IntPtr OpMax { get; }
    public IntPtr OpMin { get; }
    public IntPtr Byte { get; }

    public readonly delegate* unmanaged<int*, int> Initialized;
    public readonly delegate* unmanaged<int*, int> Finalized;
    public readonly delegate* unmanaged<int*, IntPtr, int, int*, int> InitThread;
    public readonly delegate* unmanaged<int> Finalize;
    public readonly delegate* unmanaged<IntPtr, int, int> Abort;
    public readonly delegate* unmanaged<IntPtr, int*, int> CommRank;
    public readonly delegate* unmanaged<IntPtr, int*, int> CommSize;
    public readonly delegate* unmanaged<IntPtr, int, int, IntPtr*, int> CommSplit;
    public readonly delegate* unmanaged<IntPtr*, int> CommFree;
    public readonly delegate* unmanaged<IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr, int> Allreduce;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr, int, IntPtr, int> Bcast;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr, IntPtr, int, IntPtr, IntPtr, int> Allgather;
    public readonly delegate* unmanaged<IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr, int> ReduceScatterBlock;
    public readonly delegate* unmanaged<IntPtr, int> Barrier;
    public readonly delegate* unmanaged<IntPtr, IntPtr*, int> CommDup;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr, int, int, IntPtr, int> Send;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr, int, int, IntPtr, IntPtr, int> Recv;
    public readonly delegate* unmanaged<int, int, IntPtr, int*, Status*, int> Iprobe;

    /// <summary>Open MPI's public MPI_Status layout.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Status
    {
        public int Source, Tag, Error, Cancelled;
        public nuint Count;
    }

    public const int AnySource = -1;

    public string Path { get; }

    private MpiLibrary(IntPtr handle, string path)
    {
        Path = path;
        IntPtr Export(string name) => NativeLibrary.TryGetExport(handle, name, out IntPtr address)
            ? address : throw new BioForgeException($"{path}: no symbol {name} (is this Open MPI 4 or later?)");
        CommWorld = Export("ompi_mpi_comm_world");
        Float = Export("ompi_mpi_float");
        Double = Export("ompi_mpi_double");
        Int64 = Export("ompi_mpi_long_long_int");
        OpSum = Export("ompi_mpi_op_sum");
        OpMax = Export("ompi_mpi_op_max");
        OpMin = Export("ompi_mpi_op_min");
        Byte = Export("ompi_mpi_byte");
        Initialized = (delegate* unmanaged<int*, int>)Export("MPI_Initialized");
        Finalized = (delegate* unmanaged<int*, int>)Export("MPI_Finalized");
        InitThread = (delegate* unmanaged<int*, IntPtr, int, int*, int>)Export("MPI_Init_thread");
        Finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        Abort = (delegate* unmanaged<IntPtr, int, int>)Export("MPI_Abort");
        CommRank = (delegate* unmanaged<IntPtr, int*, int>)Export("MPI_Comm_rank");
        CommSize = (delegate* unmanaged<IntPtr, int*, int>)Export("MPI_Comm_size");
        CommSplit = (delegate* unmanaged<IntPtr, int, int, IntPtr*, int>)Export("MPI_Comm_split");
        CommFree = (delegate* unmanaged<IntPtr*, int>)Export("MPI_Comm_free");
        Allreduce = (delegate* unmanaged<IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr, int>)Export("MPI_Allreduce");
        Bcast = (delegate* unmanaged<IntPtr, int, IntPtr, int, IntPtr, int>)Export("MPI_Bcast");
        Allgather = (delegate* unmanaged<IntPtr, int, IntPtr, IntPtr, int, IntPtr, IntPtr, int>)Export("MPI_Allgather");
        ReduceScatterBlock = (delegate* unmanaged<IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr, int>)Export("MPI_Reduce_scatter_block");
        Barrier = (delegate* unmanaged<IntPtr, int>)Export("MPI_Barrier");
        CommDup = (delegate* unmanaged<IntPtr, IntPtr*, int>)Export("MPI_Comm_dup");
        Send = (delegate* unmanaged<IntPtr, int, IntPtr, int, int, IntPtr, int>)Export("MPI_Send");
        Recv = (delegate* unmanaged<IntPtr, int, IntPtr, int, int, IntPtr, IntPtr, int>)Export("MPI_Recv");
        Iprobe = (delegate* unmanaged<int, int, IntPtr, int*, Status*, int>)Export("MPI_Iprobe");
    }

    public static MpiLibrary Load()
    {
        string path = Environment.GetEnvironmentVariable("BIOFORGE_MPI_LIBRARY") is { Length: > 0 } given ? given : "libmpi.so.40";
        IntPtr handle = Dlopen(path, RtldNow | RtldGlobal);
        if (handle == IntPtr.Zero)
            throw new BioForgeException($"Open MPI could not be loaded ({path}: {Marshal.PtrToStringUTF8(Dlerror())}); install openmpi-bin and libopenmpi-dev, or set BIOFORGE_MPI_LIBRARY");
        return new MpiLibrary(handle, path);
    }

    public void Check(int code, string what)
    {
        if (code != Success) throw new BioForgeException($"MPI {what} failed with error code {code}");
    }

    private const int RtldNow = 2, RtldGlobal = 0x100;

    [LibraryImport("libc", EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr Dlopen(string file, int mode);

    [LibraryImport("libc", EntryPoint = "dlerror")]
    private static partial IntPtr Dlerror();
}
