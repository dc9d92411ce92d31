using System.Globalization;
using System.Text.Json.Nodes;
using BioForge.IO;

namespace BioForge.Training;

/// <summary>
/// Where a run keeps itself on disk — the one implementation behind pre-training, fine-tuning, affinity training and
/// molecule optimization, like PyTorch Lightning's log directory:
/// <list type="bullet">
/// <item><c>run_config.json</c>, the resolved configuration, written atomically; on resume the settings that define the
/// run must equal the stored ones (<see cref="RefuseChanges"/>).</item>
/// <item><c>metrics.jsonl</c>, one JSON object per line with a <c>step</c>; on resume, lines past the resumed step and
/// a line torn by a kill are dropped (<see cref="OpenMetrics"/>).</item>
/// <item><c>checkpoints/step-000000100/</c>, each written into a hidden directory and renamed into place when complete;
/// the newest are kept, and older ones are first renamed to a hidden trash name and only then deleted, so a kill at any
/// moment leaves every visible checkpoint complete and at least one of them in place.</item>
/// <item>final artefacts (<c>model/</c>, <c>agent/</c>) swapped in by <see cref="Publish"/>.</item>
/// </list>
/// Leftovers of interrupted writes and deletions (hidden <c>.tmp</c> and <c>.trash</c> entries) are removed when the
/// directory is opened, and an artefact replaced by a write that was killed before the new one took its place is restored.
/// </summary>
public sealed class RunDirectory
{
    public const string ConfigFile = "run_config.json";
    public const string MetricsFile = "metrics.jsonl";
    public const string CheckpointsFolder = "checkpoints";
    private const string StepPrefix = "step-";
    private const string TempSuffix = ".tmp";
    private const string TrashPrefix = ".trash-";
    /// <summary>The older version of a directory <see cref="Commit"/> replaces, until the new one is in its place.</summary>
    private const string ReplacedPrefix = ".replaced-";

    /// <summary>The run directory's path as given.</summary>
    public string Path { get; }
    public string CheckpointsDirectory => System.IO.Path.Combine(Path, CheckpointsFolder);

    private RunDirectory(string path) => Path = path;

    /// <summary>
    /// Opens <paramref name="path"/> for a run. A new run (<paramref name="isNew"/>) needs it absent or empty
    /// (<paramref name="setting"/> names the option in the message). Only the <paramref name="owner"/> (rank 0 of a
    /// multi-process run) creates it and removes the debris of interrupted writes; every rank makes the same checks.
    /// </summary>
    public static RunDirectory Open(string path, string setting, bool isNew, bool owner = true)
    {
        if (isNew) RequireNew(path, setting, NotEmptyAdvice(path));
        else if (string.IsNullOrWhiteSpace(path)) throw new BioForgeException($"{setting} is required");
        else if (!Directory.Exists(path)) throw new BioForgeException($"--resume: {setting} {path} does not exist; there is no run to continue");
        var run = new RunDirectory(path) { Created = AtomicFile.FirstMissing(System.IO.Path.GetFullPath(path)), StartedEmpty = isNew };
        if (!owner) return run;
        try
        {
            Directory.CreateDirectory(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BioForgeException($"{setting} {path}: cannot create it ({e.Message})");
        }
        run.RemoveDebris();
        return run;
    }

    /// <summary>
    /// What to do with a folder a new run was pointed at that holds files: resume the run there — or, when that run
    /// stopped before its first checkpoint (its log kept to read), there is nothing to resume, and --resume would only
    /// say so.
    /// </summary>
    private static string NotEmptyAdvice(string path)
    {
        var existing = new RunDirectory(path);
        if (existing.HasAnyCheckpoint) return "pass --resume to continue that run, or choose another directory";
        return existing.StoppedBeforeFirstCheckpoint
            ? $"the run there stopped before its first checkpoint, so there is nothing to resume ({MetricsFile} is kept to read): remove the folder or choose another directory"
            : "remove it or choose another directory";
    }

    private bool HasAnyCheckpoint => Directory.Exists(CheckpointsDirectory) && Directory.EnumerateDirectories(CheckpointsDirectory, StepPrefix + "*").Any();

    /// <summary>
    /// The folder holds what a checkpointed run writes before its first checkpoint and nothing else (a finished
    /// fine-tuning run also has a run_config.json and no checkpoint, but its results beside them).
    /// </summary>
    private bool StoppedBeforeFirstCheckpoint =>
        File.Exists(System.IO.Path.Combine(Path, ConfigFile)) && File.Exists(System.IO.Path.Combine(Path, MetricsFile)) && !HasAnyCheckpoint
        && Directory.EnumerateFileSystemEntries(Path).Select(System.IO.Path.GetFileName)
            .All(name => name is ConfigFile or MetricsFile or CheckpointsFolder || name!.StartsWith('.'));

    /// <summary>--resume's refusal for a directory without a complete checkpoint, saying how to start again when a run stopped there before its first.</summary>
    public BioForgeException NothingToResume(string setting) =>
        new($"--resume: {CheckpointsDirectory} holds no complete checkpoint"
            + (StoppedBeforeFirstCheckpoint ? $"; the run there stopped before its first, so there is nothing to resume: remove {Path} or choose another {setting} to start again" : ""));

    /// <summary>The topmost folder <see cref="Open"/> made for the directory (itself, or a parent it made too); null when it was there.</summary>
    private string? Created { get; init; }

    /// <summary>Whether the directory was absent or empty when <see cref="Open"/> took it for a new run: all it holds is the run's.</summary>
    private bool StartedEmpty { get; init; }

    /// <summary>
    /// After a failure: a new run's directory left with nothing to resume or read (no checkpoint, no logged step) is
    /// removed — emptied when it was there before — so a run refused at its first step leaves nothing that blocks the next.
    /// </summary>
    /// <remarks>A branch's directory starts with its source's history (<paramref name="historyUpTo"/>): only lines past it count as its own.</remarks>
    public void RemoveIfUnused(string stateFile, long historyUpTo = -1)
    {
        if (!StartedEmpty || !Directory.Exists(Path) || Checkpoints(stateFile).Count > 0) return;
        string metrics = System.IO.Path.Combine(Path, MetricsFile);
        if (File.Exists(metrics) && File.ReadLines(metrics).Any(line => MetricsLog.StepOf(line) is not { } step || step > historyUpTo)) return;
        Undo(Path, Created);
    }

    /// <summary>
    /// Removes what was written into a folder found absent or empty: the folder when it was made for it, and the parents
    /// made on the way up to <paramref name="created"/> (the topmost) while they are empty — another run may have started
    /// in one of them since — else all it holds. Called after a failure, so it does what it can: a cleanup that fails does
    /// not hide the failure.
    /// </summary>
    internal static void Undo(string path, string? created)
    {
        try
        {
            if (!Directory.Exists(path)) return;
            if (created is not null)
            {
                string folder = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(path));
                Directory.Delete(folder, recursive: true);
                for (string? parent = System.IO.Path.GetDirectoryName(folder);
                     parent is not null && parent.Length >= created.Length && !Directory.EnumerateFileSystemEntries(parent).Any();
                     parent = System.IO.Path.GetDirectoryName(parent))
                    Directory.Delete(parent);
                return;
            }
            foreach (var entry in new DirectoryInfo(path).EnumerateFileSystemInfos())
            {
                if (entry is DirectoryInfo folder && folder.LinkTarget is null) folder.Delete(recursive: true);
                else entry.Delete();
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Opens an existing run directory without the empty/resume check (for readers such as tests and tools).</summary>
    public static RunDirectory Existing(string path) => new(path);

    /// <summary>
    /// A run without checkpoints (fine-tuning, affinity training) written whole: <paramref name="write"/> fills a hidden
    /// sibling of <paramref name="path"/>, renamed into place when it returns, so a failed or killed run leaves nothing.
    /// </summary>
    public static void WriteWhole(string path, string setting, Action<RunDirectory> write)
    {
        RequireNew(path, setting, "remove it or choose another directory");
        Commit(path, temp => write(new RunDirectory(temp)));
    }

    /// <summary>Refuses a path that holds files, before a run spends time on work it could not write.</summary>
    public static void RequireNew(string path, string setting, string advice = "remove it or choose another directory")
    {
        if (string.IsNullOrWhiteSpace(path)) throw new BioForgeException($"{setting} is required");
        if (Directory.Exists(path) && Directory.EnumerateFileSystemEntries(path).Any())
            throw new BioForgeException($"{setting} {path} is not empty; {advice}");
        if (File.Exists(path)) throw new BioForgeException($"{setting} {path} is a file, not a directory");
        // Checked now: the run writes its folder whole at the end, after the work. Probed in the nearest folder above a
        // missing one, never inside an existing run folder: other ranks of the run test that for emptiness meanwhile.
        if (AtomicFile.WhyNotWritable(System.IO.Path.GetFullPath(path).TrimEnd('/')) is { } reason) throw new BioForgeException($"{setting} {path}: {reason}");
    }

    // ---- configuration snapshot ------------------------------------------------------------------------------------

    public void WriteConfig(string jsonText) => AtomicFile.WriteText(System.IO.Path.Combine(Path, ConfigFile), jsonText.TrimEnd('\n') + "\n");

    /// <summary>The stored configuration, or null for a run written before one was kept.</summary>
    public JsonObject? ReadConfig()
    {
        string file = System.IO.Path.Combine(Path, ConfigFile);
        if (!File.Exists(file)) return null;
        return JsonFile.ReadObject(file);
    }

    /// <summary>
    /// Refuses to resume when a setting that defines the run differs between the stored configuration and
    /// <paramref name="current"/>; every difference is listed (<c>model.config.hidden_size: 64 → 128</c>).
    /// <paramref name="paths"/> are dotted JSON paths; a path names its whole subtree (arrays of equal length element by
    /// element: <c>stages[0].max_steps</c>); <paramref name="mayChange"/> lets some of those leaves differ.
    /// A setting the stored configuration does not name was added by a later version: it counts as its value in
    /// <paramref name="defaults"/> (a new setting's default keeps the old behaviour), so older runs still resume.
    /// </summary>
    public void RefuseChanges(JsonObject current, IEnumerable<string> paths, JsonObject? defaults = null, Func<string, bool>? mayChange = null)
    {
        var stored = ReadConfig();
        if (stored is null) return;
        var differences = new List<string>();
        foreach (string path in paths) ConfigDifferences.Compare(path, ConfigDifferences.Find(stored, path), ConfigDifferences.Find(current, path), defaults, differences);
        if (mayChange is not null) differences.RemoveAll(d => mayChange(d[..d.IndexOf(": ", StringComparison.Ordinal)]));
        if (differences.Count > 0)
            throw new BioForgeException($"{System.IO.Path.Combine(Path, ConfigFile)}: the run was started with other settings, which a resumed run cannot change: "
                + string.Join("; ", differences) + " (start a new run in another directory to change them)");
    }

    /// <summary>
    /// The settings of <paramref name="current"/> that differ from the stored configuration (<c>optimizer.lr: 0.001 →
    /// 0.0005</c>), leaving out <paramref name="ignored"/> paths and their subtrees: what a resumed run changed.
    /// </summary>
    public IReadOnlyList<string> Changes(JsonObject current, params string[] ignored)
    {
        var stored = ReadConfig();
        if (stored is null) return [];
        var differences = new List<string>();
        foreach (string key in stored.Select(kv => kv.Key).Union(current.Select(kv => kv.Key)).Order(StringComparer.Ordinal))
            ConfigDifferences.Compare(key, stored[key], current[key], null, differences);
        differences.RemoveAll(d => ignored.Any(path => d.StartsWith(path + ":", StringComparison.Ordinal) || d.StartsWith(path + ".", StringComparison.Ordinal)));
        return differences;
    }

    // ---- metrics ---------------------------------------------------------------------------------------------------

    /// <summary>
    /// Opens metrics.jsonl for appending. Lines whose step is past <paramref name="resumedStep"/> belong to a future the
    /// resumed run will write again, and a line cut short by a kill is not JSON: both are dropped (atomically).
    /// </summary>
    public MetricsLog OpenMetrics(long resumedStep) => new(System.IO.Path.Combine(Path, MetricsFile), resumedStep);

    // ---- checkpoints -----------------------------------------------------------------------------------------------

    /// <summary>Complete checkpoints (those holding <paramref name="stateFile"/>), oldest first.</summary>
    public IReadOnlyList<(long Step, string Path)> Checkpoints(string stateFile)
    {
        if (!Directory.Exists(CheckpointsDirectory)) return [];
        return Directory.EnumerateDirectories(CheckpointsDirectory, StepPrefix + "*")
            .Select(path => (Name: System.IO.Path.GetFileName(path), Path: path))
            .Where(d => long.TryParse(d.Name.AsSpan(StepPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out _)
                        && File.Exists(System.IO.Path.Combine(d.Path, stateFile)))
            .Select(d => (long.Parse(d.Name.AsSpan(StepPrefix.Length), CultureInfo.InvariantCulture), d.Path))
            .OrderBy(d => d.Item1)
            .ToList();
    }

    public string? LatestCheckpoint(string stateFile) => Checkpoints(stateFile) is { Count: > 0 } all ? all[^1].Path : null;

    /// <summary>
    /// Writes the checkpoint of <paramref name="step"/>: <paramref name="write"/> fills a hidden directory and must write
    /// <paramref name="stateFile"/> last; the directory is then renamed into place, and all but the newest
    /// <paramref name="keep"/> (at least one) are retired.
    /// </summary>
    public string SaveCheckpoint(long step, int keep, string stateFile, Action<string> write)
    {
        string final = System.IO.Path.Combine(CheckpointsDirectory, $"{StepPrefix}{step:D9}");
        Commit(final, temp =>
        {
            write(temp);
            if (!File.Exists(System.IO.Path.Combine(temp, stateFile)))
                throw new InvalidOperationException($"a checkpoint must contain {stateFile}, written last");
        });
        foreach (var (_, path) in Checkpoints(stateFile).SkipLast(Math.Max(1, keep))) Retire(path);
        return final;
    }

    /// <summary>
    /// Retires the checkpoints after <paramref name="step"/>: a run resumed from an earlier checkpoint abandons them (as its
    /// metrics log drops their lines), so a later <c>--resume</c> cannot pick them up and retention cannot keep them
    /// over the new ones. Returns their steps.
    /// </summary>
    public IReadOnlyList<long> AbandonCheckpointsAfter(long step, string stateFile)
    {
        var later = Checkpoints(stateFile).Where(c => c.Step > step).ToList();
        foreach (var (_, path) in later) Retire(path);
        return [.. later.Select(c => c.Step)];
    }

    /// <summary>Removes a final artefact directory of the run (one an abandoned continuation wrote); false when there is none.</summary>
    public bool Withdraw(string name)
    {
        string artefact = System.IO.Path.Combine(Path, name);
        if (!Directory.Exists(artefact)) return false;
        Retire(artefact);
        return true;
    }

    /// <summary>Writes a final artefact directory (<c>model/</c>, <c>agent/</c>) of the run, swapping out an older one.</summary>
    public string Publish(string name, Action<string> write)
    {
        string final = System.IO.Path.Combine(Path, name);
        Commit(final, write);
        return final;
    }

    /// <summary>
    /// Makes <paramref name="final"/> appear complete or not at all: <paramref name="write"/> fills a hidden sibling,
    /// an existing <paramref name="final"/> is renamed to trash (never deleted before the new one is in place), the
    /// sibling is renamed to <paramref name="final"/>, and the trash is deleted. A failure leaves no sibling behind.
    /// </summary>
    public static void Commit(string final, Action<string> write)
    {
        final = System.IO.Path.GetFullPath(final).TrimEnd(System.IO.Path.DirectorySeparatorChar);
        string parent = System.IO.Path.GetDirectoryName(final)!;
        string name = System.IO.Path.GetFileName(final);
        string temp = System.IO.Path.Combine(parent, $".{name}.{Environment.ProcessId}{TempSuffix}");
        var unfinished = new object();
        // Registered before anything exists, with the folders made for it: an abort removes them again (a run stopped
        // during its first checkpoint left an empty checkpoints/).
        string? created = AtomicFile.FirstMissing(parent);
        UnfinishedWrites.Add(unfinished, temp, created);
        try
        {
            Directory.CreateDirectory(parent);
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            Directory.CreateDirectory(temp);
            write(temp);
            string? old = null;
            if (Directory.Exists(final))
            {
                old = System.IO.Path.Combine(parent, $"{ReplacedPrefix}{name}.{Environment.ProcessId}");
                if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
            }
            // Both renames or neither against a signal abandoning the process's writes (it deletes temp).
            UnfinishedWrites.Finish(unfinished, () =>
            {
                if (old is not null) Directory.Move(final, old);
                try
                {
                    Directory.Move(temp, final);
                }
                catch when (old is not null && !Directory.Exists(final))
                {
                    Directory.Move(old, final); // the new one could not take its place: the old one takes it back
                    throw;
                }
            });
            if (old is not null) Directory.Delete(old, recursive: true);
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            if (created is not null) UnfinishedWrites.RemoveEmptyFolders(parent, created);
            throw;
        }
        finally
        {
            UnfinishedWrites.Remove(unfinished);
        }
    }

    /// <summary>Deletes a directory so that a kill half-way never leaves it visible and partial: rename, then delete.</summary>
    private static void Retire(string directory)
    {
        string parent = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(directory))!;
        string trash = System.IO.Path.Combine(parent, $"{TrashPrefix}{System.IO.Path.GetFileName(directory)}.{Environment.ProcessId}");
        if (Directory.Exists(trash)) Directory.Delete(trash, recursive: true);
        Directory.Move(directory, trash);
        Directory.Delete(trash, recursive: true);
    }

    /// <summary>
    /// Removes hidden temporary and trash entries left by a killed process in the run and checkpoint folders. A replaced
    /// version whose successor never took its place (killed between the two renames of <see cref="Commit"/>) is put back:
    /// it is the last complete one.
    /// </summary>
    private void RemoveDebris()
    {
        foreach (string folder in new[] { Path, CheckpointsDirectory }.Where(Directory.Exists))
            foreach (string entry in Directory.EnumerateFileSystemEntries(folder, ".*"))
            {
                string name = System.IO.Path.GetFileName(entry);
                if (name.StartsWith(ReplacedPrefix, StringComparison.Ordinal) && name.LastIndexOf('.') is var pid and > 0
                    && System.IO.Path.Combine(folder, name[ReplacedPrefix.Length..pid]) is var original && !System.IO.Path.Exists(original) && Directory.Exists(entry))
                {
                    Directory.Move(entry, original);
                    continue;
                }
                if (!name.EndsWith(TempSuffix, StringComparison.Ordinal) && !name.StartsWith(TrashPrefix, StringComparison.Ordinal)
                    && !name.StartsWith(ReplacedPrefix, StringComparison.Ordinal)) continue;
                if (Directory.Exists(entry)) Directory.Delete(entry, recursive: true);
                else File.Delete(entry);
            }
    }
}
