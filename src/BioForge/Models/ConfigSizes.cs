namespace BioForge.Models;

/// <summary>The checks every model family's <c>config.json</c> needs on its sizes.</summary>
internal static class ConfigSizes
{
    /// <summary>Refuses the first size that is not positive, by its <c>config.json</c> key.</summary>
    public static void RequirePositive(string where, params (string Key, long Value)[] sizes)
    {
        foreach (var (key, value) in sizes)
            if (value <= 0) throw new BioForgeException($"{where}: {key} must be positive (got {value})");
    }
}
