namespace BioForge;

/// <summary>
/// A problem with the user's input or environment, worded for the user: the CLI prints the message alone
/// (no stack trace) and exits non-zero.
/// </summary>
public sealed class BioForgeException : Exception
{
    public BioForgeException(string message) : base(message) { }

    public BioForgeException(string message, Exception inner) : base(message, inner) { }

    /// <summary>
    /// The machine lacks a library the work needs (the RDKit shim, say), so the input is not at fault: the service
    /// answers 501 rather than 422.
    /// </summary>
    public bool MissingDependency { get; init; }

    /// <summary>
    /// The machine, the model's files or an invariant of ours is at fault, not the input (corrupt weights giving NaN
    /// logits, an internal RDKit error, memory): the CLI prints the message as for any other, the service answers 500
    /// and logs it rather than telling the client its request was unprocessable (422).
    /// </summary>
    public bool ServerFault { get; init; }

    /// <summary>The input is longer than the model reads: a request that asked for it to be truncated is told it was not cut.</summary>
    public bool TooLong { get; init; }
}
