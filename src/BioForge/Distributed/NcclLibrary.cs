using System.Runtime.InteropServices;

namespace BioForge.Distributed;

/// <summary>
/// The NCCL entry points BioForge uses, bound at run time from <c>libnccl.so.2</c> (GPU machines; <c>BIOFORGE_NCCL_LIBRARY</c>
/// names another file). Signatures as in <c>nccl.h</c> (NCCL 2.x): results are <c>ncclResult_t</c>, 0 = success.
/// </summary>
internal sealed unsafe class NcclLibrary
{
    /// <summary><c>ncclUniqueId</c>: 128 opaque bytes rank 0 creates and every rank receives (over MPI).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct UniqueId
    {
        public fixed byte Internal[128];
    }

    // ncclDataType_t and ncclRedOp_t values from nccl.h.
    public const int Int64 = 4, Float16 = 6, Float32 = 7, Float64 = 8, BFloat16 = 9;
    public const int Sum = 0, Max = 2, Min = 3, Average = 4;

    public readonly delegate* unmanaged<UniqueId*, int> GetUniqueId;
    public readonly delegate* unmanaged<IntPtr*, int, UniqueId, int, int> CommInitRank;
    public readonly delegate* unmanaged<IntPtr, int> CommDestroy;
    public readonly delegate* unmanaged<IntPtr, int> CommAbort;
    public readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> AllReduce;
    public readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> Broadcast;
    public readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, IntPtr, IntPtr, int> AllGather;
    public readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> ReduceScatter;
    private readonly delegate* unmanaged<int, IntPtr> errorString;
    private readonly delegate* unmanaged<int*, int> getVersion;

    public string Path { get; }

    private NcclLibrary(IntPtr handle, string path)
    {
        Path = path;
        IntPtr Export(string name) => NativeLibrary.TryGetExport(handle, name, out IntPtr address)
            ? address : throw new BioForgeException($"{path}: no symbol {name} (is this NCCL 2.10 or later?)");
        GetUniqueId = (delegate* unmanaged<UniqueId*, int>)Export("ncclGetUniqueId");
        CommInitRank = (delegate* unmanaged<IntPtr*, int, UniqueId, int, int>)Export("ncclCommInitRank");
        CommDestroy = (delegate* unmanaged<IntPtr, int>)Export("ncclCommDestroy");
        CommAbort = (delegate* unmanaged<IntPtr, int>)Export("ncclCommAbort");
        AllReduce = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Export("ncclAllReduce");
        Broadcast = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Export("ncclBroadcast");
        AllGather = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, IntPtr, IntPtr, int>)Export("ncclAllGather");
        ReduceScatter = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Export("ncclReduceScatter");
        errorString = (delegate* unmanaged<int, IntPtr>)Export("ncclGetErrorString");
        getVersion = (delegate* unmanaged<int*, int>)Export("ncclGetVersion");
    }

    private static readonly Lazy<NcclLibrary> Instance = new(Open, LazyThreadSafetyMode.ExecutionAndPublication);

    public static NcclLibrary Load() => Instance.Value;

    private static NcclLibrary Open()
    {
        string path = Environment.GetEnvironmentVariable("BIOFORGE_NCCL_LIBRARY") is { Length: > 0 } custom ? custom : "libnccl.so.2";
        if (!NativeLibrary.TryLoad(path, out IntPtr handle))
            throw new BioForgeException($"cannot load {path}: NCCL is needed for collectives on CUDA tensors (install NCCL 2, or set BIOFORGE_NCCL_LIBRARY)");
        return new NcclLibrary(handle, path);
    }

    /// <summary>NCCL's version code, e.g. 22803 for 2.28.3.</summary>
    public int Version
    {
        get
        {
            int version;
            Check(getVersion(&version), "ncclGetVersion");
            return version;
        }
    }

    public void Check(int result, string what)
    {
        if (result != 0) throw new BioForgeException($"NCCL {what} failed: {Marshal.PtrToStringAnsi(errorString(result))} (ncclResult_t {result})");
    }
}
