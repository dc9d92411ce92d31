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
}
