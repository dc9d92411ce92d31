using System.Diagnostics;
using BioForge.Chem;

namespace BioForge.Discovery;

public sealed record ScreenOptions
{
    public int Top { get; init; } = 100;
    /// <summary>Molecules parsed and scored together (memory stays bounded by this, whatever the library's size).</summary>
    public int BatchSize { get; init; } = 512;
    /// <summary>Property limits a molecule must meet to be scored at all (counted in <see cref="ScreenSummary.OutsideLimits"/>).</summary>
    public IReadOnlyList<PropertyLimit> Limits { get; init; } = [];
    /// <summary>Alert rules not reported (<see cref="StructuralFilters"/>).</summary>
    public IReadOnlyCollection<string> AllowedAlerts { get; init; } = [];
    /// <summary>The user's known binders of the target (<see cref="VirtualScreen.ReadActives"/>): each hit's nearest is among them and the model's.</summary>
    public IReadOnlyList<KnownActive> Actives { get; init; } = [];

    /// <summary>The target's name as given (a Davis construct such as <c>JAK1(JH1domain-catalytic)</c> keeps its own known binders).</summary>
    public string? TargetName { get; init; }
}

/// <summary>A binder of the target the user knows: its name (or where it was read) and its standardized canonical SMILES.</summary>
/// <param name="Affinity">Its measured affinity for the target, where the model's dataset gives it (a user's active has none).</param>
public sealed record KnownActive(string Name, string Smiles, double? Affinity = null);

/// <summary>
/// One hit: predicted affinity, drug-likeness and properties, structural alerts, the nearest known binder of the
/// target, and how like the model's training ligands it is (<see cref="ApplicabilityDomain"/>; null when the model does not record them).
/// </summary>
public sealed record ScreenHit(int Rank, string Id, string Smiles, int Line, double Affinity, double Qed, double Sa, double LogP, double MolWt, double Tpsa,
    int Donors, int Acceptors, string Alerts, string? NearestBinder, string? NearestBinderName, double? NearestSimilarity, double? TrainingSimilarity = null)
{
    /// <summary>The score that ranked the hit where a scoring function did (the quickstart's); null where its affinity ranked it.</summary>
    public double? Score { get; init; }

    /// <summary>With a score of 0: the parts of the scoring function that gave 0 (a structural alert, a limit), for the reader.</summary>
    public string? ZeroedBy { get; init; }

    /// <summary>The nearest known binder's measured affinity for the target (null for a user's active).</summary>
    public double? NearestBinderAffinity { get; init; }
}

public sealed record ScreenSummary(long Read, long Scored, long Invalid, IReadOnlyList<string> FirstErrors, IReadOnlyList<ScreenHit> Hits,
    IReadOnlyList<double> AffinitySample, int KnownBinders, TimeSpan Elapsed)
{
    /// <summary>Molecules left out before scoring because they broke a property limit.</summary>
    public long OutsideLimits { get; init; }

    /// <summary>Molecules left out before scoring because they have no carbon atom: water, an inorganic salt's parent, a metal.</summary>
    public long WithoutCarbon { get; init; }

    /// <summary>The user's actives among <see cref="KnownBinders"/>.</summary>
    public int Actives { get; init; }

    public double MoleculesPerSecond => Scored / Math.Max(1e-9, Elapsed.TotalSeconds);
}

/// <summary>
/// Scores a molecule library against one target: streams the library in batches (constant memory), parses each batch
/// on all cores, predicts affinity with the model, keeps the best <c>top</c> in a heap; the hits alone get the full
/// property profile, alerts and nearest known binder. Lines RDKit cannot read are skipped and counted. A salt or
/// mixture is scored and reported as its parent (<see cref="Molecule.LargestFragment"/>), neutralized where its charges
/// are protonation states (<see cref="Molecule.Neutralized"/>: ZINC's and the ZINC-trained generator's <c>[NH+]</c>
/// forms); one without a carbon atom (water, the parent of an inorganic salt) is no drug candidate and is counted, not
/// scored; and a molecule given several times (the same canonical SMILES after that, under other ids or spellings) is
/// one hit with its ids joined by "; ".
/// </summary>
public static class VirtualScreen
{
    internal const int SampleSize = 20_000;

    /// <param name="cancellation">Stops the profiling of the hits too (the library's enumeration stops the screening).</param>
    public static ScreenSummary Run(AffinityModel model, string targetSequence, IEnumerable<MoleculeRecord> library, ScreenOptions options, IProgress<int>? progress = null,
        CancellationToken cancellation = default)
    {
        if (options.Top < 1) throw new BioForgeException($"--top must be at least 1 (got {options.Top})");
        var clock = Stopwatch.StartNew();
        var domain = model.Domain(); // read before the predictions: a model whose record is broken says so now, not at the end
        var target = model.TargetFeatures(targetSequence);
        // Worst on top: the lowest affinity, and of equal ones the latest line, so ties keep the library's order.
        var best = new PriorityQueue<Candidate, (double Affinity, int Line)>();
        var held = new Dictionary<string, Candidate>(StringComparer.Ordinal); // the heap's molecules by canonical SMILES
        var errors = new List<string>();
        var sample = new List<double>();
        var random = new Random(17); // the report's sample only: fixed, so one library gives one report
        using var limits = options.Limits.Count > 0 ? new PropertyLimits(options.Limits) : null;
        using var alerts = new StructuralFilters(FilterCatalogs.Pains | FilterCatalogs.Brenk, options.AllowedAlerts); // an unknown rule is refused now, not after the screen
        long read = 0, scored = 0, invalid = 0, outside = 0, withoutCarbon = 0;
        foreach (var chunk in library.Chunk(options.BatchSize))
        {
            read += chunk.Length;
            var parsed = new Molecule?[chunk.Length];
            var messages = new string?[chunk.Length];
            var broken = new bool[chunk.Length];
            var inorganic = new bool[chunk.Length];
            try
            {
                // Inside the try: an unexpected failure while parsing frees the molecules already parsed (native memory).
                Parallel.For(0, chunk.Length, i =>
                {
                    if (!TryParseStandardized(chunk[i], out var m, out string? error))
                    {
                        messages[i] = error;
                        return;
                    }
                    // An affinity model predicts a number for water too; no chemist wants it ranked among the hits.
                    if (!m!.HasCarbon())
                    {
                        inorganic[i] = true;
                        m.Dispose();
                        return;
                    }
                    try
                    {
                        broken[i] = limits?.FirstBroken(m) is not null;
                    }
                    catch (BioForgeException e)
                    {
                        messages[i] = $"cannot compute its properties: {e.Message}";
                    }
                    if (broken[i] || messages[i] is not null) m.Dispose();
                    else parsed[i] = m;
                });
                var valid = Enumerable.Range(0, chunk.Length).Where(i => parsed[i] is not null).ToArray();
                outside += broken.Count(b => b);
                withoutCarbon += inorganic.Count(b => b);
                for (int i = 0; i < chunk.Length; i++)
                    if (parsed[i] is null && !broken[i] && !inorganic[i])
                    {
                        invalid++;
                        if (errors.Count < 5) errors.Add($"{chunk[i].Where}: {messages[i]}");
                    }
                var affinities = model.Predict([.. valid.Select(i => parsed[i]!)], target);
                // NaN has no place in a ranking (it would sort below every number, silently); it means broken weights.
                if (Array.FindIndex(affinities, double.IsNaN) is var nan and >= 0)
                    throw new BioForgeException($"the model predicted no value (NaN) for {chunk[valid[nan]].Where}, which a model with finite weights does not (retrain it, or check its files)");
                for (int k = 0; k < valid.Length; k++)
                {
                    scored++;
                    // A uniform sample of all predictions (reservoir sampling) for the report's distribution.
                    if (sample.Count < SampleSize) sample.Add(affinities[k]);
                    else if (random.NextInt64(scored) is var slot && slot < SampleSize) sample[(int)slot] = affinities[k];
                    var record = chunk[valid[k]];
                    // Only molecules that could be in the heap are written out: a copy of one there joins it (a copy
                    // scores the same, to rounding in another batch), and a copy of one that left it cannot come back.
                    if (best.Count == options.Top && affinities[k] < best.Peek().Affinity - CopyTolerance) continue;
                    string canonical = parsed[valid[k]]!.ToSmiles();
                    if (held.TryGetValue(canonical, out var same))
                    {
                        same.Ids.Add(record.Id);
                        continue;
                    }
                    if (best.Count == options.Top && affinities[k] <= best.Peek().Affinity) continue;
                    var candidate = new Candidate(record, affinities[k], canonical, [record.Id]);
                    held[canonical] = candidate;
                    if (best.Count < options.Top) best.Enqueue(candidate, (affinities[k], -record.Line));
                    else held.Remove(best.EnqueueDequeue(candidate, (affinities[k], -record.Line)).Canonical);
                }
            }
            finally
            {
                foreach (var m in parsed) m?.Dispose();
            }
            progress?.Report(chunk.Length);
        }
        // Davis names its drugs by PubChem compound id; a user's active named by a number is not one.
        bool cids = model.Manifest.Dataset.Equals("davis", StringComparison.OrdinalIgnoreCase);
        var binders = model.KnownBinders(targetSequence, options.TargetName);
        // Binders of several constructs (a kinase's two domains, given one sequence) say which each was measured on.
        bool several = binders.Select(b => AffinityModel.Unphosphorylated(b.Construct)).Distinct().Count() > 1;
        var known = binders.Select(b => new KnownActive((cids && b.Name.Length > 0 && b.Name.All(char.IsAsciiDigit) ? $"PubChem CID {b.Name}" : b.Name)
                + (several ? $" (on {b.Construct})" : ""), b.Smiles, b.Affinity))
            .Concat(options.Actives).ToList();
        var (hits, unprofiled) = Profile([.. best.UnorderedItems.Select(x => x.Element).OrderByDescending(x => x.Affinity).ThenBy(x => x.Record.Line)], known,
            alerts, domain, cancellation);
        errors.AddRange(unprofiled.Take(Math.Max(0, 5 - errors.Count)));
        // A hit whose profile failed was predicted but is reported as unreadable: counted once, so read = scored + invalid + outside + without carbon.
        return new ScreenSummary(read, scored - unprofiled.Count, invalid + unprofiled.Count, errors, hits, sample, known.Count, clock.Elapsed)
        {
            OutsideLimits = outside,
            WithoutCarbon = withoutCarbon,
            Actives = options.Actives.Count,
        };
    }

    /// <summary>
    /// The user's known binders from a molecule file (any format the library may have), standardized as the library is.
    /// Every one must read: a few precious molecules, so a bad line is an error with its place, not a skipped count.
    /// </summary>
    public static IReadOnlyList<KnownActive> ReadActives(string path, string? smilesColumn = null)
    {
        var actives = new List<KnownActive>();
        foreach (var record in MoleculeSource.Read(path, smilesColumn))
        {
            if (!TryParseStandardized(record, out var m, out string? error)) throw new BioForgeException($"--actives {path}: {record.Where}: {error}");
            using (m) actives.Add(new KnownActive(record.Id, m!.ToSmiles()));
        }
        if (actives.Count == 0) throw new BioForgeException($"--actives {path}: the file holds no molecules");
        return [.. actives.DistinctBy(a => a.Smiles)];
    }

    /// <summary>
    /// The hits' properties, alerts and nearest known binder; a molecule one of them fails on (an RDKit error) leaves the
    /// list with its reason, counted with the invalid ones, rather than ending the screen after every prediction.
    /// </summary>
    private sealed record Candidate(MoleculeRecord Record, double Affinity, string Canonical, List<string> Ids);

    /// <summary>How far apart two predictions of one molecule can be: the same features in batches of other shapes sum in another order.</summary>
    private const double CopyTolerance = 1e-4;

    /// <summary>The record's molecule as a chemist reads it: the parent of a salt or mixture, neutralized where its charges are protonation states.</summary>
    private static bool TryParseStandardized(MoleculeRecord record, out Molecule? molecule, out string? error)
    {
        if (!record.TryParse(out molecule, out error)) return false;
        var current = molecule!;
        try
        {
            if (current.Standardized(mayBeMixture: record.IsMolBlock || record.Text.Contains('.')) is { } standardized)
            {
                current.Dispose();
                current = standardized;
            }
            molecule = current;
            return true;
        }
        catch (BioForgeException e)
        {
            // Counted with the unreadable lines, as a molecule RDKit cannot read is: one such line does not end the screen.
            current.Dispose();
            molecule = null;
            error = $"cannot standardize it (salt parent, neutral form): {e.Message}";
            return false;
        }
    }


    private static (List<ScreenHit> Hits, List<string> Failures) Profile(IReadOnlyList<Candidate> ranked,
        IReadOnlyList<KnownActive> known, StructuralFilters alerts, ApplicabilityDomain? domain, CancellationToken cancellation)
    {
        cancellation.ThrowIfCancellationRequested();
        using var qed = new Qed();
        var sa = new SaScore();
        // Standardized as the hits are: Davis lists dovitinib as its lactate, which its own parent matched at 0.84.
        var binders = known.Select(b =>
        {
            using var m = Molecule.FromSmiles(b.Smiles);
            using var parent = m.Standardized(mayBeMixture: b.Smiles.Contains('.'));
            var standard = parent ?? m;
            return (b.Name, Smiles: standard.ToSmiles(), Fingerprint: Fingerprints.Morgan(standard), b.Affinity);
        }).ToList();
        var hits = new ScreenHit?[ranked.Count];
        var failures = new string?[ranked.Count];
        // Thousands of hits (quickstart profiles all it screens) take seconds: a cancelled job stops here too.
        Parallel.For(0, ranked.Count, new ParallelOptions { CancellationToken = cancellation }, i =>
        {
            var (record, affinity, _, ids) = ranked[i];
            TryParseStandardized(record, out var parsed, out _);
            using var m = parsed!;
            try
            {
                var d = m.Descriptors();
                var fingerprint = Fingerprints.Morgan(m);
                var nearest = binders.Count == 0 ? default : binders.MaxBy(b => Fingerprints.Tanimoto(fingerprint, b.Fingerprint));
                hits[i] = new ScreenHit(i + 1, string.Join("; ", ids), m.ToSmiles(), record.Line, affinity, qed.Score(m), sa.Score(m), d.LogP, d.MolWt, d.Tpsa, d.HBondDonors, d.HBondAcceptors,
                    string.Join("; ", alerts.Matches(m)), binders.Count == 0 ? null : nearest.Smiles, binders.Count == 0 ? null : nearest.Name,
                    binders.Count == 0 ? null : Fingerprints.Tanimoto(fingerprint, nearest.Fingerprint), domain?.NearestLigandSimilarity(fingerprint))
                { NearestBinderAffinity = binders.Count == 0 ? null : nearest.Affinity };
            }
            catch (BioForgeException e)
            {
                failures[i] = $"{record.Where}: {e.Message}";
            }
        });
        var kept = hits.OfType<ScreenHit>().Select((h, k) => h with { Rank = k + 1 }).ToList();
        return (kept, [.. failures.OfType<string>()]);
    }
}
