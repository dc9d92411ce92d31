using System.Globalization;
using System.Text;
using BioForge.Imaging;
using BioForge.IO;

namespace BioForge.Discovery;

/// <summary>
/// The report a chemist reads: one self-contained HTML file (inline SVG depictions and charts, inline CSS, no scripts
/// or network) with the top candidates, the distributions of score and properties, property scatter plots, the
/// optimization curve when there was one, and every parameter of the run.
/// </summary>
public static class DiscoveryReport
{
    public sealed record Content
    {
        public string Title { get; init; } = "BioForge";
        public string Target { get; init; } = "";
        public string? TargetName { get; init; }
        public string Measure { get; init; } = "pKd";
        public IReadOnlyList<ScreenHit> Hits { get; init; } = [];
        /// <summary>The screened library's best by the candidates' ranking (their ranks among all), shown apart: molecules
        /// that already exist, which the designed ones usually outrank.</summary>
        public IReadOnlyList<ScreenHit> LibraryHits { get; init; } = [];
        /// <summary>Predicted affinities of (a sample of) everything scored, for the distribution.</summary>
        public IReadOnlyList<double> AffinitySample { get; init; } = [];
        /// <summary>Optimization: (step, mean score) per step.</summary>
        public IReadOnlyList<(double Step, double MeanScore)> Curve { get; init; } = [];
        public IReadOnlyDictionary<string, string> Parameters { get; init; } = new Dictionary<string, string>();
        /// <summary>Whether the target and the molecules are like what the affinity model trained on (<see cref="ApplicabilityDomain"/>), a sentence each; "warning:" ones stand out.</summary>
        public IReadOnlyList<string> Domain { get; init; } = [];
        /// <summary>The target is unlike every training target of the affinity model: every hit is shown grey, whatever its ligand.</summary>
        public bool TargetOutside { get; init; }
        /// <summary>How many candidates get a depiction card.</summary>
        public int Cards { get; init; } = 24;
    }

    public static void Write(string path, Content content) => AtomicFile.WriteText(path, Render(content));

    public static string Render(Content c)
    {
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        html.Append($"<title>{E(c.Title)}</title><style>{ReportHtml.Style}</style></head><body>\n");
        html.Append($"<header><h1>{E(c.Title)}</h1><p class=\"meta\">BioForge · {DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)} UTC · target {E(c.TargetName ?? "")} "
            + $"({c.Target.Length} residues: <code>{E(Spelling.Excerpt(c.Target, 60))}</code>)</p></header>\n");
        if (c.Domain.Count > 0)
        {
            html.Append("<section id=\"domain\"><h2>Applicability domain</h2><ul>");
            foreach (string note in c.Domain)
                html.Append(note.StartsWith("warning: ", StringComparison.Ordinal) ? $"<li class=\"alert\"><b>Warning:</b> {E(note["warning: ".Length..])}</li>" : $"<li>{E(note)}</li>");
            html.Append("</ul></section>\n");
        }

        html.Append($"<section id=\"candidates\"><h2>Top candidates</h2>");
        bool scored = c.Hits.Concat(c.LibraryHits).Any(h => h.Score is not null);
        html.Append(scored
            ? $"<p>Ranked by the score (its terms are under Run parameters; {E(c.Measure)} is one of them); a score of 0 says which part gave it.</p>"
            : $"<p>Ranked by predicted {E(c.Measure)}.</p>");
        if (c.TargetOutside)
            html.Append($"<p>Grey: the target is unlike every protein the affinity model trained on (see the applicability domain above), so no predicted {E(c.Measure)} here is evidence of binding.</p>");
        else if (c.Hits.Concat(c.LibraryHits).Any(h => Outside(h, c)))
            html.Append(string.Create(CultureInfo.InvariantCulture, $"<p>Grey: no training ligand of the affinity model within Tanimoto {ApplicabilityDomain.SimilarLigand:F1}. The model extrapolates for these: "
                + $"their {E(c.Measure)} is not an estimate of their affinity.</p>"));
        html.Append(Cards(c.Hits.Take(c.Cards), c));
        html.Append(Table(c));
        html.Append("<p class=\"meta\">cLogP: Crippen's (RDKit). Similarities: Tanimoto on Morgan fingerprints, radius 2, 2,048 bits (ECFP4-like).</p>");
        html.Append("</section>\n");
        if (c.LibraryHits.Count > 0)
            html.Append("<section id=\"library\"><h2>Best of the screened library</h2><p>Molecules that already exist, ranked with the candidates above "
                + "by the same score (# is the rank among all).</p>").Append(Cards(c.LibraryHits, c)).Append("</section>\n");

        html.Append("<section id=\"distributions\"><h2>Distributions</h2><div class=\"charts\">");
        html.Append(SvgChart.Histogram(c.AffinitySample, $"Predicted {c.Measure} of the screened library, " + (c.AffinitySample.Count >= VirtualScreen.SampleSize ? $"a random {VirtualScreen.SampleSize:N0} of its molecules" : "all its molecules"), c.Measure));
        html.Append(SvgChart.Histogram([.. c.Hits.Select(h => h.Qed)], "QED of the candidates", "QED", 12));
        html.Append(SvgChart.Histogram([.. c.Hits.Select(h => h.Sa)], "SA score of the candidates", "SA score (1 easy … 10 hard)", 12));
        html.Append("</div></section>\n");

        html.Append("<section id=\"properties\"><h2>Property space</h2><div class=\"charts\">");
        var labels = c.Hits.Select(h => $"#{h.Rank} {h.Smiles}").ToList();
        html.Append(SvgChart.Scatter([.. c.Hits.Select(h => h.Qed)], [.. c.Hits.Select(h => h.Affinity)], $"{c.Measure} against drug-likeness", "QED", c.Measure, labels));
        html.Append(SvgChart.Scatter([.. c.Hits.Select(h => h.MolWt)], [.. c.Hits.Select(h => h.LogP)], "Molecular weight and cLogP", "MW", "cLogP", labels));
        html.Append("</div></section>\n");

        if (c.Curve.Count > 0)
            html.Append("<section id=\"optimization\"><h2>Optimization</h2>")
                .Append(SvgChart.Line([.. c.Curve.Select(p => p.Step)], [.. c.Curve.Select(p => p.MeanScore)], "Mean score of each sampled batch", "step", "mean score"))
                .Append("</section>\n");

        html.Append("<section id=\"parameters\"><h2>Run parameters</h2><table>");
        foreach (var (key, value) in c.Parameters) html.Append($"<tr><th>{E(key)}</th><td>{E(value)}</td></tr>");
        html.Append("</table></section>\n<footer>Predicted affinities come from a model trained on a public benchmark; they rank molecules for follow-up and are not measurements.</footer></body></html>\n");
        return html.ToString();
    }

    private static string Cards(IEnumerable<ScreenHit> hits, Content c)
    {
        var cards = new StringBuilder("<div class=\"cards\">");
        foreach (var hit in hits)
        {
            cards.Append("<figure class=\"card\">").Append(ReportHtml.Depiction(hit.Smiles));
            cards.Append($"<figcaption><b>#{hit.Rank}</b> {E(hit.Id)} {Affinity(hit, c)}");
            if (hit.Score is { } score) cards.Append($"<br>score {score:F3}{(hit.ZeroedBy is { } why ? $" ({E(why)})" : "")}");
            cards.Append($"<br>QED {hit.Qed:F2} · SA {hit.Sa:F1} · cLogP {hit.LogP:F1} · MW {hit.MolWt:F0}");
            if (hit.NearestSimilarity is { } s) cards.Append($"<br>nearest known binder {s:F2}{Binder(hit, c)}");
            if (hit.TrainingSimilarity is { } t) cards.Append($"<br>nearest training ligand {t:F2}");
            if (hit.Alerts.Length > 0) cards.Append($"<br><span class=\"alert\" title=\"{E(hit.Alerts)}\">⚠ {E(hit.Alerts.Split("; ").Length.ToString(CultureInfo.InvariantCulture))} structural alert(s)</span>");
            cards.Append($"<br><code class=\"smiles\">{E(hit.Smiles)}</code></figcaption></figure>");
        }
        return cards.Append("</div>\n").ToString();
    }

    private static string Table(Content c)
    {
        bool scored = c.Hits.Any(h => h.Score is not null);
        var table = new StringBuilder($"<table class=\"hits\"><thead><tr><th>rank</th><th>id</th><th>SMILES</th>{(scored ? "<th>score</th>" : "")}<th>{E(c.Measure)}</th><th>QED</th><th>SA</th><th>cLogP</th><th>MW</th><th>TPSA</th><th>alerts</th><th>nearest binder</th><th>nearest training ligand</th></tr></thead><tbody>");
        foreach (var h in c.Hits)
            table.Append($"<tr{(Outside(h, c) ? " class=\"outside\" title=\"outside the model's domain\"" : "")}><td>{h.Rank}</td><td>{E(h.Id)}</td><td><code>{E(h.Smiles)}</code></td>"
                + (scored ? $"<td{(h.ZeroedBy is { } why ? $" title=\"{E(why)}\"" : "")}>{h.Score:F3}</td>" : "")
                + $"<td>{h.Affinity:F2}</td><td>{h.Qed:F2}</td><td>{h.Sa:F1}</td><td>{h.LogP:F1}</td><td>{h.MolWt:F0}</td><td>{h.Tpsa:F0}</td>"
                + $"<td>{E(h.Alerts)}</td><td>{(h.NearestSimilarity is { } s ? $"{s:F2}{Binder(h, c)}" : "")}</td><td>{(h.TrainingSimilarity is { } t ? $"{t:F2}" : "")}</td></tr>");
        return table.Append("</tbody></table>").ToString();
    }

    /// <summary>
    /// A hit unlike every training ligand (<see cref="ApplicabilityDomain.SimilarLigand"/>), or any hit of a target unlike
    /// every training target: its predicted value ranks it among the others at best, and is no estimate of its affinity
    /// (random ZINC molecules were predicted at a median pKd of 6.9 for FLT3, whose 68 Davis inhibitors measure 5.7), so
    /// it is shown grey and says so.
    /// </summary>
    private static bool Outside(ScreenHit hit, Content c) => c.TargetOutside || hit.TrainingSimilarity < ApplicabilityDomain.SimilarLigand;

    private static string Affinity(ScreenHit hit, Content c) => !Outside(hit, c)
        ? $"<span class=\"score\">{E(c.Measure)} {hit.Affinity:F2}</span>"
        : c.TargetOutside
        ? $"<span class=\"score outside\" title=\"the target is unlike every training target: the model extrapolates\">{E(c.Measure)} {hit.Affinity:F2} (target outside the model's domain)</span>"
        : $"<span class=\"score outside\" title=\"nearest training ligand {hit.TrainingSimilarity:F2}: the model extrapolates\">{E(c.Measure)} {hit.Affinity:F2} (outside the model's domain)</span>";

    /// <summary>The nearest known binder's name and, where the dataset measured it, its affinity: " (dasatinib, measured pKd 10.54)".</summary>
    private static string Binder(ScreenHit hit, Content c)
    {
        var parts = new List<string>();
        if (hit.NearestBinderName is { Length: > 0 } name) parts.Add(E(name));
        if (hit.NearestBinderAffinity is { } measured) parts.Add($"measured {E(c.Measure)} {measured:F2}");
        return parts.Count == 0 ? "" : $" ({string.Join(", ", parts)})";
    }

    private static string E(string text) => ReportHtml.Encode(text);
}
