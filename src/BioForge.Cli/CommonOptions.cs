using System.CommandLine;
using BioForge.Runtime;

namespace BioForge.Cli;

/// <summary>
/// Options shared by every compute command: where to run and with how many threads. A scoring command (its output a
/// difference of log-probabilities: variant effects, pseudo-log-likelihoods, fill-mask's probabilities) computes in
/// float32 on <c>--dtype auto</c> everywhere: bf16 keeps about 3 significant digits, as large as the differences it ranks.
/// </summary>
internal sealed class ComputeOptionSet(bool scoring = false)
{
    public Option<string> Device { get; } = new("--device")
    {
        Description = "cpu, cuda, cuda:N or auto (CUDA when available)",
        DefaultValueFactory = _ => "auto",
    };

    public Option<string> DType { get; } = new("--dtype")
    {
        Description = scoring ? "fp32, bf16, fp16 or auto (fp32: scores rank small differences that bf16 rounds away)" : "fp32, bf16, fp16 or auto (bf16 on CUDA, fp32 on CPU)",
        DefaultValueFactory = _ => "auto",
    };

    public Option<int> Threads { get; } = new("--threads")
    {
        Description = "CPU threads (default: BIOFORGE_THREADS, OMP_NUM_THREADS, or all cores)",
        DefaultValueFactory = _ => 0,
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Device);
        command.Options.Add(DType);
        command.Options.Add(Threads);
    }

    /// <summary>The settings given; under mpirun/srun "cuda" is the GPU of the process's local rank, not GPU 0 for every rank.</summary>
    public ComputeOptions Resolve(ParseResult result)
    {
        string dtype = result.GetValue(DType)!;
        if (scoring && dtype.Trim().Equals("auto", StringComparison.OrdinalIgnoreCase)) dtype = "fp32";
        var options = ComputeOptions.Resolve(result.GetValue(Device)!, dtype, result.GetValue(Threads));
        return options with { Device = Distributed.ParallelGrid.LocalDevice(options.Device, Distributed.ProcessGroup.Launch) };
    }
}

/// <summary>
/// An output naming a folder (a prepared corpus, a run, a checkpoint) rather than a file: the CLI's checks refuse an
/// existing file there, and the command's writer checks what an existing folder holds.
/// </summary>
internal sealed class FolderOutputOption(string name) : Option<string>(name);

internal static class Options
{
    public static Option<string> Required(string name, string description) => new(name) { Description = description, Required = true };

    public static Option<string> RequiredFolder(string name, string description) => new FolderOutputOption(name) { Description = description, Required = true };

    public static Option<int> Int(string name, string description, int defaultValue) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue };

    /// <summary>
    /// A file output of one format: a name with another extension (props.json for a CSV) is refused before any work
    /// rather than written in the wrong format under it.
    /// </summary>
    public static TOption Writes<TOption>(this TOption option, string format, params string[] extensions) where TOption : Option
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count == 0) return;
            string path = result.Tokens[^1].Value;
            if (!extensions.Any(e => path.EndsWith(e, StringComparison.OrdinalIgnoreCase)))
                result.AddError($"{option.Name} {path}: writes {format}; name a {string.Join(" or ", extensions)} file");
        });
        return option;
    }
}
