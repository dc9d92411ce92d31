using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace BioForge.Runtime;

/// <summary>Where a tensor's elements lie, for code that reads them without LibTorch (NCCL, hand-written CPU kernels).</summary>
internal static class TensorMemory
{
    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_data(IntPtr handle);

    /// <summary>The address of a tensor's first element (storage offset included), on its own device. The tensor must be
    /// contiguous for the rest to follow in row-major order, and must outlive every use of the address.</summary>
    public static IntPtr Address(Tensor tensor) => THSTensor_data(tensor.Handle);
}
