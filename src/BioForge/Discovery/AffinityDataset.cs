using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using BioForge.Chem;
using BioForge.IO;

namespace BioForge.Discovery;

/// <summary>One measured drug–target pair: indices into the dataset's drugs and targets, and the affinity.</summary>
public sealed record AffinityPair(int Drug, int Target, double Affinity);

public sealed record NamedEntry(string Id, string Text);

/// <summary>
/// A drug–target affinity benchmark in DeepDTA's layout (Öztürk et al. 2018): <c>ligands_can.txt</c> (JSON, drug id →
/// SMILES, in matrix-row order), <c>proteins.txt</c> (JSON, target id → sequence, in column order), the affinity
/// matrix, and <c>folds/test_fold_setting1.txt</c> / <c>folds/train_fold_setting1.txt</c> (indices into the measured
/// cells in row-major order). Davis' Kd (nM) become pKd = −log10(Kd / 10⁹); KIBA scores are used as they are.
/// Files may be gzipped (<c>.gz</c>).
/// </summary>
public sealed class AffinityDataset
{
    private const string DavisMatrix = "drug-target_interaction_affinities_Kd__Davis_et_al.2011v1.txt";
    private const string KibaMatrix = "kiba_binding_affinity_v2.txt";

    /// <summary>
    /// Longest JSON file read, in characters; KIBA's training folds, the largest file of the published sets, hold
    /// 695,885. A larger one is a wrong file or a decompression bomb, refused at the limit with bounded memory.
    /// </summary>
    public const int MaxJsonLength = 16_000_000;

    /// <summary>Longest affinity-matrix row, in characters (KIBA's longest: 2,321).</summary>
    public const int MaxRowLength = 1_000_000;

    public required string Name { get; init; }
    /// <summary>What the affinity numbers are: <c>pKd</c> or <c>KIBA score</c>.</summary>
    public required string Measure { get; init; }
    public required IReadOnlyList<NamedEntry> Drugs { get; init; }
    /// <summary>The file the drugs were read from, for messages about one of them.</summary>
    public string DrugsFile { get; init; } = "ligands_can.txt";
    public required IReadOnlyList<NamedEntry> Targets { get; init; }
    /// <summary>The measured cells, in row-major order: what the fold indices index.</summary>
    public required IReadOnlyList<AffinityPair> Pairs { get; init; }
    public required int[] TestFold { get; init; }
    public required int[][] TrainFolds { get; init; }

    /// <summary>The benchmark's own folds (DeepDTA's setting 1: random pairs, so every target and drug is in training too).</summary>
    public const string RandomSplit = "setting1";

    /// <summary>
    /// The test fold and training folds of a split: <see cref="RandomSplit"/>, or <c>cold_target</c> / <c>cold_drug</c>,
    /// which hold out whole targets (drugs) so the test measures the model on ones it never saw. Targets are held out
    /// by family (<see cref="TargetFamilies"/>) at <paramref name="targetIdentity"/>: Davis gives a kinase's mutant
    /// constructs the wild type's sequence, and isoforms differ by a few residues, so a twin in training would leak the
    /// answers; without an identity (models trained before it was recorded) only identical sequences are one group.
    /// The groups are shuffled with <paramref name="seed"/> and dealt into as many folds as setting 1 has (one test fold
    /// and its training folds).
    /// </summary>
    public (int[] Test, int[][] Train) Folds(string split, ulong seed, double? targetIdentity = null)
    {
        if (split == RandomSplit) return (TestFold, TrainFolds);
        // A family is named by its first member's sequence, so a family of one sequence keeps the key it had.
        var targetKeys = Targets.Select(t => t.Text.ToUpperInvariant()).ToArray();
        if (split == "cold_target" && targetIdentity is { } identity)
        {
            var family = TargetFamilies(identity);
            var first = new Dictionary<int, string>();
            for (int t = 0; t < targetKeys.Length; t++) targetKeys[t] = first.TryAdd(family[t], targetKeys[t]) ? targetKeys[t] : first[family[t]];
        }
        var drugKeys = split == "cold_drug" ? DrugGroups() : null;
        Func<AffinityPair, string> group = split switch
        {
            "cold_target" => p => targetKeys[p.Target],
            "cold_drug" => p => drugKeys![p.Drug],
            _ => throw new BioForgeException($"data.split must be {RandomSplit}, cold_target or cold_drug (got '{split}')"),
        };
        int folds = TrainFolds.Length + 1;
        var keys = Pairs.Select(group).Distinct().Order(StringComparer.Ordinal).ToArray();
        new Random(unchecked((int)seed ^ 0x5eed)).Shuffle(keys);
        var fold = keys.Select((key, i) => (key, i % folds)).ToDictionary(k => k.key, k => k.Item2);
        var dealt = Enumerable.Range(0, folds).Select(_ => new List<int>()).ToArray();
        for (int i = 0; i < Pairs.Count; i++) dealt[fold[group(Pairs[i])]].Add(i);
        return ([.. dealt[0]], [.. dealt.Skip(1).Select(f => f.ToArray())]);
    }

    /// <summary>
    /// Each drug's group for a cold-drug split: drugs with one parent (a salt and its free base: KIBA lists three such
    /// pairs) are one drug, named by the first one's SMILES, so a group of one keeps the key it had (Davis's 68 drugs
    /// have 68 parents). Parents as screening reads molecules (salt parent, neutralized); without RDKit, the SMILES as written.
    /// </summary>
    private string[] DrugGroups()
    {
        var first = new Dictionary<string, string>(StringComparer.Ordinal);
        return [.. Drugs.Select(d =>
        {
            string parent = d.Text;
            if (Molecule.Unavailable() is null && Molecule.TryFromSmiles(d.Text, out var molecule, out _))
                using (molecule)
                {
                    try
                    {
                        using var standardized = molecule!.Standardized();
                        parent = (standardized ?? molecule).ToSmiles();
                    }
                    catch (BioForgeException)
                    {
                        // A parent RDKit cannot neutralize stays as written: the key only groups copies.
                    }
                }
            return first.TryAdd(parent, d.Text) ? d.Text : first[parent];
        })];
    }

    /// <summary>
    /// Each target's family (<see cref="Proteins.SequenceFamilies"/>): targets at least <paramref name="identity"/>
    /// identical over 90 % of the shorter sequence, linked, numbered in target order. Kinase paralogs sit at 70–90 %.
    /// </summary>
    public int[] TargetFamilies(double identity)
    {
        lock (families)
        {
            if (!families.TryGetValue(identity, out var found))
                families[identity] = found = Proteins.SequenceFamilies.Group([.. Targets.Select(t => t.Text)], identity);
            return found;
        }
    }

    private readonly Dictionary<double, int[]> families = [];

    /// <summary>The targets alone (<c>proteins.txt</c>, optionally .gz), in column order: names and sequences without the affinity matrix.</summary>
    public static IReadOnlyList<NamedEntry> ReadTargets(string directory) => ReadEntries(Find(directory, "proteins.txt"));

    /// <summary>The drugs alone (<c>ligands_can.txt</c>, optionally .gz), in row order.</summary>
    public static IReadOnlyList<NamedEntry> ReadDrugs(string directory) => ReadEntries(Find(directory, "ligands_can.txt"));

    /// <summary>
    /// The targets and drugs of <paramref name="pairs"/>, in the benchmark's order, written in its layout (gzipped
    /// <c>proteins.txt</c> and <c>ligands_can.txt</c>) to <paramref name="directory"/>: what a model trained on those
    /// pairs has seen, for telling later inputs like them from inputs unlike anything it saw.
    /// </summary>
    public void WriteEntries(string directory, IEnumerable<AffinityPair> pairs)
    {
        var seen = pairs.ToList();
        Directory.CreateDirectory(directory);
        Write(Path.Combine(directory, "proteins.txt.gz"), Targets, seen.Select(p => p.Target));
        Write(Path.Combine(directory, "ligands_can.txt.gz"), Drugs, seen.Select(p => p.Drug));

        static void Write(string path, IReadOnlyList<NamedEntry> entries, IEnumerable<int> used)
        {
            var keep = used.ToHashSet();
            var json = new JsonObject();
            for (int i = 0; i < entries.Count; i++)
                if (keep.Contains(i)) json[entries[i].Id] = entries[i].Text;
            AtomicFile.Write(path, stream =>
            {
                using var gzip = new System.IO.Compression.GZipStream(stream, System.IO.Compression.CompressionLevel.SmallestSize, leaveOpen: true);
                gzip.Write(System.Text.Encoding.UTF8.GetBytes(json.ToJsonString()));
            });
        }
    }

    public static AffinityDataset Load(string directory)
    {
        if (!Directory.Exists(directory)) throw new BioForgeException($"affinity data {directory}: no such directory (expected DeepDTA's layout, e.g. data/davis)");
        string drugsPath = Find(directory, "ligands_can.txt");
        var drugs = ReadEntries(drugsPath);
        string targetsPath = Find(directory, "proteins.txt");
        var targets = ReadEntries(targetsPath);
        // Here, where the file and the target can be named: the model's tokenizer would name a position only.
        foreach (var target in targets)
            if (target.Text.TrimEnd('*').ToUpperInvariant().AsSpan().IndexOfAnyExcept(ProteinTarget.Residues) is >= 0 and var bad)
                throw new BioForgeException($"{targetsPath}: target '{target.Id}': '{Spelling.CharacterAt(target.Text, bad)}' at position {bad + 1} is not an amino acid");
        // As screening reads a target: the features count upper-case residues only, so a lower-case file trained on none.
        targets = [.. targets.Select(t => t with { Text = t.Text.TrimEnd('*').ToUpperInvariant() })];
        string? davis = TryFind(directory, DavisMatrix);
        string matrix = davis ?? TryFind(directory, KibaMatrix)
            ?? throw new BioForgeException($"{directory}: no affinity matrix ({DavisMatrix} or {KibaMatrix}, optionally .gz)");
        var pairs = ReadMatrix(matrix, drugs.Count, targets.Count, kd: davis is not null);
        string testPath = Find(directory, Path.Combine("folds", "test_fold_setting1.txt"));
        string trainPath = Find(directory, Path.Combine("folds", "train_fold_setting1.txt"));
        var test = Indices(ReadJson(testPath), pairs.Count, testPath, "the test fold");
        if (test.Length == 0) throw new BioForgeException($"{testPath}: the test fold is empty");
        var train = ReadJson(trainPath) is JsonArray folds
            ? folds.Select((fold, k) => Indices(fold, pairs.Count, trainPath, $"training fold {k}")).ToArray()
            : throw new BioForgeException($"{trainPath}: expected a JSON list of training folds, each a list of indices");
        if (train.Length < 2) throw new BioForgeException($"{trainPath}: expected several training folds (one is used for validation), found {train.Length}");
        // A pair in two folds (or twice in one) would be tested or validated on what the model trained on: metrics that
        // leak, printed without a word.
        var owner = new int[pairs.Count];
        Array.Fill(owner, -1);
        string FoldName(int f) => f == 0 ? $"{testPath}: the test fold" : $"{trainPath}: training fold {f - 1}";
        for (int f = 0; f <= train.Length; f++)
            foreach (int i in f == 0 ? test : train[f - 1])
            {
                if (owner[i] >= 0)
                    throw new BioForgeException($"{FoldName(f)} holds pair {i}, which {(owner[i] == f ? "it holds already" : $"{FoldName(owner[i])} holds too")}: folds must not share pairs");
                owner[i] = f;
            }
        return new AffinityDataset
        {
            Name = Path.GetFileName(Path.TrimEndingDirectorySeparator(directory)),
            Measure = davis is not null ? "pKd" : "KIBA score",
            Drugs = drugs,
            DrugsFile = drugsPath,
            Targets = targets,
            Pairs = pairs,
            TestFold = test,
            TrainFolds = train,
        };
    }

    private static string? TryFind(string directory, string name)
    {
        string path = Path.Combine(directory, name);
        return File.Exists(path) ? path : File.Exists(path + ".gz") ? path + ".gz" : null;
    }

    private static string Find(string directory, string name) =>
        TryFind(directory, name) ?? throw new BioForgeException($"{directory}: no {name} (or {name}.gz)");

    private static JsonNode ReadJson(string path)
    {
        // DeepDTA writes each JSON file on one line, so the limit is on the whole text, checked while reading.
        var text = new System.Text.StringBuilder();
        using (var reader = LineReader.Open(path, MaxJsonLength))
        {
            for (string? line = reader.ReadLine(MaxJsonLength, TooLong); line is not null; line = reader.ReadLine(Math.Max(0, MaxJsonLength - text.Length), TooLong))
                text.Append(line).Append('\n');
        }
        try
        {
            return JsonNode.Parse(text.ToString()) ?? throw new BioForgeException($"{path}: empty JSON");
        }
        catch (JsonException e)
        {
            throw new BioForgeException($"{path}: not valid JSON (line {e.LineNumber + 1}): {e.Message}");
        }

        string TooLong(int line) => $"{path}:{line}: the JSON is longer than {MaxJsonLength:N0} characters (is this the right file?)";
    }

    /// <summary>A JSON object read in key order (the order of the matrix rows or columns).</summary>
    private static List<NamedEntry> ReadEntries(string path)
    {
        if (ReadJson(path) is not JsonObject entries) throw new BioForgeException($"{path}: expected a JSON object of id → string");
        var list = new List<NamedEntry>();
        try
        {
            _ = entries.Count; // the object's keys are read here: an id given twice throws
        }
        catch (ArgumentException)
        {
            using var document = JsonDocument.Parse(entries.ToJsonString()); // still the text as read: names twice included
            string twice = document.RootElement.EnumerateObject().GroupBy(p => p.Name).First(g => g.Count() > 1).Key;
            throw new BioForgeException($"{path}: the id '{twice}' is given twice");
        }
        foreach (var (id, value) in entries)
        {
            string text = value?.GetValueKind() == JsonValueKind.String ? value.GetValue<string>().Trim() : throw new BioForgeException($"{path}: entry '{id}' is not a string");
            if (text.Length == 0) throw new BioForgeException($"{path}: entry '{id}' is empty");
            list.Add(new NamedEntry(id, text));
        }
        if (list.Count == 0) throw new BioForgeException($"{path}: no entries");
        return list;
    }

    private static List<AffinityPair> ReadMatrix(string path, int rows, int columns, bool kd)
    {
        var pairs = new List<AffinityPair>();
        using var reader = LineReader.Open(path, MaxRowLength);
        int row = 0;
        for (string? line = reader.ReadLine(); line is not null; line = reader.ReadLine())
        {
            if (line.Trim().Length == 0) continue;
            if (row >= rows) throw new BioForgeException($"{path}:{row + 1}: more rows than the {rows} drugs of ligands_can.txt");
            var fields = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length != columns) throw new BioForgeException($"{path}:{row + 1}: {fields.Length} values, expected one per target ({columns})");
            for (int column = 0; column < columns; column++)
            {
                string field = fields[column];
                if (field.Equals("nan", StringComparison.OrdinalIgnoreCase)) continue;
                if (!double.TryParse(field, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value))
                    throw new BioForgeException($"{path}:{row + 1}: value {column + 1} '{field}' is not a number");
                if (kd && value <= 0) throw new BioForgeException($"{path}:{row + 1}: Kd {value} nM is not positive");
                pairs.Add(new AffinityPair(row, column, kd ? -Math.Log10(value / 1e9) : value));
            }
            row++;
        }
        if (row != rows) throw new BioForgeException($"{path}: {row} rows, expected one per drug ({rows})");
        return pairs;
    }

    /// <summary>A fold: a JSON list of indices into the measured pairs, each checked, named by <paramref name="what"/> in messages.</summary>
    private static int[] Indices(JsonNode? fold, int count, string path, string what)
    {
        if (fold is not JsonArray list) throw new BioForgeException($"{path}: {what} is not a list of indices");
        var indices = new int[list.Count];
        for (int k = 0; k < list.Count; k++)
        {
            if (list[k] is not JsonValue value || value.GetValueKind() != System.Text.Json.JsonValueKind.Number || !value.TryGetValue(out int i))
                throw new BioForgeException($"{path}: {what}, entry {k + 1}: {list[k]?.ToJsonString() ?? "null"} is not an integer index");
            if (i < 0 || i >= count) throw new BioForgeException($"{path}: {what}: index {i} is outside the {count} measured pairs");
            indices[k] = i;
        }
        return indices;
    }
}
