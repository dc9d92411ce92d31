namespace BioForge.IO;

/// <summary>
/// The models and data BioForge ships (<c>models/…</c>, <c>data/…</c>) as its defaults name them: relative to the
/// working directory when they are there, else in the application's folder (the tests' output folder holds copies) or the
/// checkout it was built in (the CLI is built into <c>artifacts/cli</c>), so a default works from any folder.
/// </summary>
public static class Shipped
{
    public static string Path(string relative)
    {
        if (Exists(relative)) return relative;
        foreach (string folder in Installation())
        {
            string candidate = System.IO.Path.Combine(folder, relative);
            if (Exists(candidate)) return candidate;
        }
        return relative; // not installed here: the caller's message names the default as it is written
    }

    /// <summary>The application's folder and those above it up to the checkout's root (the folder of BioForge.sln), none
    /// beyond: a machine's unrelated /data or /models is never taken for BioForge's.</summary>
    private static IEnumerable<string> Installation()
    {
        var folders = new List<string>();
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            folders.Add(folder.FullName);
            if (File.Exists(System.IO.Path.Combine(folder.FullName, "BioForge.sln"))) return folders;
        }
        return folders.Take(1); // outside a checkout (a published bundle): its own folder only
    }

    private static bool Exists(string path) => Directory.Exists(path) || File.Exists(path);
}
