using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using BioForge.Imaging;
using BioForge.IO;

namespace BioForge.Discovery;

/// <summary>
/// <c>report.html</c> of an optimization run, beside its ranked.csv: the best molecules drawn with each component's value
/// and score, how the run went (mean score, validity and scaffolds per step), and the scoring function as configured —
/// one self-contained page, as <see cref="DiscoveryReport"/>.
/// </summary>
internal static class OptimizationReport
{
    public const string FileName = "report.html";

    private const int CardCount = 24;
    private const int TableRows = 100;

    /// <summary>One step of metrics.jsonl.</summary>
    public sealed record StepPoint(int Step, double MeanScore, double Valid, double Unique, int Scaffolds);

    public static void Write(string path, OptimizeConfig config, OptimizeResult result, IReadOnlyList<StepPoint> steps) =>
        AtomicFile.WriteText(path, Render(config, result, steps));

    /// <summary>The run's metrics.jsonl, the steps written so far (a torn last line from a kill is left out).</summary>
    public static IReadOnlyList<StepPoint> ReadSteps(string metricsPath)
    {
        if (!File.Exists(metricsPath)) return [];
        var points = new List<StepPoint>();
        foreach (string line in File.ReadLines(metricsPath))
        {
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(line);
            }
            catch (System.Text.Json.JsonException)
            {
                continue;
            }
            // Runs written by earlier versions lack some keys: a missing value is NaN (0 scaffolds), never the end of the report.
            double Number(string key) => node?[key] is JsonValue v && v.TryGetValue<double>(out double d) ? d : double.NaN;
            double step = Number("step");
            if (double.IsNaN(step)) continue;
            double scaffolds = Number("scaffolds");
            points.Add(new StepPoint((int)step, Number("mean_score"), Number("valid"), Number("unique"), double.IsNaN(scaffolds) ? 0 : (int)scaffolds));
        }
        return points;
    }

    public static string Render(OptimizeConfig config, OptimizeResult result, IReadOnlyList<StepPoint> steps)
    {
        var final = config.Stages[^1];
        var labels = result.ComponentLabels;
        string title = $"Optimization: {Path.GetFileName(result.Directory.TrimEnd('/'))}";
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        html.Append($"<title>{E(title)}</title><style>{ReportHtml.Style}</style></head><body>\n");
        html.Append($"<header><h1>{E(title)}</h1><p class=\"meta\">BioForge · {DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)} UTC · "
            + $"{result.Steps} steps, {result.Scored:N0} molecules scored{(result.Interrupted ? " · <b>stopped before its end</b> (resume to finish)" : "")}</p></header>\n");

        var ranked = result.Ranked;
        html.Append($"<section id=\"best\"><h2>Best molecules</h2><p>Ranked by the final stage's score ({E(final.Aggregate)} mean of the components below"
            + (final.Components.Any(c => c.IsPenalty) ? ", times the penalties" : "") + "); each component as its raw value and, in brackets, its score in [0, 1].</p>");
        if (ranked.Count == 0) html.Append("<p>No valid molecule was scored.</p>");
        else
        {
            html.Append("<div class=\"cards\">");
            foreach (var m in ranked.Take(CardCount))
            {
                html.Append("<figure class=\"card\">").Append(ReportHtml.Depiction(m.Canonical));
                html.Append($"<figcaption><b>#{m.Rank}</b> <span class=\"score\">score {m.Score:F3}</span> · step {m.Step}");
                for (int c = 0; c < labels.Count && c < m.Raw.Length; c++) html.Append($"<br>{E(labels[c])} {Value(m.Raw[c])} ({m.Transformed[c]:F2})");
                html.Append($"<br><code class=\"smiles\">{E(m.Canonical)}</code></figcaption></figure>");
            }
            html.Append("</div>\n<table class=\"hits\"><thead><tr><th>rank</th><th>SMILES</th><th>score</th><th>step</th><th>stage</th>");
            foreach (string label in labels) html.Append($"<th>{E(label)}</th>");
            html.Append("</tr></thead><tbody>");
            foreach (var m in ranked.Take(TableRows))
            {
                html.Append($"<tr><td>{m.Rank}</td><td><code>{E(m.Canonical)}</code></td><td>{m.Score:F3}</td><td>{m.Step}</td><td>{E(m.Stage)}</td>");
                for (int c = 0; c < labels.Count; c++) html.Append($"<td>{(c < m.Raw.Length ? Value(m.Raw[c]) : "")}</td>");
                html.Append("</tr>");
            }
            html.Append("</tbody></table>");
        }
        html.Append("</section>\n");

        if (steps.Count > 0)
        {
            double[] x = [.. steps.Select(p => (double)p.Step)];
            html.Append("<section id=\"progress\"><h2>The run</h2><div class=\"charts\">");
            html.Append(SvgChart.Line(x, [.. steps.Select(p => p.MeanScore)], "Mean score of each sampled batch", "step", "mean score"));
            html.Append(SvgChart.Lines([("valid", x, [.. steps.Select(p => p.Valid)]), ("new to the run", x, [.. steps.Select(p => p.Unique)])],
                "Valid and new molecules per batch", "step", "fraction"));
            html.Append(SvgChart.Line(x, [.. steps.Select(p => (double)p.Scaffolds)], "Distinct Murcko scaffolds per step", "step", "scaffolds"));
            if (ranked.Count > 1) html.Append(SvgChart.Histogram([.. ranked.Select(m => m.Score)], $"Scores of the {ranked.Count} best", "score", 20));
            html.Append("</div>");
            if (result.StageEndings.Count > 0)
            {
                html.Append("<ul>");
                foreach (string ending in result.StageEndings) html.Append($"<li>{E(ending)}</li>");
                html.Append("</ul>");
            }
            html.Append("</section>\n");
        }

        html.Append("<section id=\"scoring\"><h2>Scoring function</h2>");
        for (int s = 0; s < config.Stages.Count; s++)
        {
            var stage = config.Stages[s];
            html.Append($"<h3>Stage {s + 1}: {E(OptimizationSession.StageName(config, s))} ({E(stage.Aggregate)} mean, {stage.MinSteps}–{stage.MaxSteps} steps)</h3>");
            html.Append("<table><thead><tr><th>component</th><th>type</th><th>weight</th><th>transform</th><th>settings</th></tr></thead><tbody>");
            foreach (var c in stage.Components)
                html.Append($"<tr><td>{E(c.Label)}</td><td>{E(c.Type)}</td><td>{(c.IsPenalty ? "penalty" : c.Weight.ToString("G4", CultureInfo.InvariantCulture))}</td>"
                    + $"<td>{E(c.IsStructuralPenalty ? "" : Transform(c.Transform))}</td><td>{E(Settings(c))}</td></tr>");
            html.Append("</tbody></table>");
        }
        html.Append("</section>\n<section id=\"parameters\"><h2>Run parameters</h2><table>");
        var l = config.Learning;
        foreach (var (key, value) in new (string, string)[]
        {
            ("prior", config.Prior.Model),
            ("sampling", $"{config.Sampling.BatchSize} molecules a step, temperature {config.Sampling.Temperature:G3}, up to {config.Sampling.MaxLength} tokens"),
            ("learning", $"{l.Strategy}, σ {l.Sigma:G4}, learning rate {l.Lr:G3}" + (l.GeneticOffspring > 0 ? $", up to {l.GeneticOffspring} bred children a step" : "")),
            ("diversity filter", config.DiversityFilter.Kind == "none" ? "none" : $"{config.DiversityFilter.Kind}, buckets of {config.DiversityFilter.BucketSize}, minimum score {config.DiversityFilter.MinimumScore:G3}"),
            ("oracle budget", config.Budget.OracleCalls > 0 ? config.Budget.OracleCalls.ToString("N0", CultureInfo.InvariantCulture) + " calls" : "none"),
            ("seed", config.Seed.ToString(CultureInfo.InvariantCulture)),
            ("output", result.Directory),
        })
            html.Append($"<tr><th>{E(key)}</th><td>{E(value)}</td></tr>");
        html.Append("</table></section>\n<footer>Scores are the run's own scoring function; a predicted property or affinity ranks molecules for follow-up and is not a measurement.</footer></body></html>\n");
        return html.ToString();
    }

    private static string Value(double v) => double.IsNaN(v) ? "—" : Math.Abs(v) >= 100 ? v.ToString("F0", CultureInfo.InvariantCulture) : v.ToString("G3", CultureInfo.InvariantCulture);

    internal static string Transform(TransformSettings t) => t.Kind switch
    {
        "identity" => "identity",
        "gaussian" or "min_gaussian" or "max_gaussian" => $"{t.Kind} (μ {t.Mu:G4}, σ {t.Sigma:G4})",
        "step" => $"step [{Bound(t.Low)}, {Bound(t.High)}]",
        // Clipped is a line from low (score 0) to high (score 1): no steepness; low may exceed high (a falling line).
        "clipped" => $"clipped ({t.Low:G4} → {t.High:G4})",
        "double_sigmoid" when t.KHigh is { } kHigh && kHigh != t.K => $"double_sigmoid ({t.Low:G4}–{t.High:G4}, k {t.K:G3}, k_high {kHigh:G3})",
        _ => $"{t.Kind} ({t.Low:G4}–{t.High:G4}, k {t.K:G3})",
    };

    private static string Bound(double v) => v <= double.MinValue ? "−∞" : v >= double.MaxValue ? "∞" : v.ToString("G6", CultureInfo.InvariantCulture);

    private static string Settings(ComponentSettings c) => c.Type switch
    {
        "similarity" => $"{c.Fingerprint}, radius {c.Radius}: {string.Join(", ", c.Smiles)}",
        "substructure" or "forbidden_substructure" or "matching_substructure" => string.Join(", ", c.Smarts),
        "filters" => string.Join(", ", c.Catalogs) + (c.Allow.Length > 0 ? $" (not counting {string.Join(", ", c.Allow)})" : ""),
        "affinity" => $"{c.Model}, target {(c.Target is null ? null : Spelling.Excerpt(c.Target))}",
        "qsar" => c.Model ?? "",
        "pmo" => c.Task ?? "",
        "external_process" => $"{c.Executable} {c.Args}".Trim(),
        "element_count" => c.Element ?? "",
        "isomer" => c.Formula ?? "",
        _ => "",
    };

    private static string E(string text) => ReportHtml.Encode(text);
}
