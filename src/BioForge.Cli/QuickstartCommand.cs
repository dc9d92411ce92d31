using System.CommandLine;
using BioForge.Discovery;

namespace BioForge.Cli;

/// <summary><c>bioforge quickstart</c>: the whole discovery workflow for one target on the shipped models and data.</summary>
internal static class QuickstartCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var defaults = new QuickstartOptions();
        var target = new Option<string>("--target") { Description = "a Davis kinase (ABL1, EGFR, BRAF, …), a UniProt accession of the KIBA kinases (P00533, Q06187, …), a protein sequence or a FASTA file", DefaultValueFactory = _ => defaults.Target };
        var outDir = new FolderOutputOption("--out") { Description = "output directory (report.html, candidates.csv, optimize/)", DefaultValueFactory = _ => defaults.Output };
        var steps = Options.Int("--steps", "reinforcement-learning steps", defaults.Steps);
        var library = new Option<string>("--library") { Description = "molecules to screen", DefaultValueFactory = _ => defaults.Library };
        var threads = Options.Int("--threads", "CPU threads (0: all cores)", 0);
        var maxSimilarity = new Option<double>("--max-similarity")
        {
            Description = "no two designed candidates more similar than this (Tanimoto, Morgan radius 2; 1: the top by score alone)",
            DefaultValueFactory = _ => defaults.MaxSimilarity,
        };
        var command = new Command("quickstart", "Find drug candidates for a target: optimize molecules for predicted affinity and drug-likeness, screen a library, write a report")
        {
            target, outDir, steps, library, threads, maxSimilarity,
        };
        var chemist = new ChemistOptionSet();
        chemist.AddTo(command);
        var require = new Option<string[]>("--require")
        {
            Description = "a SMARTS every candidate must match, repeatable (any one): e.g. 'C=CC(=O)N' for an acrylamide warhead; the optimization halves the score of a molecule without it",
        };
        command.Options.Add(require);
        var inDomain = new Option<bool>("--in-domain")
        {
            Description = "keep the designs near the affinity model's training ligands (Tanimoto to the nearest scores as one more term): predictions stay where the model was tested",
        };
        command.Options.Add(inDomain);
        command.SetAction(result => Cli.Guard(error, () =>
        {
            if (result.GetValue(steps) < 1) throw new BioForgeException($"--steps must be at least 1 (got {result.GetValue(steps)})");
            if (result.GetValue(maxSimilarity) is not (> 0 and <= 1)) throw new BioForgeException($"--max-similarity must be in (0, 1] (got {result.GetValue(maxSimilarity)})");
            var limits = chemist.LimitsOf(result);
            var allowed = chemist.AllowedOf(result);
            var actives = chemist.ActivesOf(result);
            return Cli.Stoppable("stopping (nothing is written)", cancellation =>
            {
                QuickstartResult run;
                try
                {
                    run = Quickstart.Run(new QuickstartOptions
                    {
                        Target = result.GetValue(target)!,
                        Output = result.GetValue(outDir)!,
                        Steps = result.GetValue(steps),
                        Library = result.GetValue(library)!,
                        Threads = result.GetValue(threads),
                        MaxSimilarity = result.GetValue(maxSimilarity),
                        Limits = limits,
                        AllowedAlerts = allowed,
                        Actives = actives,
                        Required = result.GetValue(require) ?? [],
                        InDomain = result.GetValue(inDomain),
                    }, output.WriteLine, r =>
                    {
                        if (r.Step % 10 == 0 || r.Step == r.StageSteps)
                            output.WriteLine($"  step {r.Step}/{r.StageSteps}  mean score {r.MeanScore:F3}  valid {r.ValidFraction:P0}  scaffolds {r.Scaffolds}  {r.Elapsed.TotalSeconds:F0} s");
                    }, cancellation);
                }
                catch (OperationCanceledException)
                {
                    error.WriteLine("quickstart stopped; nothing was written");
                    return 130;
                }
                output.WriteLine();
                output.WriteLine($"Candidates for {run.TargetName} ({run.Optimized:N0} molecules sampled or bred in the optimization, {run.Screened:N0} screened, {run.Elapsed.TotalMinutes:F1} min):");
                foreach (var (hit, score, source) in run.Candidates.Take(5))
                    output.WriteLine($"  {hit.Rank}. {hit.Smiles}  score {score:F2}  pKd {hit.Affinity:F2}  QED {hit.Qed:F2}  SA {hit.Sa:F1}  ({source})");
                output.WriteLine($"Mean score of the {run.Picked}: {run.AgentTopMean:F3} (the prior alone: {run.PriorTopMean:F3}), internal diversity {run.AgentDiversity:F3}");
                if (run.LibraryBest.Count > 0)
                    output.WriteLine($"Best of the library: {run.LibraryBest[0].Hit.Smiles}  score {run.LibraryBest[0].Score:F2}  (rank {run.LibraryBest[0].Hit.Rank} of all)");
                output.WriteLine($"-> {run.Report}");
                output.WriteLine($"-> {run.CandidatesCsv}");
                return 0;
            });
        }));
        return command;
    }
}
