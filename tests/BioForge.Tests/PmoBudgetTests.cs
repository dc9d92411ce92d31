using System.Globalization;
using BioForge.Discovery;
using BioForge.Discovery.Pmo;

namespace BioForge.Tests;

/// <summary>External scoring programs, the PMO oracle budget, AUC top-10 and <c>bench pmo</c>.</summary>
[Collection(nameof(TrainerTests))] // the optimization runs seed LibTorch's global generator through sampling
public sealed class PmoBudgetTests
{
    // Answers with each input line's length (so order and count show), logs its input, or misbehaves as told.
    private const string Script = """
        #!/usr/bin/env bash
        mode="$1"; log="$2"
        if [ "$mode" = deaf ]; then exec sleep 60; fi # never reads its input
        values=(); n=0
        while IFS= read -r line; do values+=("${#line}"); n=$((n + 1)); printf '%s\n' "$line" >> "$log"; done
        join() { local IFS=,; echo "$*"; }
        case "$mode" in
          good) echo "{\"version\": 1, \"payload\": {\"predictions\": [$(join "${values[@]}")]}}" ;;
          count) echo "{\"version\": 1, \"payload\": {\"predictions\": [1]}}" ;;
          missing) echo "{\"version\": 1, \"payload\": {\"other\": [$(join "${values[@]}")]}}" ;;
          json) echo "Traceback: not what you asked for" ;;
          python) echo "{\"version\": 1, \"payload\": {\"predictions\": [NaN, null, -Infinity, 2.5], \"note\": \"NaN, \\\"Infinity\\\"\"}}" ;;
          word) echo "{\"version\": 1, \"payload\": {\"predictions\": [\"NaN\", 1]}}" ;;
          exit) echo "boom: the model file is missing" >&2; exit 3 ;;
          sleep) sleep 60 & echo $! > "$log.child"; echo "thinking hard" >&2; wait ;;
        esac
        """;

    private static (ComponentSettings Component, string Log) External(string mode, double timeout = 600)
    {
        string dir = TestData.TempDirectory();
        string script = Path.Combine(dir, "score.sh");
        File.WriteAllText(script, Script.Replace("\r", "", StringComparison.Ordinal) + "\n");
        string log = Path.Combine(dir, "input log.txt"); // a space: the argument string's quotes must keep it one word
        return (new ComponentSettings { Type = "external_process", Name = "docking", Executable = "bash", Args = $"'{script}' {mode} '{log}'", Property = "predictions", TimeoutS = timeout }, log);
    }

    [Fact]
    public void ArgumentsAreSplitAsAShellSplitsThem()
    {
        Assert.Equal(["a", "b c", "d e", "f g", "h\"i", "j\\k", "", "x'y"], ShellWords.Split("""a "b c" 'd e' f\ g "h\"i" 'j\k' "" "x'y" """));
        Assert.Empty(ShellWords.Split("   "));
        Assert.Contains("unclosed single quote", Assert.Throws<BioForgeException>(() => ShellWords.Split("a 'b")).Message);
    }

    [Fact]
    public void AnExternalProgramScoresEveryMoleculeOfABatchInOneCall()
    {
        _ = TestData.Cpu;
        var (component, log) = External("good");
        using var scoring = new ScoringFunction([component], "arithmetic", TestData.Cpu.Device);
        var scored = scoring.Score(["CCO", "C1CC(", "c1ccccc1"]);
        Assert.Equal([3.0, double.NaN, 8.0], scored.Select(m => m.Raw[0]));
        Assert.Equal(1.0, scored[0].Score); // identity clamps to [0, 1]
        Assert.Equal(0.0, scored[1].Score); // invalid: sent, but still 0
        Assert.Equal(["CCO", "C1CC(", "c1ccccc1"], File.ReadAllLines(log)); // one call, invalid molecules included
    }

    /// <summary>
    /// null and Python's NaN mean "no score for this molecule" (it scores 0, the reason kept), as in REINVENT 4; Python's
    /// Infinity is a number; the same words inside strings stay strings.
    /// </summary>
    [Fact]
    public void AProgramMayLeaveAMoleculeUnscoredWithNullOrNaN()
    {
        _ = TestData.Cpu;
        var (component, _) = External("python");
        using var scoring = new ScoringFunction([component], "arithmetic", TestData.Cpu.Device);
        var scored = scoring.Score(["CCO", "CCN", "CCC", "CCCl"]);
        Assert.All(scored.Take(2), m => Assert.Equal((0.0, "docking: the program gave no score (null or NaN)"), (m.Score, m.Error)));
        Assert.Equal(double.NegativeInfinity, scored[2].Raw[0]);
        Assert.Equal((0.0, null), (scored[2].Score, scored[2].Error)); // identity clamps
        Assert.Equal((1.0, null), (scored[3].Score, scored[3].Error));
    }

    /// <summary>
    /// A molecule the program left unscored was still asked about (mol_opt counts every valid molecule it sends to the
    /// oracle): under a budget it is a call scoring 0, and its repeats are answered from the cache, not asked again.
    /// </summary>
    [Fact]
    public void AnUnscoredMoleculeCostsOneCallAndIsNotAskedAgain()
    {
        _ = TestData.Cpu;
        var (component, log) = External("python");
        using var scoring = new ScoringFunction([component], "arithmetic", TestData.Cpu.Device);
        var budget = new OracleBudget(10);
        var (first, calls) = budget.Score(["CCO", "CCN", "CCC", "CCCl"], step: 1, stage: 0, scoring);
        Assert.Equal([("CCO", 0.0), ("CCN", 0.0), ("CCC", 0.0), ("CCCl", 1.0)], calls.Select(c => (c.Smiles, c.Score)));
        Assert.Equal([false, false, true, true], first.Select(m => m.Valid));

        // The program answers four values whatever it is sent: a second run of it would fail the count check.
        var (again, none) = budget.Score(["OCC", "CCN"], step: 2, stage: 0, scoring);
        Assert.Empty(none);
        Assert.Equal(4, budget.Used);
        Assert.All(again, m => Assert.Equal((false, 0.0, "docking: the program gave no score (null or NaN)"), (m.Valid, m.Score, m.Error)));
        Assert.Equal(4, File.ReadAllLines(log).Length);
    }

    /// <summary>
    /// A resumed run rebuilds its budget from oracle_calls.csv: a molecule the program left unscored comes back as one
    /// (invalid, with its reason), not as a valid molecule scoring 0, and is still not asked again.
    /// </summary>
    [Fact]
    public void AnUnscoredMoleculeStaysUnscoredAfterAResume()
    {
        _ = TestData.Cpu;
        var (component, log) = External("python");
        using var scoring = new ScoringFunction([component], "arithmetic", TestData.Cpu.Device);
        var (_, calls) = new OracleBudget(10).Score(["CCO", "CCN", "CCC", "CCCl"], step: 1, stage: 0, scoring);

        string dir = TestData.TempDirectory();
        File.WriteAllText(Path.Combine(dir, MoleculeOptimizer.OracleCallsFile),
            "call,step,smiles,score,error\n" + string.Concat(calls.Select(c => $"{c.Call},{c.Step},{c.Smiles},{c.Score.ToString(CultureInfo.InvariantCulture)},\"{c.Error}\"\n")));
        var read = MoleculeOptimizer.ReadCalls(dir);
        Assert.Equal(calls, read);

        var resumed = new OracleBudget(10);
        resumed.Restore(read, stage: 0, stageFirstStep: 1, components: 1);
        var (again, none) = resumed.Score(["CCN", "CCCl"], step: 2, stage: 0, scoring);
        Assert.Empty(none);
        Assert.Equal((false, 0.0, "docking: the program gave no score (null or NaN)"), (again[0].Valid, again[0].Score, again[0].Error));
        Assert.Equal((true, 1.0), (again[1].Valid, again[1].Score));
        Assert.Equal(4, File.ReadAllLines(log).Length);

        // A file from before the error column still reads.
        File.WriteAllText(Path.Combine(dir, MoleculeOptimizer.OracleCallsFile), "call,step,smiles,score\n1,1,CCO,0.25\n");
        Assert.Equal([new OracleCall(1, 1, "CCO", 0.25)], MoleculeOptimizer.ReadCalls(dir));
    }

    [Theory]
    [InlineData("word", "payload.predictions[0] is \"NaN\", not a number")]
    [InlineData("count", "payload.predictions has 1 values for 2 SMILES")]
    [InlineData("missing", "the payload has no property 'predictions' (it has: other)")]
    [InlineData("json", "the output is not JSON")]
    [InlineData("exit", "the program exited with status 3; stderr: boom: the model file is missing")]
    public void AMisbehavingProgramEndsTheRunWithItsStderr(string mode, string expected)
    {
        _ = TestData.Cpu;
        var (component, _) = External(mode);
        using var scoring = new ScoringFunction([component], "arithmetic", TestData.Cpu.Device);
        var e = Assert.Throws<BioForgeException>(() => scoring.Score(["CCO", "CCN"]));
        Assert.StartsWith("component 'docking' (bash): ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void AProgramPastItsTimeoutIsKilledWithItsChildren()
    {
        _ = TestData.Cpu;
        // Long enough for a loaded machine to start bash, feed it and let it fork and write before the kill.
        var (component, log) = External("sleep", timeout: 4);
        using var scoring = new ScoringFunction([component], "arithmetic", TestData.Cpu.Device);
        var e = Assert.Throws<BioForgeException>(() => scoring.Score(["CCO"]));
        Assert.Contains("no answer within timeout_s = 4 s", e.Message);
        Assert.Contains("stderr: thinking hard", e.Message);
        int child = int.Parse(File.ReadAllText(log + ".child").Trim(), CultureInfo.InvariantCulture);
        // SIGKILL was sent before the exception; the orphan is gone once init reaps it.
        for (int i = 0; i < 100 && Alive(child); i++) Thread.Sleep(50);
        Assert.False(Alive(child), $"the program's child {child} survived the time-out");
    }

    /// <summary>A program that does not exist is named when the scoring function is built, not at its first batch.</summary>
    [Theory]
    [InlineData("/nonexistent/bin/score", "component 'docking' (/nonexistent/bin/score): no such program")]
    [InlineData("bioforge-no-such-scorer", "component 'docking' (bioforge-no-such-scorer): no such program on PATH")]
    public void AMissingProgramIsRefusedWhenTheScoringIsBuilt(string executable, string expected)
    {
        _ = TestData.Cpu;
        var component = new ComponentSettings { Type = "external_process", Name = "docking", Executable = executable, Property = "predictions" };
        Assert.Equal(expected, Assert.Throws<BioForgeException>(() => new ScoringFunction([component], "arithmetic", TestData.Cpu.Device)).Message);
    }

    /// <summary>A program that never reads its input times out too when the input is more than a pipe holds (64 KiB).</summary>
    [Fact]
    public void AProgramThatDoesNotReadItsInputTimesOut()
    {
        _ = TestData.Cpu;
        var (component, _) = External("deaf", timeout: 1);
        using var scoring = new ScoringFunction([component], "arithmetic", TestData.Cpu.Device);
        string[] batch = [.. Enumerable.Range(0, 5000).Select(i => "CC(C)Cc1ccc(cc1)C(C)C(=O)O" + new string('C', i % 7))];
        var e = Assert.Throws<BioForgeException>(() => scoring.Score(batch));
        Assert.Contains("no answer within timeout_s = 1 s", e.Message);
    }

    private static bool Alive(int pid)
    {
        string stat = $"/proc/{pid}/stat";
        if (!File.Exists(stat)) return false;
        try
        {
            string text = File.ReadAllText(stat);
            return text[(text.LastIndexOf(')') + 2)..][0] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    [Fact]
    public void AnExternalComponentNeedsAnExecutableAndAProperty()
    {
        string output = TestData.TempDirectory();
        var e = Assert.Throws<BioForgeException>(() => OptimizeTests.Config(OptimizeTests.Run(output, 2, "[[stages.components]]\ntype = \"external_process\"\nproperty = \"x\"\n")));
        Assert.Contains("an external_process component needs executable", e.Message);
        e = Assert.Throws<BioForgeException>(() => OptimizeTests.Config(OptimizeTests.Run(output, 2, "[[stages.components]]\ntype = \"external_process\"\nexecutable = \"/bin/true\"\nproperty = \"x\"\nargs = \"'open\"\n")));
        Assert.Contains("args: unclosed single quote", e.Message);
    }

    [Fact]
    public void TheBudgetCountsUniqueValidMoleculesAndStopsAtExactlyN()
    {
        _ = TestData.Cpu;
        using var scoring = new ScoringFunction([new ComponentSettings { Type = "qed" }], "arithmetic", TestData.Cpu.Device);
        var budget = new OracleBudget(5);
        // OCC is CCO again, C1CC( is invalid, "" an unfinished sample: none of them counted.
        var (first, calls) = budget.Score(["CCO", "OCC", "C1CC(", "", "c1ccccc1", "CCO", "CCN"], step: 1, stage: 0, scoring);
        Assert.Equal(7, first.Count);
        Assert.Equal(["CCO", "c1ccccc1", "CCN"], calls.Select(c => c.Smiles));
        Assert.Equal([1, 2, 3], calls.Select(c => c.Call));
        Assert.Equal(first[0].Score, first[1].Score);
        Assert.Equal(0.0, first[2].Score);
        Assert.Equal("CCO", first[1].Canonical);

        // Two calls left: the batch is cut right after the molecule that makes the fifth.
        var (second, more) = budget.Score(["CCN", "CCCC", "CCCCC", "CCCCCC", "CCCCCCC"], step: 2, stage: 0, scoring);
        Assert.Equal(3, second.Count);
        Assert.Equal(["CCCC", "CCCCC"], more.Select(c => c.Smiles));
        Assert.Equal(5, budget.Used);
        Assert.True(budget.Exhausted);

        // A new stage has another scoring function: a molecule it has not scored costs a call again.
        var restored = new OracleBudget(6);
        restored.Restore(budget.Calls, stage: 1, stageFirstStep: 2, components: 1);
        var (third, last) = restored.Score(["CCCC", "CCO"], step: 3, stage: 1, scoring);
        Assert.Equal(["CCO"], last.Select(c => c.Smiles)); // CCCC was scored by this stage at step 2; CCO only before it
        Assert.Equal(6, last[0].Call);
        Assert.Equal(budget.Calls[3].Score, third[0].Score);
    }

    [Fact]
    public void AucTopTenFollowsMolOpt()
    {
        // 100 calls at 0.5, then one 1.0 among 0.5s up to call 200, then zeros; stopped at 250 of a budget of 300.
        var scores = Enumerable.Repeat(0.5, 200).Concat(Enumerable.Repeat(0.0, 50)).ToArray();
        scores[149] = 1.0;
        // Trapezoids from 0 at call 0: 100·(0.5 + 0)/2 + 100·(0.55 + 0.5)/2 + 50·(0.55 + 0.55)/2, then 50·0.55 to the budget.
        Assert.Equal((25 + 52.5 + 27.5 + 27.5) / 300, TopAuc.Compute(scores, 300), 12);
        // Fewer than ten molecules: the mean of those there are.
        Assert.Equal((2 * 0.3 / 2 + 98 * 0.3) / 100, TopAuc.Compute([0.2, 0.4], 100), 12);
        // A run that spends its budget: no extension; the last segment may be short.
        Assert.Equal((100 * 0.5 + 100 * 1.0 + 50 * 1.0) / 250, TopAuc.Compute(Enumerable.Repeat(1.0, 250).ToArray(), 250), 12);
        Assert.Equal(0.0, TopAuc.Compute([], 100));
        Assert.Equal([(100, 0.5), (200, 0.55), (250, 0.55)], TopAuc.Curve(scores));
    }

    private static string BudgetRun(string output, string learning = "") => OptimizeTests.Run(output, 10, "[budget]\noracle_calls = 60\n", learning);

    [Theory]
    [InlineData("genetic_offspring = 0")]
    // Bred children (the default) are oracle calls like samples: counted, cut at the budget, the same after a resume.
    [InlineData("genetic_offspring = 6")]
    public void ABudgetedRunStopsAtExactlyNCallsAndResumesWithoutDuplicates(string learning)
    {
        _ = TestData.Cpu;
        string straight = TestData.TempDirectory(), resumed = TestData.TempDirectory();
        var options = new OptimizeOptions { Threads = 2 };
        var whole = MoleculeOptimizer.Run(OptimizeTests.Config(BudgetRun(straight, learning)), options);
        Assert.EndsWith("the oracle budget is spent (60 calls)", whole.StageEndings[^1]);
        var calls = MoleculeOptimizer.ReadCalls(straight);
        Assert.Equal(Enumerable.Range(1, 60), calls.Select(c => c.Call));
        Assert.Equal(whole.Steps, calls[^1].Step);
        // A step of 16 samples makes at most 16 calls; its bred children make more.
        Assert.Equal(learning != "genetic_offspring = 0", calls.GroupBy(c => c.Step).Any(g => g.Count() > 16));

        int seen = 0;
        using var cancel = new CancellationTokenSource();
        // Stopped after the second step: the budget lasts three or more (16 samples a step, and with GB-GA's edits the
        // bred children that sanitize: up to 6 more).
        var first = MoleculeOptimizer.Run(OptimizeTests.Config(BudgetRun(resumed, learning)), options with { Cancellation = cancel.Token, OnStep = _ => { if (++seen == 2) cancel.Cancel(); } });
        Assert.True(first.Interrupted);
        // Rows a lost future wrote past the checkpoint are dropped on resume (here: a made-up one).
        File.AppendAllText(Path.Combine(resumed, MoleculeOptimizer.OracleCallsFile), "999,99,CCCCCCCCCC,0.5\n");
        var second = MoleculeOptimizer.Run(OptimizeTests.Config(BudgetRun(resumed, learning)), options with { Resume = true });
        Assert.False(second.Interrupted);
        Assert.Equal(File.ReadAllText(Path.Combine(straight, MoleculeOptimizer.OracleCallsFile)), File.ReadAllText(Path.Combine(resumed, MoleculeOptimizer.OracleCallsFile)));
        Assert.Equal(File.ReadAllText(Path.Combine(straight, "ranked.csv")), File.ReadAllText(Path.Combine(resumed, "ranked.csv")));
    }

    [Fact]
    public void BenchPmoWritesItsTableAndKeepsFinishedRuns()
    {
        _ = TestData.Cpu;
        string dir = Path.Combine(TestData.TempDirectory(), "bench");
        string prior = Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small");
        string[] args = ["bench", "pmo", "--tasks", "qed", "--seeds", "1", "--budget", "200", "--parallel", "1", "--prior", prior, "--out", dir, "--device", "cpu", "--threads", "2"];
        var output = new StringWriter();
        var error = new StringWriter();
        Assert.Equal(0, Cli.Cli.Run(args, output, error));
        Assert.Equal("", error.ToString());
        var rows = File.ReadAllLines(Path.Combine(dir, PmoBenchmark.ResultsFile));
        Assert.Equal("task,seed,auc_top10,top10_mean,calls,seconds", rows[0]);
        var row = Assert.Single(rows.Skip(1)).Split(',');
        Assert.Equal(["qed", "0"], row[..2]);
        Assert.Equal("200", row[4]);
        double auc = double.Parse(row[2], CultureInfo.InvariantCulture), top = double.Parse(row[3], CultureInfo.InvariantCulture);
        Assert.InRange(auc, 0.01, top);
        Assert.Equal(200, MoleculeOptimizer.ReadCalls(PmoBenchmark.RunDirectoryOf(dir, "qed", 0)).Count);
        string summary = File.ReadAllText(Path.Combine(dir, PmoBenchmark.SummaryFile));
        Assert.Contains("| qed | ", summary);
        Assert.Contains("0.941", summary); // the published REINVENT number beside it
        Assert.Contains("Genetic GFN", summary);
        Assert.Contains($"BioForge (learning.strategy = ahc, learning.genetic_offspring = 32, learning.replay_updates = 0, learning.skip_repeats = true, learning.sigma = 1000, sampling.grammar = none, stages[0].on_stall = stop)", summary);
        Assert.StartsWith("<svg", File.ReadAllText(Path.Combine(dir, PmoBenchmark.CurvesFile)));

        // Again over the same directory: the finished run is kept, not repeated.
        output = new StringWriter();
        Assert.Equal(0, Cli.Cli.Run(args, output, error));
        Assert.DoesNotContain("started", output.ToString());
        Assert.Equal(rows, File.ReadAllLines(Path.Combine(dir, PmoBenchmark.ResultsFile)));

        // A table carried to another session keeps of each finished run only its configuration and its top-10 curve.
        string run = PmoBenchmark.RunDirectoryOf(dir, "qed", 0);
        var curve = File.ReadAllLines(Path.Combine(run, PmoBenchmark.CurveFile));
        Assert.Equal(["calls,top10_mean", "100,"], [curve[0], curve[1][..4]]);
        Assert.StartsWith("200,", curve[^1]);
        string svg = File.ReadAllText(Path.Combine(dir, PmoBenchmark.CurvesFile));
        foreach (string file in Directory.EnumerateFiles(run))
            if (Path.GetFileName(file) is not (Training.RunDirectory.ConfigFile or PmoBenchmark.CurveFile)) File.Delete(file);
        foreach (string sub in Directory.EnumerateDirectories(run)) Directory.Delete(sub, recursive: true);
        output = new StringWriter();
        Assert.Equal(0, Cli.Cli.Run(args, output, error));
        Assert.DoesNotContain("started", output.ToString());
        Assert.Equal(rows, File.ReadAllLines(Path.Combine(dir, PmoBenchmark.ResultsFile)));
        Assert.Equal(svg, File.ReadAllText(Path.Combine(dir, PmoBenchmark.CurvesFile)));

        // Other learning settings over the same table are refused, not mixed into it.
        Assert.Equal(2, Cli.Cli.Run([.. args, "--offspring", "3"], output, error));
        Assert.Contains("ran with learning.genetic_offspring = 32, not 3; use another --out", error.ToString());
        Assert.Equal(2, Cli.Cli.Run([.. args, "--replay-updates", "2"], output, error));
        Assert.Contains("ran with learning.replay_updates = 0, not 2; use another --out", error.ToString());
        Assert.Equal(2, Cli.Cli.Run([.. args, "--skip-repeats", "false"], output, error));
        Assert.Contains("ran with learning.skip_repeats = true, not false; use another --out", error.ToString());
        Assert.Equal(2, Cli.Cli.Run([.. args, "--grammar", "smiles"], output, error));
        Assert.Contains("ran with sampling.grammar = none, not smiles; use another --out", error.ToString());
        string[] otherBudget = [.. args.Select(a => a == "200" ? "300" : a)];
        Assert.Equal(2, Cli.Cli.Run(otherBudget, output, error));
        Assert.Contains("ran with budget.oracle_calls = 200, not 300; use another --out", error.ToString());
        // A run written before a setting existed ran as that setting's off value (before strategies: REINVENT).
        string config = Path.Combine(run, Training.RunDirectory.ConfigFile);
        string stored = File.ReadAllText(config);
        var old = System.Text.Json.Nodes.JsonNode.Parse(stored)!;
        old["learning"]!.AsObject().Remove("strategy");
        File.WriteAllText(config, old.ToJsonString());
        Assert.Equal(2, Cli.Cli.Run(args, output, error));
        Assert.Contains("ran with learning.strategy = reinvent, not ahc; use another --out", error.ToString());
        old = System.Text.Json.Nodes.JsonNode.Parse(stored)!;
        old["stages"]![0]!.AsObject().Remove("on_stall");
        File.WriteAllText(config, old.ToJsonString());
        Assert.Equal(2, Cli.Cli.Run([.. args, "stages[0].on_stall=restart"], output, error));
        Assert.Contains("ran with stages[0].on_stall = stop, not restart; use another --out", error.ToString());
        // Any other setting missing counts as its value now; one that differs (a default changed since) is refused.
        old = System.Text.Json.Nodes.JsonNode.Parse(stored)!;
        old["learning"]!.AsObject().Remove("completion_offspring");
        File.WriteAllText(config, old.ToJsonString());
        Assert.Equal(0, Cli.Cli.Run(args, output, error));
        old["stages"]![0]!["patience"] = 7;
        File.WriteAllText(config, old.ToJsonString());
        Assert.Equal(2, Cli.Cli.Run(args, output, error));
        Assert.Contains("ran with stages[0].patience = 7, not 5; use another --out", error.ToString());
        File.WriteAllText(config, stored);
        Assert.Equal(2, Cli.Cli.Run([.. args, "--grammar", "deepsmiles"], output, error));
        Assert.Contains("--grammar must be none or smiles (got 'deepsmiles')", error.ToString());
        Assert.Equal(2, Cli.Cli.Run([.. args, "learning.mutation_rate=0.5"], output, error));
        Assert.Contains("ran with learning.mutation_rate = 0.067, not 0.5; use another --out", error.ToString());
        Assert.Equal(2, Cli.Cli.Run(["bench", "pmo", "--tasks", "qed,kinase", "--out", dir], output, error));
        Assert.Contains("--tasks: unknown task 'kinase'", error.ToString());
        Assert.Contains("an empty entry", Assert.Throws<BioForgeException>(() => PmoBenchmark.ParseTasks("qed,,drd2")).Message);
        Assert.Contains("'qed' is given twice", Assert.Throws<BioForgeException>(() => PmoBenchmark.ParseTasks("qed, drd2, qed")).Message);
    }

    [Fact]
    public void BenchPmoTakesAnySettingAsOptimizeDoesAndChecksIt()
    {
        var config = PmoBenchmark.RunFile("qed", 1, 300, "prior", "out", overrides: ["learning.mutation_rate=0.01", "stages[0].patience=3"]);
        Assert.Equal(0.01, config.Learning.MutationRate);
        Assert.Equal(3, config.Stages[0].Patience);
        Assert.Equal(new OptimizeConfig.LearningSection().GeneticOffspring, config.Learning.GeneticOffspring); // the rest as without overrides
        Assert.Equal("qed", config.Stages[0].Components[0].Task);
        string settings = PmoBenchmark.Settings(new PmoBenchmarkOptions { Tasks = ["qed"], Out = "out", Overrides = ["stages[0].on_stall=restart", "learning.lr=0.001"] });
        Assert.EndsWith("stages[0].on_stall = restart, learning.lr=0.001", settings); // a setting named anyway is not named twice
        Assert.Contains($"learning.sigma = {new OptimizeConfig.LearningSection().Sigma}", settings, StringComparison.Ordinal);

        string dir = Path.Combine(TestData.TempDirectory(), "bench");
        var output = new StringWriter();
        var error = new StringWriter();
        string prior = Path.Combine(AppContext.BaseDirectory, "models", "smiles-llama-small");
        string[] args = ["bench", "pmo", "--tasks", "qed", "--seeds", "1", "--budget", "200", "--prior", prior, "--out", dir];
        Assert.Equal(2, Cli.Cli.Run([.. args, "learning.mutation=0.5"], output, error));
        Assert.Contains("unknown key 'learning.mutation'", error.ToString());
        Assert.Equal(2, Cli.Cli.Run([.. args, "learning.mutation_rate=2"], output, error));
        Assert.Contains("learning.mutation_rate must be in [0, 1] (got 2)", error.ToString());
        Assert.Equal(2, Cli.Cli.Run([.. args, "stages[0].components[0].task=median1"], output, error));
        Assert.Contains("stages[0].components[0].task: bench pmo sets it for every run (--tasks)", error.ToString());
        Assert.Equal(2, Cli.Cli.Run([.. args, "budget.oracle_calls=50"], output, error));
        Assert.Contains("budget.oracle_calls: bench pmo sets it for every run (--budget)", error.ToString());
        Assert.False(Directory.Exists(dir)); // refused before anything was written
    }
}
