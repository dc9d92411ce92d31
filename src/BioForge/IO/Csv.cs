using System.Text;

namespace BioForge.IO;

/// <summary>Minimal RFC 4180 CSV: quoting on write, quoted fields on read.</summary>
public static class Csv
{
    public static string Quote(string field) =>
        field.IndexOfAny([',', '"', '\n', '\r']) < 0 ? field : "\"" + field.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>
    /// What is wrong with a line's quoting, or null: a quote opens a field (after blanks at most) and closes it before a
    /// separator or the end (blanks allowed), doubled inside it. <see cref="Split"/> reads anything; this names what
    /// it would have guessed at (<c>CC"O,eth</c> would read as one field <c>CCO,eth</c>).
    /// </summary>
    public static string? QuotingProblem(string line, char separator = ',')
    {
        bool quoted = false, started = false, closed = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c != '"') continue;
                if (i + 1 < line.Length && line[i + 1] == '"') i++;
                else (quoted, closed) = (false, true);
                continue;
            }
            if (c == separator) (started, closed) = (false, false);
            else if (char.IsWhiteSpace(c)) continue;
            else if (closed) return $"text after a closing quote at column {i + 1}";
            else if (c == '"' && started) return $"a quote inside an unquoted field at column {i + 1}";
            else if (c == '"') quoted = true;
            else started = true;
        }
        return quoted ? "a quoted field is not closed on its line" : null;
    }

    /// <summary>Splits one line into fields (a quoted field may contain commas and doubled quotes, not line breaks).</summary>
    public static List<string> Split(string line, char separator = ',')
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else field.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == separator) { fields.Add(field.ToString()); field.Clear(); }
            else field.Append(c);
        }
        fields.Add(field.ToString());
        return fields;
    }

    /// <summary>Longest row read (checked while reading, see <see cref="LineReader"/>): room for a 1M-residue sequence and its labels.</summary>
    public const int MaxLineLength = 16_000_000;

    /// <summary>
    /// A delimited file's separator, read from its name and header: a tab when the name says .tsv or the header holds
    /// one; a semicolon when the header holds one and no comma (spreadsheets in locales with a decimal comma export
    /// "CSV" so: read with commas, each row was one field, and a header naming "smiles;name" even matched as the SMILES
    /// column); a comma otherwise.
    /// </summary>
    public static char Separator(string path, string header) =>
        Extension(path) == ".tsv" || header.Contains('\t') ? '\t'
        : header.Contains(';') && !header.Contains(',') ? ';'
        : ',';

    /// <summary>The file's own extension, lower case, a <c>.gz</c> aside (a folder named <c>x.tsv.d</c> says nothing).</summary>
    public static string Extension(string path) =>
        Path.GetExtension(path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? path[..^3] : path).ToLowerInvariant();

    /// <summary>
    /// For a number that did not parse: a note when it is written with a decimal comma ("0,5"), as the semicolon-separated
    /// exports of decimal-comma locales write them; empty otherwise.
    /// </summary>
    public static string DecimalCommaNote(string text) =>
        System.Text.RegularExpressions.Regex.IsMatch(text.Trim(), @"^[-+]?\d*,\d+([eE][-+]?\d+)?$")
            ? $" (a decimal comma: write {text.Trim().Replace(',', '.')})" : "";

    /// <summary>
    /// Rows of a delimited text file with a header (separated as <see cref="Separator"/> reads it; gzip recognised by its magic bytes). Blank lines are skipped; line numbers are 1-based; a line
    /// whose quoting is broken (<see cref="QuotingProblem"/>) is an error naming it, unless <paramref name="checkQuoting"/> is
    /// false (a file of our own whose last row a kill may have torn, read by a parser that drops such rows).
    /// </summary>
    /// <remarks>The header is read now and the file closed; the rows open it again when enumerated, so a caller that
    /// refuses the header holds no open file (nor, for gzip, zlib's native buffers).</remarks>
    public static IEnumerable<(int Line, List<string> Fields)> ReadRows(string path, out List<string> header, bool checkQuoting = true)
    {
        if (!File.Exists(path)) throw new BioForgeException($"{path}: file not found");
        char separator;
        using (var reader = LineReader.Open(path, MaxLineLength))
        {
            string? first = reader.ReadLine();
            if (string.IsNullOrWhiteSpace(first)) throw new BioForgeException($"{path}: empty file (expected a header row)");
            separator = Separator(path, first);
            if (checkQuoting && QuotingProblem(first, separator) is { } problem) throw new BioForgeException($"{path}:1: {problem}");
            header = Split(first, separator);
        }
        return Rows(path, separator, checkQuoting);
    }

    private static IEnumerable<(int Line, List<string> Fields)> Rows(string path, char separator, bool checkQuoting)
    {
        using (var reader = LineReader.Open(path, MaxLineLength))
        {
            reader.ReadLine(); // the header, read already
            string? line;
            while ((line = reader.ReadLine()) != null)
            {
                if (line.Trim().Length == 0) continue;
                // Named, not guessed at: Split reads a stray quote as opening a field that swallows the separators after it.
                if (checkQuoting && QuotingProblem(line, separator) is { } problem) throw new BioForgeException($"{path}:{reader.LineNumber}: {problem}");
                yield return (reader.LineNumber, Split(line, separator));
            }
        }
    }

    /// <summary>
    /// A text reader over a plain or gzip-compressed file (recognised by its magic bytes, not its name); a truncated or
    /// damaged gzip file is an error naming it (<see cref="CheckedGzipStream"/>).
    /// </summary>
    public static StreamReader OpenText(string path)
    {
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        Span<byte> magic = stackalloc byte[2];
        int n = stream.Read(magic);
        stream.Position = 0;
        Stream source = n == 2 && magic[0] == 0x1f && magic[1] == 0x8b ? new CheckedGzipStream(stream, path) : stream;
        return new StreamReader(source, MarkedUtf8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
    }

    /// <summary>
    /// A byte UTF-8 does not allow (a Latin-1 'é' from a spreadsheet export) decodes as this noncharacter, which no
    /// text holds, instead of U+FFFD, which a text may: <see cref="LineReader"/> refuses it at its line and column.
    /// </summary>
    internal const char InvalidByte = '\uFDD0';

    private static readonly Encoding MarkedUtf8 = Encoding.GetEncoding("utf-8", EncoderFallback.ExceptionFallback, new DecoderReplacementFallback(InvalidByte.ToString()));
}
