using TorchSharp;
using static TorchSharp.torch;

namespace BioForge.Runtime;

/// <summary>
/// Tensor–number arithmetic that keeps the number's native <see cref="Scalar"/> alive for the whole LibTorch call.
/// TorchSharp 0.107 converts a C# number to a <see cref="Scalar"/> implicitly and passes only its handle to LibTorch;
/// nothing references the managed object during the call, so a garbage collection at that moment can finalize it and
/// LibTorch reads freed memory ("Unknown scalar type", seen after ~80 steps of ESM-2 training). Code that runs every
/// step uses these instead of <c>tensor * 0.5</c>-style operators.
/// </summary>
internal static class ScalarArithmetic
{
    public static Tensor Mul(this Tensor tensor, double value)
    {
        using var scalar = value.ToScalar();
        return tensor.mul(scalar);
    }

    public static Tensor Div(this Tensor tensor, double value)
    {
        using var scalar = value.ToScalar();
        return tensor.div(scalar);
    }

    public static Tensor Add(this Tensor tensor, double value)
    {
        using Scalar scalar = value.ToScalar(), one = 1.ToScalar();
        return tensor.add(scalar, one);
    }

    /// <summary>
    /// a + b. TorchSharp's <c>a + b</c> and <c>a.add(b)</c> pass an <c>alpha = 1</c> they make inside and do not keep
    /// (ScalarRuleTests finds such members in TorchSharp's IL): the same hazard as a number turned into a Scalar.
    /// </summary>
    public static Tensor Plus(this Tensor a, Tensor b)
    {
        using var one = 1.ToScalar();
        return a.add(b, one);
    }

    public static Tensor PlusInPlace(this Tensor a, Tensor b)
    {
        using var one = 1.ToScalar();
        return a.add_(b, one);
    }

    /// <summary>tensor², as <c>square()</c> computes it (which makes its exponent 2 inside, unkept).</summary>
    public static Tensor Squared(this Tensor tensor)
    {
        using var two = 2.ToScalar();
        return tensor.pow(two);
    }

    /// <summary><paramref name="value"/> − tensor.</summary>
    public static Tensor SubtractFrom(this Tensor tensor, double value)
    {
        using Scalar scalar = value.ToScalar(), one = 1.ToScalar();
        return tensor.neg().add_(scalar, one);
    }

    public static Tensor Eq(this Tensor tensor, long value)
    {
        using var scalar = value.ToScalar();
        return tensor.eq(scalar);
    }

    public static Tensor MaskedFill(this Tensor tensor, Tensor mask, double value)
    {
        using var scalar = value.ToScalar();
        return tensor.masked_fill(mask, scalar);
    }

    public static Tensor MulInPlace(this Tensor tensor, double value)
    {
        using var scalar = value.ToScalar();
        return tensor.mul_(scalar);
    }

    public static Tensor AddInPlace(this Tensor tensor, double value)
    {
        using Scalar scalar = value.ToScalar(), one = 1.ToScalar();
        return tensor.add_(scalar, one);
    }

    /// <summary>tensor += alpha · other.</summary>
    public static Tensor AddScaledInPlace(this Tensor tensor, Tensor other, double alpha)
    {
        using var scalar = alpha.ToScalar();
        return tensor.add_(other, scalar);
    }

    /// <summary>tensor += value · a · b.</summary>
    public static Tensor AddProductInPlace(this Tensor tensor, Tensor a, Tensor b, double value)
    {
        using var scalar = value.ToScalar();
        return tensor.addcmul_(a, b, scalar);
    }

    /// <summary>tensor += value · a / b.</summary>
    public static Tensor AddQuotientInPlace(this Tensor tensor, Tensor a, Tensor b, double value)
    {
        using var scalar = value.ToScalar();
        return tensor.addcdiv_(a, b, scalar);
    }

    /// <summary>tensor − value, keeping an integer tensor integer (a long scalar, not a double).</summary>
    public static Tensor Sub(this Tensor tensor, long value)
    {
        using var scalar = value.ToScalar();
        return tensor.sub(scalar);
    }

    public static Tensor Ne(this Tensor tensor, long value)
    {
        using var scalar = value.ToScalar();
        return tensor.ne(scalar);
    }

    public static Tensor Lt(this Tensor tensor, long value)
    {
        using var scalar = value.ToScalar();
        return tensor.lt(scalar);
    }

    public static Tensor Ge(this Tensor tensor, long value)
    {
        using var scalar = value.ToScalar();
        return tensor.ge(scalar);
    }

    public static Tensor ClampMin(this Tensor tensor, double value)
    {
        using var scalar = value.ToScalar();
        return tensor.clamp_min(scalar);
    }

    public static Tensor DivInPlace(this Tensor tensor, double value)
    {
        using var scalar = value.ToScalar();
        return tensor.div_(scalar);
    }

    /// <summary>The integers [start, end) as an int64 tensor.</summary>
    public static Tensor Range(long start, long end, Device device)
    {
        using Scalar from = start.ToScalar(), to = end.ToScalar(), step = 1L.ToScalar();
        return arange(from, to, step, ScalarType.Int64, device);
    }

    /// <summary>A tensor of <paramref name="shape"/> filled with <paramref name="value"/>.</summary>
    public static Tensor Filled(long[] shape, long value, ScalarType dtype, Device device)
    {
        using var scalar = value.ToScalar();
        return full(shape, scalar, dtype, device);
    }
}
