namespace BioForge.Server;

/// <summary>The service's bound on one SMILES, applied wherever a SMILES enters a request.</summary>
internal static class Smiles
{
    /// <summary>422 naming the field when <paramref name="text"/> is longer than the server takes.</summary>
    public static void CheckLength(string? text, string param, ServerState state)
    {
        int limit = state.Options.MaxSmilesLength;
        if (text is not null && text.Length > limit)
            throw ApiError.Invalid($"{param} has {text.Length:N0} characters; a SMILES may have at most {limit} here (--max-smiles-length)", param);
    }
}
