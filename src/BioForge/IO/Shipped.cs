namespace BioForge.IO;

/// <summary>
/// The models and data BioForge ships (<c>models/…</c>, <c>data/…</c>) as its defaults name them: relative to the
/// working directory when they are there, else found from the application's folder upwards (the CLI is built into
/// <c>artifacts/cli</c> of the checkout; the tests' output folder holds its own copies), so a default works from any folder.
/// </summary>
public static class Shipped
{
    public static string Path(string relative)
    {
        if (Exists(relative)) return relative;
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            string candidate = System.IO.Path.Combine(folder.FullName, relative);
            if (Exists(candidate)) return candidate;
        }
        return relative; // not installed here: the caller's message names the default as it is written
    }

    private static bool Exists(string path) => Directory.Exists(path) || File.Exists(path);
}
