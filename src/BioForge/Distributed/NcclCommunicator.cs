using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BioForge.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.Distributed;

/// <summary>
/// Collectives on CUDA tensors over NCCL, GPU to GPU, on the CUDA device's default stream — where LibTorch queues its
/// kernels unless told otherwise, so a collective is ordered after the kernels that produced its input and before
/// those that read its output. The NCCL unique id travels over the host communicator (MPI), which also carries
/// everything on CPU tensors, barriers and sub-group creation. Each collective is waited for under a watchdog: past
/// <see cref="Communicator.Timeout"/> the NCCL communicator is aborted and the job ended with a message, never a hang.
/// </summary>
public sealed unsafe class NcclCommunicator : Communicator
{
    private readonly NcclLibrary nccl;
    private readonly Communicator host;
    private readonly Device device;
    private readonly bool ownsHost;
    private IntPtr comm;

    public override int Rank => host.Rank;
    public override int Size => host.Size;
    public override string Backend => "nccl";

    private NcclCommunicator(NcclLibrary nccl, Communicator host, Device device, IntPtr comm, bool ownsHost)
    {
        this.nccl = nccl;
        this.host = host;
        this.device = device;
        this.comm = comm;
        this.ownsHost = ownsHost;
    }

    /// <summary>
    /// A collective over <paramref name="host"/>: rank 0 creates the unique id, every rank receives it and joins an NCCL
    /// communicator of the same ranks on its own CUDA device (<paramref name="device"/>, usually cuda:local-rank).
    /// </summary>
    /// <param name="ownsHost">Dispose <paramref name="host"/> with this communicator (a sub-group made for it).</param>
    public static NcclCommunicator Create(Communicator host, Device device, bool ownsHost = false)
    {
        if (device.type != DeviceType.CUDA) throw new BioForgeException($"NCCL needs a CUDA device, not {device}");
        var nccl = NcclLibrary.Load();
        NcclLibrary.UniqueId id;
        if (host.Rank == 0) nccl.Check(nccl.GetUniqueId(&id), "ncclGetUniqueId");
        var bytes = new long[16];
        if (host.Rank == 0) new ReadOnlySpan<byte>(id.Internal, 128).CopyTo(MemoryMarshal.AsBytes(bytes.AsSpan()));
        using (var shared = tensor(bytes))
        {
            host.Broadcast(shared);
            MemoryMarshal.AsBytes(shared.data<long>().ToArray().AsSpan()).CopyTo(new Span<byte>(id.Internal, 128));
        }
        CudaRuntime.SetDevice(device.index < 0 ? 0 : device.index);
        IntPtr comm;
        int result = nccl.CommInitRank(&comm, host.Size, id, host.Rank);
        // ncclInvalidUsage here is most often two ranks on one GPU (more ranks on a host than its devices: the local
        // rank wraps around them), which NCCL reports only in its debug log.
        const int invalidUsage = 5;
        int visible = (int)cuda.device_count();
        string hint = result == invalidUsage && ProcessGroup.Launch.LocalRank >= visible
            ? $"; this is local rank {ProcessGroup.Launch.LocalRank} on a host with {visible} visible CUDA device(s), and NCCL needs a GPU of its own for each rank: start at most {visible} rank(s) per host"
            : "";
        nccl.Check(result, $"ncclCommInitRank (rank {host.Rank} of {host.Size} on {device}{hint})");
        return new NcclCommunicator(nccl, host, device, comm, ownsHost);
    }

    /// <summary>NCCL's version, e.g. "2.28.3".</summary>
    public string Version
    {
        get
        {
            int v = nccl.Version;
            return $"{v / 10000}.{v / 100 % 100}.{v % 100}";
        }
    }

    public override void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        if (tensor.device_type != DeviceType.CUDA)
        {
            host.AllReduce(tensor, op);
            return;
        }
        using var buffer = Contiguous(tensor);
        IntPtr data = TensorMemory.Address(buffer);
        Run(() => nccl.AllReduce(data, data, (nuint)buffer.numel(), DataType(buffer), Op(op), comm, IntPtr.Zero), "all-reduce", buffer);
        if (!ReferenceEquals(buffer, tensor)) CopyBack(buffer, tensor);
    }

    public override void Broadcast(Tensor tensor, int root = 0)
    {
        if (tensor.device_type != DeviceType.CUDA)
        {
            host.Broadcast(tensor, root);
            return;
        }
        if (root < 0 || root >= Size) throw new BioForgeException($"broadcast root {root} is outside a group of {Size}");
        using var buffer = Contiguous(tensor);
        IntPtr data = TensorMemory.Address(buffer);
        Run(() => nccl.Broadcast(data, data, (nuint)buffer.numel(), DataType(buffer), root, comm, IntPtr.Zero), "broadcast", buffer);
        if (!ReferenceEquals(buffer, tensor)) CopyBack(buffer, tensor);
    }

    public override Tensor AllGather(Tensor tensor)
    {
        if (tensor.device_type != DeviceType.CUDA) return host.AllGather(tensor);
        using var buffer = Contiguous(tensor);
        long[] shape = [Size * (tensor.dim() == 0 ? 1 : tensor.shape[0]), .. tensor.shape.Skip(1)];
        var gathered = empty(shape, tensor.dtype, tensor.device);
        IntPtr source = TensorMemory.Address(buffer), target = TensorMemory.Address(gathered);
        Run(() => nccl.AllGather(source, target, (nuint)buffer.numel(), DataType(buffer), comm, IntPtr.Zero), "all-gather", gathered);
        return gathered;
    }

    public override Tensor ReduceScatter(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        if (tensor.device_type != DeviceType.CUDA) return host.ReduceScatter(tensor, op);
        CheckDivisible(tensor, "reduce-scatter");
        using var buffer = Contiguous(tensor);
        long[] shape = [tensor.shape[0] / Size, .. tensor.shape.Skip(1)];
        var result = empty(shape, tensor.dtype, tensor.device);
        IntPtr source = TensorMemory.Address(buffer), target = TensorMemory.Address(result);
        Run(() => nccl.ReduceScatter(source, target, (nuint)result.numel(), DataType(buffer), Op(op), comm, IntPtr.Zero), "reduce-scatter", result);
        return result;
    }

    public override void Barrier(TimeSpan? timeout = null) => host.Barrier(timeout);

    public override Communicator Split(int color, int key)
    {
        var child = host.Split(color, key);
        try
        {
            return Create(child, device, ownsHost: true);
        }
        catch
        {
            child.Dispose();
            throw;
        }
    }

    public override void Dispose()
    {
        if (comm == IntPtr.Zero) return;
        nccl.CommDestroy(comm);
        comm = IntPtr.Zero;
        if (ownsHost) host.Dispose();
    }

    private static Tensor Contiguous(Tensor tensor) => tensor.is_contiguous() ? tensor.alias() : tensor.contiguous();

    private static void CopyBack(Tensor buffer, Tensor tensor)
    {
        using var _ = no_grad();
        tensor.copy_(buffer);
    }

    private static int DataType(Tensor tensor) => tensor.dtype switch
    {
        ScalarType.Float32 => NcclLibrary.Float32,
        ScalarType.Float64 => NcclLibrary.Float64,
        ScalarType.BFloat16 => NcclLibrary.BFloat16,
        ScalarType.Float16 => NcclLibrary.Float16,
        ScalarType.Int64 => NcclLibrary.Int64,
        var other => throw new BioForgeException($"NCCL collectives take float32/float64/bf16/fp16/int64 tensors, not {other}"),
    };

    private static int Op(ReduceOp op) => op switch
    {
        ReduceOp.Max => NcclLibrary.Max,
        ReduceOp.Min => NcclLibrary.Min,
        ReduceOp.Average => NcclLibrary.Average,
        _ => NcclLibrary.Sum,
    };

    /// <summary>
    /// Queues one collective, then waits for it — a one-element copy to the host on the same stream returns only when
    /// the collective has finished — under a watchdog that aborts the NCCL communicator and ends the job past the timeout.
    /// </summary>
    private void Run(Func<int> enqueue, string what, Tensor output)
    {
        var limit = Timeout;
        // The host group's probe (Open MPI's) counts these collectives too, so it can name the rank that holds one up.
        var probe = host.Liveness;
        var completed = new StrongBox<bool>();
        using var watchdog = new Timer(_ =>
        {
            string cause = probe?.Suspects(TimeSpan.FromSeconds(5)) ?? "another rank has died or is stuck";
            if (Volatile.Read(ref completed.Value)) return;
            Console.Error.WriteLine($"error: {probe?.Name ?? $"rank {Rank} of {Size}"}: NCCL {what} did not complete within {limit.TotalSeconds:F0} s: {cause} (BIOFORGE_COLLECTIVE_TIMEOUT sets the limit)");
            Console.Error.Flush();
            nccl.CommAbort(comm);
            Environment.Exit(3);
        }, null, limit, System.Threading.Timeout.InfiniteTimeSpan);
        probe?.Enter();
        try
        {
            nccl.Check(enqueue(), what);
            using var flat = output.view(-1);
            using var first = flat.narrow(0, 0, Math.Min(1, flat.numel()));
            using var done = first.cpu();
            Volatile.Write(ref completed.Value, true);
        }
        finally
        {
            probe?.Leave();
        }
    }
}

/// <summary>
/// The one CUDA runtime call LibTorch does not expose through TorchSharp: choosing the current device, which NCCL binds
/// its communicator to. <c>BIOFORGE_CUDART_LIBRARY</c> names the library when the usual names do not load.
/// </summary>
internal static unsafe class CudaRuntime
{
    /// <summary>
    /// The runtime PyTorch already mapped comes first, then versioned names: the bare <c>libcudart.so</c> is a CUDA
    /// toolkit's development link and would load a second runtime, whose current device is not LibTorch's.
    /// </summary>
    internal static IReadOnlyList<string> Candidates(string? custom, IEnumerable<string> mapped) =>
        custom is { Length: > 0 } ? [custom] : [.. mapped, "libcudart.so.13", "libcudart.so.12", "libcudart.so"];

    public static void SetDevice(int index)
    {
        var names = Candidates(Environment.GetEnvironmentVariable("BIOFORGE_CUDART_LIBRARY"), TorchRuntime.MappedLibraries("libcudart.so"));
        foreach (string name in names)
        {
            if (!NativeLibrary.TryLoad(name, out IntPtr handle)) continue;
            var setDevice = (delegate* unmanaged<int, int>)NativeLibrary.GetExport(handle, "cudaSetDevice");
            int result = setDevice(index);
            if (result != 0) throw new BioForgeException($"cudaSetDevice({index}) failed with cudaError {result}");
            return;
        }
        // Without the runtime library the current device stays 0: enough for one GPU per process.
        if (index != 0) throw new BioForgeException($"cannot load the CUDA runtime ({string.Join(", ", names)}) to select GPU {index}; set BIOFORGE_CUDART_LIBRARY");
    }
}
