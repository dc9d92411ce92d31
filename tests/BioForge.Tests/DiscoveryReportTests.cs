using System.Diagnostics;
using System.Text.Json;
using BioForge.Discovery;

namespace BioForge.Tests;

/// <summary>The HTML report renders in headless Chromium, shows what it should, and fetches nothing.</summary>
public sealed class DiscoveryReportTests
{
    private static ScreenHit Hit(int rank, string smiles, double affinity, string alerts = "") =>
        new(rank, $"line {rank}", smiles, rank, affinity, 0.7, 2.5, 2.1, 300 + rank, 60, 1, 4, alerts, "CCO", "binder", 0.4);

    [Fact]
    public void TheReportShowsCandidatesChartsAndParametersInChromiumWithoutTheNetwork()
    {
        _ = TestData.Cpu;
        string directory = TestData.TempDirectory();
        string page = Path.Combine(directory, "report.html"), screenshot = Path.Combine(directory, "report.png");
        DiscoveryReport.Write(page, new DiscoveryReport.Content
        {
            Title = "Drug candidates for ABL1 <test>",
            Target = "MLEICLKLVGCKSKKGLSSSSSCYLEEALQRPVASDFEPQGLSEAARWNSKENLLAGPSENDPNLFVALYDFVASGDNTLSITKGEKLRVLGYNHNGEWCEAQTKNGQGWVPSNYITPVN",
            TargetName = "ABL1",
            Hits = [Hit(1, "c1ccc2[nH]ccc2c1", 7.9), Hit(2, "CC(=O)Nc1ccc(O)cc1", 7.1, "BRENK:phenol"), Hit(3, "CN1CCN(CC1)c1ccccc1", 6.5)],
            AffinitySample = [.. Enumerable.Range(0, 500).Select(i => 5 + i % 37 / 10.0)],
            Curve = [.. Enumerable.Range(1, 30).Select(i => ((double)i, 0.3 + i / 100.0))],
            Parameters = new Dictionary<string, string> { ["target"] = "ABL1", ["steps"] = "30" },
        });
        string html = File.ReadAllText(page);
        Assert.Contains("Drug candidates for ABL1 &lt;test&gt;", html); // escaped, not markup
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);

        var info = new ProcessStartInfo("node", [Path.Combine(BioForge.Tests.Repository.Root, "tests", "browser", "render.mjs"), page, screenshot,
            "#candidates .card svg=3", "#distributions svg=3", "#properties circle=6", "#optimization polyline=1", "#parameters tr=2", ".alert=1"])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var node = Process.Start(info)!;
        string output = node.StandardOutput.ReadToEnd(), error = node.StandardError.ReadToEnd();
        Assert.True(node.WaitForExit(TimeSpan.FromMinutes(2)), "Chromium did not finish within 2 minutes");
        Assert.True(node.ExitCode == 0, $"render.mjs: {output} {error}");
        var result = JsonDocument.Parse(output).RootElement;
        Assert.Equal("Drug candidates for ABL1 <test>", result.GetProperty("title").GetString());
        Assert.Equal(0, result.GetProperty("network").GetArrayLength());
        Assert.True(new FileInfo(screenshot).Length > 10_000, "the screenshot is (nearly) empty");
    }

    /// <summary>
    /// What ranked the hits is on the page: a scored run shows each score (and what gave a 0); a target unlike every
    /// training target greys every hit, near training ligands or not; the affinity histogram says it is the library's.
    /// </summary>
    [Fact]
    public void TheReportShowsTheScoreThatRankedAndGreysEveryHitOfATargetOutsideTheDomain()
    {
        var near = Hit(1, "c1ccc2[nH]ccc2c1", 7.9) with { TrainingSimilarity = 0.8 };
        var alerted = Hit(2, "CC(=O)Nc1ccc(O)cc1", 8.5, "BRENK:phenol") with { TrainingSimilarity = 0.9 };
        var content = new DiscoveryReport.Content
        {
            Target = "MKV",
            TargetName = "test",
            Hits = [near with { Score = 0.612 }, alerted with { Rank = 2, Score = 0, ZeroedBy = "0 from a structural alert" }],
            AffinitySample = [7.9, 8.5],
        };
        string scored = DiscoveryReport.Render(content);
        Assert.Contains("Ranked by the score", scored);
        Assert.Contains("<br>score 0.612<br>", scored);
        Assert.Contains("score 0.000 (0 from a structural alert)", scored);
        Assert.Contains("<th>score</th>", scored);
        Assert.DoesNotContain("the model's domain", scored); // both are near a training ligand of a known target
        Assert.Contains("Predicted pKd of the screened library, all its molecules", scored);
        Assert.Contains("cLogP 2.1", scored);

        string byAffinity = DiscoveryReport.Render(content with { Hits = [near, alerted], TargetOutside = true });
        Assert.Contains("Ranked by predicted pKd.", byAffinity);
        Assert.DoesNotContain("<th>score</th>", byAffinity);
        Assert.Contains("Grey: the target is unlike every protein the affinity model trained on", byAffinity);
        Assert.Equal(2, byAffinity.Split("(target outside the model's domain)").Length - 1);
        Assert.Equal(2, byAffinity.Split("<tr class=\"outside\"").Length - 1);
    }
}
