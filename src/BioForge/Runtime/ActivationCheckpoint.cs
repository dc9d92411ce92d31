using static TorchSharp.torch;

namespace BioForge.Runtime;

/// <summary>
/// Activation checkpointing (Chen et al. 2016): a segment runs forward without keeping its intermediate activations;
/// backward runs it again with gradients on and back-propagates through the recomputation. Memory per segment drops
/// to its input; compute grows by one forward pass. TorchSharp has no <c>torch.utils.checkpoint</c>, so this is a
/// custom autograd function whose backward calls the engine again (re-entrantly, as PyTorch's original checkpoint did).
/// The segment must be deterministic: no dropout, since its draws would differ on recomputation.
/// </summary>
internal static class ActivationCheckpoint
{
    /// <summary>Runs <paramref name="segment"/> on <paramref name="input"/> under checkpointing when gradients are being recorded.</summary>
    public static Tensor Run(Func<Tensor, Tensor> segment, Tensor input)
    {
        if (!is_grad_enabled() || !input.requires_grad) return segment(input);
        // The segment's temporaries would otherwise live in the caller's scope until the whole micro-batch ends, which
        // is what checkpointing exists to avoid.
        using var scope = NewDisposeScope();
        return Segment.apply(input, segment).MoveToOuterDisposeScope();
    }

    private sealed class Segment : autograd.SingleTensorFunction<Segment>
    {
        public override string Name => nameof(ActivationCheckpoint);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var input = (Tensor)vars[0];
            ctx.save_for_backward([input]);
            ctx.save_data("segment", vars[1]);
            BackwardPass.Attach(ctx);
            return ((Func<Tensor, Tensor>)vars[1])(input);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput) =>
            BackwardPass.Run(ctx, Name, gradOutput, results: 2, () =>
            {
                var recompute = (Func<Tensor, Tensor>)ctx.get_data("segment");
                var input = ctx.get_saved_variables()[0].detach().requires_grad_(true);
                using (enable_grad())
                {
                    var output = recompute(input);
                    // Parameters inside the segment receive their gradients here, accumulated into their .grad as usual.
                    autograd.backward([output], [gradOutput]);
                }
                return [input.grad!.detach(), null!]; // one entry per forward argument; the segment delegate has none
            });
    }
}
