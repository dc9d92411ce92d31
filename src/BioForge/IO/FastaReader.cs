using System.Text;

namespace BioForge.IO;

/// <summary>One FASTA record; <see cref="Line"/> is the 1-based line of its header.</summary>
public sealed record FastaRecord(string Id, string Description, string Sequence, int Line)
{
    /// <summary>Where the record is, as messages name it: <c>file:line</c> when read from a file.</summary>
    public string Where { get; init; } = $"line {Line}";
}

/// <summary>
/// Streams FASTA records (plain or gzip, LF or CRLF, sequences over many lines) holding one record at a time.
/// Empty records, text before the first header and letters outside the alphabet are errors naming the file,
/// record and line.
/// </summary>
public static class FastaReader
{
    /// <summary>The ESM-2 residue letters (20 canonical, X B U Z O, gap and insertion symbols).</summary>
    public const string ProteinAlphabet = "ACDEFGHIKLMNPQRSTVWYXBUZO.-";

    /// <summary>
    /// Longest record accepted, in residues: 25 times titin, the longest known protein. Checked while reading, so
    /// a file without line breaks or a small gzip expanding to gigabytes fails at this size with bounded memory.
    /// </summary>
    public const int MaxSequenceLength = 1_000_000;

    public static IEnumerable<FastaRecord> Read(string path, string? alphabet = ProteinAlphabet)
    {
        if (!File.Exists(path)) throw new BioForgeException($"{path}: FASTA file not found");
        return ReadCore(path, alphabet);
    }

    private static IEnumerable<FastaRecord> ReadCore(string path, string? alphabet)
    {
        var allowed = new bool[128];
        if (alphabet is not null)
            foreach (char c in alphabet) { allowed[char.ToUpperInvariant(c)] = true; allowed[char.ToLowerInvariant(c)] = true; }

        using var reader = LineReader.Open(path, MaxSequenceLength);
        string? id = null, description = null;
        int headerLine = 0, lineNumber = 0, records = 0;
        var sequence = new StringBuilder();
        (int Line, int Column)? stopAt = null;
        string? line;

        void Append(char c, int atLine, int column)
        {
            if (alphabet is not null && (c >= 128 || !allowed[c]))
                throw new BioForgeException($"{path}:{atLine}: record '{id}': invalid residue '{Printable(c)}' at column {column}");
            sequence.Append(c);
        }
        // Neither one line nor one record grows past the limit before it is refused.
        while ((line = reader.ReadLine(MaxSequenceLength, id is null ? null : n => $"{path}:{n}: record '{id}' is longer than {MaxSequenceLength:N0} residues")) != null)
        {
            lineNumber = reader.LineNumber;
            if (line.StartsWith('>'))
            {
                if (id is not null)
                {
                    yield return Finish(path, id, description!, sequence, headerLine);
                    records++;
                }
                (id, description) = ParseHeader(path, line, lineNumber);
                stopAt = null;
                headerLine = lineNumber;
                sequence.Clear();
                continue;
            }
            string text = line.Trim();
            if (text.Length == 0 || text.StartsWith(';')) continue;
            if (id is null) throw new BioForgeException($"{path}:{lineNumber}: sequence text before the first '>' header (is this a FASTA file?)");
            // A '*' ending a line is the record's terminal stop codon (not a residue) only if no sequence follows it.
            if (stopAt is { } stop)
            {
                Append('*', stop.Line, stop.Column);
                stopAt = null;
            }
            int indent = line.Length - line.TrimStart().Length; // columns count in the line as written
            for (int i = 0; i < text.Length; i++)
            {
                if (text[i] == '*' && i == text.Length - 1) stopAt = (lineNumber, indent + i + 1);
                else Append(text[i], lineNumber, indent + i + 1);
            }
            if (sequence.Length > MaxSequenceLength)
                throw new BioForgeException($"{path}:{lineNumber}: record '{id}' is longer than {MaxSequenceLength:N0} residues");
        }
        if (id is not null)
        {
            yield return Finish(path, id, description!, sequence, headerLine);
            records++;
        }
        if (records == 0) throw new BioForgeException($"{path}: no FASTA records (the file is empty or has no '>' header)");
    }

    private static (string Id, string Description) ParseHeader(string path, string line, int lineNumber)
    {
        string header = line[1..].Trim();
        int space = header.IndexOfAny([' ', '\t']);
        string id = space < 0 ? header : header[..space];
        if (id.Length == 0) throw new BioForgeException($"{path}:{lineNumber}: FASTA header without an id");
        return (id, space < 0 ? "" : header[(space + 1)..].Trim());
    }

    private static FastaRecord Finish(string path, string id, string description, StringBuilder sequence, int line)
    {
        if (sequence.Length == 0) throw new BioForgeException($"{path}:{line}: record '{id}' has an empty sequence");
        return new FastaRecord(id, description, sequence.ToString(), line) { Where = $"{path}:{line}" };
    }

    private static string Printable(char c) => char.IsControl(c) ? $"\\u{(int)c:X4}" : c.ToString();
}
