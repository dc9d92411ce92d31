using BioForge.Distributed;
using static TorchSharp.torch;

namespace BioForge.Tests;

/// <summary>A group of a given size for building split layers and models in one process: no collective may be called.</summary>
internal sealed class ShapeOnlyGroup(int size) : Communicator
{
    public override int Rank => 0;
    public override int Size => size;
    public override string Backend => "shape-only";
    public override void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum) => throw new NotSupportedException();
    public override void Broadcast(Tensor tensor, int root = 0) => throw new NotSupportedException();
    public override Tensor AllGather(Tensor tensor) => throw new NotSupportedException();
    public override Tensor ReduceScatter(Tensor tensor, ReduceOp op = ReduceOp.Sum) => throw new NotSupportedException();
    public override void Barrier(TimeSpan? timeout = null) => throw new NotSupportedException();
    public override Communicator Split(int color, int key) => throw new NotSupportedException();
    public override void Dispose() { }
}
