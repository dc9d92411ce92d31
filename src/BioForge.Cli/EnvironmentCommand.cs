using System.CommandLine;
using BioForge.Runtime;
using TorchSharp;

namespace BioForge.Cli;

/// <summary><c>bioforge env</c>: which LibTorch was loaded, threads and devices — the first thing to check on a new machine.</summary>
internal static class EnvironmentCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var command = new Command("env", "Show the loaded LibTorch, CPU threads and CUDA devices");
        command.SetAction(_ => Cli.Guard(error, () =>
        {
            var compute = ComputeOptions.Resolve("auto", "auto", 0);
            output.WriteLine($"libtorch:   {TorchRuntime.LibTorchDirectory}");
            // What the loader really mapped: one libtorch_cpu.so, from the folder above (two would mean mixed versions).
            output.WriteLine($"mapped:     {string.Join(" ", TorchRuntime.MappedLibraries("libtorch_cpu.so"))}");
            output.WriteLine($"threads:    {compute.Threads} (cores: {Environment.ProcessorCount}; OpenMP waits: {TorchRuntime.OpenMpWaits ?? "spin (libgomp's default)"})");
            output.WriteLine($"cuda:       {(TorchRuntime.CudaAvailable ? $"{torch.cuda.device_count()} device(s)" : "not available")}");
            string? cuDnnLast = TorchRuntime.NativeEnvironment(TorchRuntime.CuDnnAttentionVariable);
            output.WriteLine($"attention:  {TorchRuntime.CuDnnAttentionVariable}={cuDnnLast ?? "unset"} (1: cuDNN's kernel after flash and memory-efficient; PyTorch's own order otherwise)");
            output.WriteLine($"default:    --device {compute.Device.type.ToString().ToLowerInvariant()} --dtype {compute.DType}");
            return 0;
        }));
        return command;
    }
}
