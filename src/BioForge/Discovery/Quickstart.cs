using System.Diagnostics;
using System.Globalization;
using System.Text;
using BioForge.Chem;
using BioForge.Generation;
using BioForge.IO;
using BioForge.Models.Llama;
using BioForge.Runtime;
using static TorchSharp.torch;

namespace BioForge.Discovery;

public sealed record QuickstartOptions
{
    /// <summary>A Davis target name (ABL1, EGFR, …), a UniProt accession of the KIBA set, a protein sequence, or a FASTA file.</summary>
    public string Target { get; init; } = "ABL1";
    public string Output { get; init; } = "quickstart";
    public string AffinityModel { get; init; } = Shipped.Path("models/dti-davis");
    public string Prior { get; init; } = Shipped.Path("models/smiles-llama-small");
    public string Library { get; init; } = Shipped.Path("data/zinc250k/test.smi.gz");
    public string Davis { get; init; } = Shipped.Path("data/davis");
    public int Steps { get; init; } = 60;
    public int BatchSize { get; init; } = 64;
    public int Candidates { get; init; } = 100;
    /// <summary>No two designed candidates more similar than this (Tanimoto, Morgan radius 2): the best of each series.</summary>
    public double MaxSimilarity { get; init; } = 0.5;
    public int Threads { get; init; }
    public ulong Seed { get; init; }
    /// <summary>Property limits: a designed molecule outside one scores 0, a library molecule is not screened.</summary>
    public IReadOnlyList<PropertyLimit> Limits { get; init; } = [];
    /// <summary>PAINS/Brenk rules that neither zero a score nor show as alerts (a covalent design's warhead).</summary>
    public IReadOnlyCollection<string> AllowedAlerts { get; init; } = [];
    /// <summary>
    /// The user's known binders of the target: the optimization starts from them (REINVENT's inception: scored first,
    /// they enter the replay memory and the genetic step breeds from them), and each candidate's nearest known binder is
    /// among them.
    /// </summary>
    public IReadOnlyList<KnownActive> Actives { get; init; } = [];
    /// <summary>
    /// SMARTS of which every candidate must match one (a covalent warhead, a hinge binder): the optimization halves the
    /// score of a molecule without (REINVENT 4's MatchingSubstructure, so the agent learns towards it from any start),
    /// and the candidates are the molecules that have it.
    /// </summary>
    public IReadOnlyList<string> Required { get; init; } = [];
    /// <summary>
    /// Keeps the designs where the affinity model's predictions were tested: the Tanimoto similarity to its nearest
    /// training ligand scores as one more term (a sigmoid centred on <see cref="ApplicabilityDomain.SimilarLigand"/>).
    /// Without it the optimizer is free to find molecules the model rates highly and knows nothing about.
    /// </summary>
    public bool InDomain { get; init; }
}

public sealed record QuickstartResult(string TargetName, int TargetLength, string Picked, double PriorTopMean, double AgentTopMean, double AgentDiversity, int Optimized, long Screened,
    IReadOnlyList<(ScreenHit Hit, double Score, string Source)> Candidates, IReadOnlyList<(ScreenHit Hit, double Score)> LibraryBest, string Report, string CandidatesCsv,
    TimeSpan Elapsed);

/// <summary>
/// BioForge's main job on its embedded defaults: for one target, steer the SMILES model towards molecules with high
/// predicted affinity that are drug-like and easy to make (the default optimizer: Augmented Hill-Climb with genetic
/// exploration), keep the best of each chemical series, compare with what the untrained prior makes, screen a shipped
/// library against the same target, and write the ranked candidates and an HTML report.
/// </summary>
public static class Quickstart
{
    /// <summary>How many of the library's best the report shows apart from the candidates.</summary>
    private const int LibraryCards = 8;

    public static QuickstartResult Run(QuickstartOptions options, Action<string> info, Action<OptimizeStepReport>? onStep = null, CancellationToken cancellation = default)
    {
        var clock = Stopwatch.StartNew();
        var compute = ComputeOptions.Resolve("cpu", "fp32", options.Threads);
        var (targetName, sequence) = ResolveTarget(options);
        info($"target {targetName}: {sequence.Length} residues");
        string output = Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.Output));
        // An earlier quickstart's directory is replaced; anything else is the user's and is never deleted.
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any()
            && !(File.Exists(Path.Combine(output, "report.html")) && File.Exists(Path.Combine(output, "candidates.csv"))))
            throw new BioForgeException($"--out {options.Output} holds files that are not an earlier quickstart's (no report.html and candidates.csv); remove it or choose another directory");
        RequireReadableMolecule(options.Library);
        foreach (string smarts in options.Required)
            try
            {
                using var _ = new SmartsQuery(smarts);
            }
            catch (BioForgeException e)
            {
                throw new BioForgeException($"--require: {e.Message}");
            }
        IReadOnlyList<string> domainLigands = !options.InDomain ? []
            : ApplicabilityDomain.Load(options.AffinityModel)?.LigandSmiles is { Count: > 0 } ligands ? ligands
            : throw new BioForgeException($"--in-domain: the affinity model {options.AffinityModel} records no training ligands (a model written by an older `bioforge dti train`: train it again)");
        QuickstartResult? result = null;
        // Written under a hidden name and swapped in whole: nothing half-written is left behind.
        Training.RunDirectory.Commit(output, temp => result = Run(options, info, onStep, cancellation, compute, targetName, sequence, domainLigands, output, temp, clock));
        return result!;
    }

    /// <summary>A library to screen must hold a molecule RDKit reads: found out now, not after the optimization's minutes.</summary>
    private static void RequireReadableMolecule(string library)
    {
        int read = 0;
        foreach (var record in MoleculeSource.Read(library))
        {
            read++;
            if (!record.TryParse(out var molecule, out _)) continue;
            molecule!.Dispose();
            return;
        }
        throw new BioForgeException($"--library {library}: none of its {read} molecules could be read");
    }

    /// <summary>
    /// The optimization's stored settings and report as they read once the folder is in place: the run worked under the
    /// hidden name <paramref name="temp"/>, and its configuration, given back to <c>optimize --config</c> (to resume or
    /// run again), must name <paramref name="output"/>.
    /// </summary>
    private static void Relocate(string temp, string output)
    {
        foreach (string file in new[] { "optimize_config.json", Path.Combine("optimize", Training.RunDirectory.ConfigFile), Path.Combine("optimize", "report.html") })
        {
            string path = Path.Combine(temp, file);
            if (!File.Exists(path)) continue;
            Func<string, string> encode = file.EndsWith(".html", StringComparison.Ordinal) ? ReportHtml.Encode
                : text => System.Text.Json.JsonEncodedText.Encode(text).ToString();
            File.WriteAllText(path, File.ReadAllText(path).Replace(encode(temp), encode(output), StringComparison.Ordinal));
        }
    }

    private static QuickstartResult Run(QuickstartOptions options, Action<string> info, Action<OptimizeStepReport>? onStep, CancellationToken cancellation,
        ComputeOptions compute, string targetName, string sequence, IReadOnlyList<string> domainLigands, string output, string temp, Stopwatch clock)
    {
        string fasta = Path.Combine(temp, "target.fasta");
        File.WriteAllText(fasta, $">{targetName}\n{sequence}\n");
        var seeds = Seeds(options, info);
        var config = OptimizeRun(options, fasta, Path.Combine(temp, "optimize"), seeds, domainLigands);
        File.WriteAllText(Path.Combine(temp, "optimize_config.json"), config.ToJsonText() + "\n");

        // 1. Generate and optimize.
        int bred = config.Learning.GeneticOffspring;
        info($"optimizing: {options.Steps} steps × {options.BatchSize} molecules" + (bred > 0 ? $" and up to {bred} bred children" : "") + " for predicted affinity, QED and SA score"
            + (domainLigands.Count > 0 ? $", near the affinity model's {domainLigands.Count} training ligands" : ""));
        var optimized = MoleculeOptimizer.Run(config, new OptimizeOptions { Threads = compute.Threads, OnStep = onStep, Cancellation = cancellation });
        if (optimized.Interrupted) throw new OperationCanceledException("quickstart stopped");
        using var scoring = new ScoringFunction(config.Stages[^1].Components, config.Stages[^1].Aggregate, compute.Device);

        // 2. The best of each series (no two above the similarity threshold), from the agent's molecules and from as
        // many of the prior's alone, picked the same way: the bar the optimization must clear.
        using var required = new RequiredSubstructures(options.Required);
        // Molecules without a required substructure score half and cannot be candidates: left out before the pick, not after.
        var agentPick = DiversePick(optimized.Ranked.Where(m => required.Match(m.Canonical)).Select(m => (m.Canonical, m.Score)).ToList(), options);
        // A stop asked for after the optimization ends the minutes of comparison and screening too: nothing is written.
        cancellation.ThrowIfCancellationRequested();
        info($"sampling {optimized.Scored} molecules from the prior for comparison");
        var priorPick = DiversePick([.. PriorScores(options, scoring, optimized.Scored, cancellation).Where(m => required.Match(m.Smiles))], options);
        double agentTop = agentPick.Select(m => m.Score).DefaultIfEmpty(0).Average();
        double priorTop = priorPick.Select(m => m.Score).DefaultIfEmpty(0).Average();
        double diversity = 0;
        if (agentPick.Count > 0)
            using (var moses = new MosesMetrics()) diversity = moses.Compute([.. agentPick.Select(m => m.Smiles)]).IntDiv1 ?? 0;
        string picked = $"best {agentPick.Count} with no two above Tanimoto {options.MaxSimilarity:F2}";

        // 3. Screen the shipped library and profile the optimized molecules the same way.
        using var affinity = AffinityModel.Load(options.AffinityModel, compute.Device);
        cancellation.ThrowIfCancellationRequested();
        info($"screening {options.Library}");
        // Every library molecule goes on to the combined score below, not only the best by affinity alone: a clean,
        // drug-like molecule just under an affinity cut would otherwise never be compared.
        var screenOptions = new ScreenOptions { Top = int.MaxValue, Limits = options.Limits, AllowedAlerts = options.AllowedAlerts, Actives = options.Actives, TargetName = targetName };
        var screened = VirtualScreen.Run(affinity, sequence, MoleculeSource.Read(options.Library).TakeWhile(_ => !cancellation.IsCancellationRequested), screenOptions,
            cancellation: cancellation);
        // Named by their rank in the optimization's own ranking (optimize/ranked.csv), not their place in the pick.
        var optimizedRank = optimized.Ranked.ToDictionary(m => m.Canonical, m => m.Rank, StringComparer.Ordinal);
        var designed = VirtualScreen.Run(affinity, sequence,
            agentPick.Select((m, i) => new MoleculeRecord($"optimized #{optimizedRank[m.Smiles]}", m.Smiles, false, i + 1, new Dictionary<string, string>())),
            screenOptions with { Top = options.Candidates }, cancellation: cancellation);
        cancellation.ThrowIfCancellationRequested();
        // The pick walks down the ranking to its end when too few molecules scored above 0: some may break a limit.
        if (designed.OutsideLimits > 0) info($"{designed.OutsideLimits} of the {agentPick.Count} designed molecules picked are outside the limits: left out of the candidates");
        if (designed.WithoutCarbon > 0) info($"{designed.WithoutCarbon} of the {agentPick.Count} designed molecules picked have no carbon atom: left out of the candidates");

        // 4. One ranking for both sources: the optimization's own scoring function.
        var pool = designed.Hits.Select(h => (Hit: h, Source: "optimized")).Concat(screened.Hits.Select(h => (Hit: h, Source: "library"))).ToList();
        var scores = scoring.Score([.. pool.Select(p => p.Hit.Smiles)]);
        var ranked = pool.Select((p, i) => (Hit: p.Hit with { Score = scores[i].Score, ZeroedBy = ZeroedBy(scoring, scores[i]) }, scores[i].Score, p.Source))
            .GroupBy(c => c.Hit.Smiles).Select(g => g.First())
            .OrderByDescending(c => c.Score)
            .Where(c => required.Match(c.Hit.Smiles))
            .Select((c, i) => (Hit: c.Hit with { Rank = i + 1 }, c.Score, c.Source)).ToList();
        if (options.Required.Count > 0)
            info($"{ranked.Count} of the designed and library molecules have {string.Join(" or ", options.Required)}" + (ranked.Count == 0 ? ": no candidates" : ""));
        var candidates = ranked.Take(options.Candidates).ToList();
        var libraryBest = ranked.Where(c => c.Source == "library").Take(LibraryCards).Select(c => (c.Hit, c.Score)).ToList();
        var domain = ApplicabilityDomain.Notes(affinity, sequence, [.. candidates.Select(c => c.Hit)]);
        foreach (string note in domain.Sentences) info(note);

        WriteCandidates(Path.Combine(temp, "candidates.csv"), candidates, affinity.Manifest.Measure);
        var curve = File.ReadLines(Path.Combine(temp, "optimize", "metrics.jsonl"))
            .Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!)
            .Select(n => (n["step"]!.GetValue<double>(), n["mean_score"]!.GetValue<double>())).ToList();
        DiscoveryReport.Write(Path.Combine(temp, "report.html"), new DiscoveryReport.Content
        {
            Title = $"Drug candidates for {targetName}",
            Target = sequence,
            TargetName = targetName,
            Measure = affinity.Manifest.Measure,
            Hits = [.. candidates.Select(c => c.Hit)],
            LibraryHits = [.. libraryBest.Select(c => c.Hit)],
            Domain = domain.Sentences,
            TargetOutside = domain.TargetOutside,
            AffinitySample = screened.AffinitySample,
            Curve = curve,
            Parameters = new Dictionary<string, string>
            {
                ["target"] = $"{targetName} ({sequence.Length} residues)",
                ["prior (SMILES model)"] = options.Prior,
                ["affinity model"] = $"{options.AffinityModel} (test fold: {string.Join(", ", affinity.Manifest.TestMetrics.Select(kv => $"{kv.Key} {kv.Value:F3}"))}; see the applicability domain above)",
                ["optimization"] = $"{optimized.Steps} steps × {options.BatchSize} molecules" + (bred > 0 ? $" and up to {bred} bred children" : "")
                    + $" ({optimized.Scored} scored; learning: {config.Learning.Strategy}" + (bred > 0 ? " with genetic exploration" : "") + $"); score = geometric mean of sigmoid(pKd; 6–9), QED, reverse-sigmoid(SA; 2–5)"
                    + (domainLigands.Count > 0 ? $", sigmoid(Tanimoto to the nearest of the model's {domainLigands.Count} training ligands; {DomainLow:0.##}–{DomainHigh:0.##})" : "")
                    + $", weighted {Weights(config)}, × PAINS/Brenk filter"
                    + (options.AllowedAlerts.Count > 0 ? $" (not counting {string.Join(", ", options.AllowedAlerts)})" : "")
                    + (options.Limits.Count > 0 ? $" × limits ({string.Join(", ", options.Limits.Select(l => l.Text))}: 0 outside)" : "")
                    + (options.Required.Count > 0 ? $" × 0.5 without {string.Join(" or ", options.Required)} (candidates must have it)" : ""),
                ["mean score, " + picked] = $"optimized {agentTop:F3} vs prior {priorTop:F3} (as many molecules sampled; scored as sampled, as the optimizer scores them); internal diversity {diversity:F3}",
                ["library screened"] = $"{options.Library}: {screened.Scored:N0} molecules, {screened.Invalid:N0} unreadable"
                    + (options.Limits.Count > 0 ? $", {screened.OutsideLimits:N0} outside the limits" : "")
                    + (screened.WithoutCarbon > 0 ? $", {screened.WithoutCarbon:N0} without carbon" : "") + $", {screened.MoleculesPerSecond:N0} molecules/s",
                ["known binders"] = $"{screened.KnownBinders - screened.Actives} in {affinity.Manifest.Dataset} ({AffinityModel.KnownBinderRule(affinity.Manifest.Measure)})"
                    + (options.Actives.Count > 0 ? $", {options.Actives.Count} of yours ({config.Learning.Inception.Count} of them the optimization's starting points)" : ""),
                ["candidates"] = $"top {options.Candidates} of the optimized ({picked}) and library molecules by the same score, each scored as its neutral parent "
                    + "(salt parent, protonation states neutralized, as the library is read); \"optimized #N\" is the molecule's rank in optimize/ranked.csv (optimize/report.html shows the top 100), "
                    + "which scores the SMILES as sampled ([NH+] forms included), so some scores differ between the two",
                ["seed"] = options.Seed.ToString(CultureInfo.InvariantCulture),
            },
        });

        Relocate(temp, output);
        return new QuickstartResult(targetName, sequence.Length, picked, priorTop, agentTop, diversity, optimized.Scored, screened.Scored, candidates, libraryBest,
            Path.Combine(output, "report.html"), Path.Combine(output, "candidates.csv"), clock.Elapsed);
    }

    /// <summary>For a score of 0, the parts that gave 0 (a structural alert, a limit, a missing required group), as the report names them.</summary>
    private static string? ZeroedBy(ScoringFunction scoring, ScoredMolecule scored)
    {
        if (scored.Score > 0) return null;
        if (scored.Error is { } error) return error;
        var parts = scoring.Components.Select((c, k) => (c, k)).Where(p => !(scored.Transformed[p.k] > 0))
            .Select(p => p.c.Type == "filters" ? "a structural alert" : p.c.Name ?? p.c.Type).Distinct().ToList();
        return parts.Count == 0 ? null : $"0 from {string.Join(", ", parts)}";
    }

    /// <summary>A Davis target by name, a KIBA kinase by UniProt accession, a sequence or a FASTA file (<see cref="ProteinTarget.Resolve"/>).</summary>
    private static (string Name, string Sequence) ResolveTarget(QuickstartOptions options)
    {
        var target = ProteinTarget.Resolve(options.Target, options.Davis);
        return (target.Name, target.Sequence);
    }

    /// <summary>The actives the SMILES model can write (within the sampled length, no token outside its vocabulary): the others stay references only.</summary>
    private static List<string> Seeds(QuickstartOptions options, Action<string> info)
    {
        if (options.Actives.Count == 0) return [];
        var vocabulary = Tokenizers.SmilesVocabulary.InModel(options.Prior);
        var seeds = options.Actives.Select(a => a.Smiles).Where(s => vocabulary is not null && vocabulary.Encode(s) is var ids
            && ids.Length - 2 <= MaxLength && !ids.Contains(Tokenizers.SmilesVocabulary.UnkId)).ToList();
        info($"starting the optimization from {seeds.Count} of the {options.Actives.Count} actives"
            + (seeds.Count < options.Actives.Count ? " (the others need tokens the SMILES model cannot write or more than its length: references only)" : ""));
        return seeds;
    }

    private const int MaxLength = 100;

    /// <summary>The --in-domain term's window, centred on the applicability domain's threshold.</summary>
    private const double DomainLow = ApplicabilityDomain.SimilarLigand - 0.15, DomainHigh = ApplicabilityDomain.SimilarLigand + 0.15;

    private static OptimizeConfig OptimizeRun(QuickstartOptions options, string targetFasta, string directory, List<string> seeds, IReadOnlyList<string> domainLigands) => new()
    {
        Seed = options.Seed,
        Prior = new OptimizeConfig.PriorSection { Model = options.Prior },
        Sampling = new OptimizeConfig.SamplingSection { BatchSize = options.BatchSize, MaxLength = MaxLength },
        // Learning from repeats too, at σ 500: this 60-step run with its scaffold filter picked 0.847 with skip_repeats
        // and 0.859 with σ 1000 (the PMO defaults, tuned for 10,000 calls) against 0.901 (docs/benchmarks.md, Discovery quickstart).
        Learning = new OptimizeConfig.LearningSection { SkipRepeats = false, Sigma = 500, Inception = seeds },
        DiversityFilter = new OptimizeConfig.DiversityFilterSection { Kind = "similar_scaffold", Similarity = 0.5, BucketSize = 3, MinimumScore = 0.4 },
        Output = new OptimizeConfig.OutputSection { Dir = directory, CheckpointEvery = 1000, Ranked = 1000 },
        Stages =
        [
            new OptimizeConfig.StageSection
            {
                Name = "affinity and drug-likeness",
                MaxSteps = options.Steps,
                MinSteps = options.Steps,
                Aggregate = "geometric",
                Components =
                [
                    new ComponentSettings { Type = "affinity", Name = "pKd", Model = options.AffinityModel, Target = targetFasta, Weight = 2,
                        Transform = new TransformSettings { Kind = "sigmoid", Low = 6, High = 9, K = 0.5 } },
                    new ComponentSettings { Type = "qed", Weight = 1 },
                    new ComponentSettings { Type = "sa", Weight = 1, Transform = new TransformSettings { Kind = "reverse_sigmoid", Low = 2, High = 5, K = 0.5 } },
                    .. domainLigands.Count == 0 ? [] : new[]
                    {
                        new ComponentSettings { Type = "similarity", Name = "nearest training ligand", Smiles = [.. domainLigands], Weight = 1,
                            Transform = new TransformSettings { Kind = "sigmoid", Low = DomainLow, High = DomainHigh, K = 0.5 } },
                    },
                    new ComponentSettings { Type = "filters", Catalogs = ["pains", "brenk"], Allow = [.. options.AllowedAlerts] },
                    .. options.Limits.Select(l => l.AsPenalty()),
                    .. options.Required.Count == 0 ? [] : new[]
                    {
                        new ComponentSettings { Type = "matching_substructure", Name = "required substructure", Smarts = [.. options.Required] },
                    },
                ],
            },
        ],
    };

    /// <summary>The weights of the scoring terms as the report names them ("2 : 1 : 1"), read from the run's configuration.</summary>
    private static string Weights(OptimizeConfig config) =>
        string.Join(" : ", config.Stages[0].Components.Where(c => !c.IsPenalty).Select(c => c.Weight.ToString("0.##", System.Globalization.CultureInfo.InvariantCulture)));

    /// <summary>The --require patterns, compiled once: a molecule matches when it has any of them (always, with none).</summary>
    private sealed class RequiredSubstructures(IReadOnlyList<string> smarts) : IDisposable
    {
        private readonly List<SmartsQuery> queries = [.. smarts.Select(s => new SmartsQuery(s))];

        public bool Match(string smiles)
        {
            if (queries.Count == 0) return true;
            using var molecule = Molecule.FromSmiles(smiles);
            return queries.Any(molecule.HasMatch);
        }

        public void Dispose()
        {
            foreach (var query in queries) query.Dispose();
        }
    }

    private static List<(string Smiles, double Score)> DiversePick(List<(string Smiles, double Score)> ranked, QuickstartOptions options) =>
        [.. DiverseSelection.Pick([.. ranked.Select(m => m.Smiles)], options.Candidates, options.MaxSimilarity).Select(i => ranked[i])];

    /// <summary>The prior's distinct valid molecules with their scores, best first.</summary>
    private static List<(string Smiles, double Score)> PriorScores(QuickstartOptions options, ScoringFunction scoring, int count, CancellationToken cancellation)
    {
        using var prior = LlamaCheckpoint.Load(options.Prior, CPU, ScalarType.Float32);
        var generator = new Generation.SmilesGenerator(prior);
        var molecules = generator.Generate(count, new SamplingOptions { MaxNewTokens = MaxLength }, StatelessRandom.Hash(options.Seed, 7, 7), options.BatchSize, validOnly: false,
            cancellation: cancellation);
        var distinct = molecules.Where(m => m.Valid).Select(m => m.Canonical!).Distinct().ToList();
        var scores = scoring.Score(distinct);
        return [.. distinct.Select((smiles, i) => (smiles, scores[i].Score)).OrderByDescending(m => m.Item2)];
    }

    private static void WriteCandidates(string path, IReadOnlyList<(ScreenHit Hit, double Score, string Source)> candidates, string measure)
    {
        string F(double v, string format = "F3") => v.ToString(format, CultureInfo.InvariantCulture);
        var text = new StringBuilder($"rank,source,id,smiles,score,predicted_{measure.Replace(' ', '_').ToLowerInvariant()},qed,sa,logp,mw,tpsa,alerts,nearest_known_binder,nearest_binder_name,nearest_binder_similarity,nearest_binder_measured_{measure.Replace(' ', '_').ToLowerInvariant()},nearest_training_ligand_similarity\n");
        foreach (var (h, score, source) in candidates)
            text.Append(h.Rank.ToString(CultureInfo.InvariantCulture)).Append(',').Append(source).Append(',').Append(Csv.Quote(h.Id)).Append(',').Append(Csv.Quote(h.Smiles)).Append(',').Append(F(score)).Append(',')
                .Append(F(h.Affinity)).Append(',').Append(F(h.Qed)).Append(',').Append(F(h.Sa, "F2")).Append(',').Append(F(h.LogP, "F2")).Append(',')
                .Append(F(h.MolWt, "F1")).Append(',').Append(F(h.Tpsa, "F1")).Append(',').Append(Csv.Quote(h.Alerts)).Append(',')
                .Append(Csv.Quote(h.NearestBinder ?? "")).Append(',').Append(Csv.Quote(h.NearestBinderName ?? "")).Append(',').Append(h.NearestSimilarity is { } s ? F(s) : "").Append(',')
                .Append(h.NearestBinderAffinity is { } a ? F(a) : "").Append(',').Append(h.TrainingSimilarity is { } t ? F(t) : "").Append('\n');
        AtomicFile.WriteText(path, text.ToString());
    }
}
