using System.Net;
using BioForge.Chem;

namespace BioForge.Discovery;

/// <summary>What the HTML reports share: one style sheet, RDKit depictions inline, escaping.</summary>
internal static class ReportHtml
{
    public static string Depiction(string smiles)
    {
        if (!Molecule.TryFromSmiles(smiles, out var molecule, out _)) return "";
        using (molecule)
        {
            string svg = molecule!.ToSvg(260, 200);
            int start = svg.IndexOf("<svg", StringComparison.Ordinal);
            return start < 0 ? "" : svg[start..]; // drop the XML declaration: the SVG sits inside the HTML
        }
    }

    public static string Encode(string text) => WebUtility.HtmlEncode(text);

    public const string Style = """
        body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px 40px;color:#222}
        header h1{margin-bottom:4px}.meta{color:#666;margin-top:0}
        h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
        .cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:12px}
        .card{border:1px solid #ddd;border-radius:8px;margin:0;padding:6px;background:#fff}
        .card svg{width:100%;height:auto}
        figcaption{font-size:13px;line-height:1.4}.score{color:#1a6;font-weight:bold}
        .smiles{font-size:11px;word-break:break-all;color:#555}.alert{color:#b60}.score.outside{color:#888;font-weight:normal}tr.outside td{color:#888}
        .charts{display:flex;flex-wrap:wrap;gap:16px}
        table{border-collapse:collapse;font-size:13px;margin-top:16px}
        th,td{border-bottom:1px solid #eee;padding:3px 8px;text-align:left;vertical-align:top}
        table.hits code{font-size:11px;word-break:break-all}
        footer{margin-top:32px;color:#777;font-size:12px}
        """;
}
