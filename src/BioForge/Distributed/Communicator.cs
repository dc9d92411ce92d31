using static TorchSharp.torch;

namespace BioForge.Distributed;

public enum ReduceOp { Sum, Average, Max, Min }

/// <summary>
/// Collectives over a group of processes on tensors, in the PyTorch <c>torch.distributed</c> sense. Every rank of the
/// group must call the same collectives in the same order with tensors of the same shape; a collective that does not
/// complete within <see cref="Timeout"/> (another rank died or is stuck) throws instead of hanging.
/// </summary>
public abstract class Communicator : IDisposable
{
    public abstract int Rank { get; }
    public abstract int Size { get; }

    /// <summary><c>mpi</c>, <c>nccl</c> or <c>single</c>.</summary>
    public abstract string Backend { get; }

    public TimeSpan Timeout { get; init; } = DefaultTimeout();

    /// <summary>Reduces <paramref name="tensor"/> across ranks in place; every rank ends with the result.</summary>
    public abstract void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum);

    /// <summary>Overwrites <paramref name="tensor"/> on every rank with root's values.</summary>
    public abstract void Broadcast(Tensor tensor, int root = 0);

    /// <summary>Every rank's tensor concatenated along dimension 0, in rank order.</summary>
    public abstract Tensor AllGather(Tensor tensor);

    /// <summary>Reduces across ranks and returns this rank's part: dimension 0 split into <see cref="Size"/> equal parts.</summary>
    public abstract Tensor ReduceScatter(Tensor tensor, ReduceOp op = ReduceOp.Sum);

    /// <param name="timeout">Overrides <see cref="Timeout"/>: a barrier after uneven work may wait long for a live rank.</param>
    public abstract void Barrier(TimeSpan? timeout = null);

    /// <summary>Sub-groups: ranks with the same <paramref name="color"/> form one, ordered by <paramref name="key"/>.</summary>
    public abstract Communicator Split(int color, int key);

    public abstract void Dispose();

    /// <summary>The probe that names a rank holding up a collective of this group, where the backend has one (Open MPI's).</summary>
    internal virtual LivenessProbe? Liveness => null;

    /// <summary>BIOFORGE_COLLECTIVE_TIMEOUT seconds, default 300.</summary>
    private static TimeSpan DefaultTimeout()
    {
        string? text = Environment.GetEnvironmentVariable("BIOFORGE_COLLECTIVE_TIMEOUT");
        if (string.IsNullOrWhiteSpace(text)) return TimeSpan.FromSeconds(300);
        return double.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out double seconds) && seconds > 0
            ? TimeSpan.FromSeconds(seconds)
            : throw new BioForgeException($"BIOFORGE_COLLECTIVE_TIMEOUT={text}: expected a positive number of seconds");
    }

    protected void CheckDivisible(Tensor tensor, string what)
    {
        if (tensor.dim() == 0 || tensor.shape[0] % Size != 0)
            throw new BioForgeException($"{what}: dimension 0 of a [{string.Join(", ", tensor.shape)}] tensor does not split into {Size} equal parts");
    }
}

/// <summary>A world of one: every collective is the identity, so single-process runs take the same code path.</summary>
public sealed class SingleProcessCommunicator : Communicator
{
    public override int Rank => 0;
    public override int Size => 1;
    public override string Backend => "single";

    public override void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum) { }

    public override void Broadcast(Tensor tensor, int root = 0)
    {
        if (root != 0) throw new BioForgeException($"broadcast from rank {root} in a world of one");
    }

    public override Tensor AllGather(Tensor tensor) => tensor.clone();

    public override Tensor ReduceScatter(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        CheckDivisible(tensor, "reduce-scatter");
        return tensor.clone();
    }

    public override void Barrier(TimeSpan? timeout = null) { }

    public override Communicator Split(int color, int key) => new SingleProcessCommunicator();

    public override void Dispose() { }
}
