using System.Collections.Concurrent;
using static TorchSharp.torch;

namespace BioForge.Runtime;

/// <summary>
/// One <c>backward()</c> of a loss whose graph may hold BioForge's custom autograd functions
/// (<see cref="ActivationCheckpoint"/>, the tensor-parallel operators). On CUDA, LibTorch calls their backward bodies
/// on its autograd worker thread: the dispose scopes of the thread that called <c>backward()</c> do not reach there, so
/// recomputed activations and gradient copies would wait for the .NET finalizer (GPU memory growing step after step),
/// and a .NET exception (a CUDA out-of-memory, an NCCL error) would cross the engine's native frames and end the
/// process without a message. Open a pass before the forward (the functions created in it attach to it), call
/// <see cref="Backward"/> instead of <c>loss.backward()</c>, and dispose the pass: every tensor the bodies created
/// is freed by then, and the first exception one of them raised is rethrown here, on the caller's thread.
/// </summary>
internal sealed class BackwardPass : IDisposable
{
    private const string ContextKey = "bioforge.backward-pass";

    // The pass the forward pass running on this thread attaches to. Thread-local, set and restored by `using`: the one
    // way to reach the model's custom functions without threading a parameter through every forward signature.
    [ThreadStatic] private static BackwardPass? current;

    private readonly BackwardPass? outer;
    private readonly Lock failureLock = new();
    // Per thread, what its last backward bodies returned to the engine. The engine copies a body's results right after
    // the body returns, on the same thread, so they can be disposed when that thread enters its next body.
    private readonly ConcurrentDictionary<int, List<Tensor>> handedOver = new();
    private (string Function, Exception Error)? failure;
    private bool disposed;

    public BackwardPass()
    {
        outer = current;
        current = this;
    }

    /// <summary>Back-propagates from <paramref name="loss"/>, frees what custom backward bodies left, and rethrows what they threw.</summary>
    public void Backward(Tensor loss)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        loss.backward();
        ReleaseAll();
        lock (failureLock)
        {
            if (failure is not { } f) return;
            failure = null;
            throw new BioForgeException($"the backward pass failed in {f.Function}: {f.Error.Message}", f.Error);
        }
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        ReleaseAll();
        if (current == this) current = outer;
    }

    /// <summary>Called from a custom function's forward: its backward will report to the pass open on this thread, if any.</summary>
    internal static void Attach(autograd.AutogradContext ctx)
    {
        if (current is { } pass) ctx.save_data(ContextKey, pass);
    }

    /// <summary>
    /// Runs a custom function's backward <paramref name="body"/> in its own dispose scope, on whatever thread the engine
    /// chose; hands its results (and the engine's incoming gradients) to the pass to be freed once the engine has copied
    /// them. An exception becomes undefined gradients here and is rethrown by <see cref="Backward"/>.
    /// </summary>
    /// <param name="results">How many entries the body returns (one per forward argument).</param>
    internal static List<Tensor> Run(autograd.AutogradContext ctx, string function, Tensor gradOutput, int results, Func<List<Tensor>> body)
    {
        var pass = ctx.get_data(ContextKey) as BackwardPass;
        var before = current;
        // Functions recomputed inside the body (a tensor-parallel layer in a checkpointed segment) join the same pass.
        current = pass ?? before;
        try
        {
            pass?.ReleaseThisThread();
            List<Tensor> gradients;
            using (var scope = NewDisposeScope())
            {
                try
                {
                    gradients = body();
                }
                catch (Exception e)
                {
                    if (pass is null)
                        Environment.FailFast($"error: the backward pass failed in {function}: {e.Message} (no BackwardPass was open to carry it to the caller)", e);
                    pass.Fail(function, e);
                    return [.. Enumerable.Repeat<Tensor>(null!, results)];
                }
                // With a pass the results outlive this scope until the engine has copied them; without one they go to
                // the caller's scope (the CPU engine runs bodies on the calling thread) or, on a worker thread, to the finalizer.
                foreach (var g in gradients)
                    if (pass is null) g?.MoveToOuterDisposeScope();
                    else g?.DetachFromDisposeScope();
            }
            pass?.HandOver([.. gradients.Where(g => g is not null), gradOutput]);
            return gradients;
        }
        finally
        {
            current = before;
        }
    }

    private void Fail(string function, Exception error)
    {
        lock (failureLock) failure ??= (function, error);
    }

    private void HandOver(IEnumerable<Tensor> tensors) =>
        handedOver.GetOrAdd(Environment.CurrentManagedThreadId, _ => []).AddRange(tensors);

    private void ReleaseThisThread()
    {
        if (!handedOver.TryGetValue(Environment.CurrentManagedThreadId, out var list)) return;
        foreach (var t in list) t.Dispose();
        list.Clear();
    }

    private void ReleaseAll()
    {
        foreach (var (thread, list) in handedOver)
        {
            foreach (var t in list) t.Dispose();
            handedOver.TryRemove(thread, out _);
        }
    }
}
