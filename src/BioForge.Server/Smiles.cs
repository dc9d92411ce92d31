namespace BioForge.Server;

/// <summary>The service's bound on one SMILES, applied wherever a SMILES enters a request.</summary>
internal static class Smiles
{
    /// <summary>
    /// Each SMILES of an array field: 400 for a <c>null</c> item (a client's bug, answered as a null among embedding
    /// inputs or mutations is, not scored as an empty molecule), 422 for one longer than the server takes.
    /// </summary>
    public static void CheckEach(string?[] items, string param, ServerState state)
    {
        for (int i = 0; i < items.Length; i++)
        {
            if (items[i] is null) throw ApiError.BadRequest($"{param}[{i}] is null; expected a SMILES string", $"{param}[{i}]");
            CheckLength(items[i], $"{param}[{i}]", state);
        }
    }

    /// <summary>422 naming the field when <paramref name="text"/> is longer than the server takes.</summary>
    public static void CheckLength(string? text, string param, ServerState state)
    {
        int limit = state.Options.MaxSmilesLength;
        if (text is not null && text.Length > limit)
            throw ApiError.Invalid($"{param} has {text.Length:N0} characters; a SMILES may have at most {limit} here (--max-smiles-length)", param);
    }
}
