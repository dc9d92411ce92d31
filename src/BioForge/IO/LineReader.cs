using System.Text;

namespace BioForge.IO;

/// <summary>
/// Reads text lines (LF or CRLF) like <see cref="StreamReader.ReadLine"/>, but refuses a line longer than a limit
/// as soon as it passes it: a file without line breaks, or a small gzip that expands to gigabytes, then fails at the
/// limit with bounded memory instead of growing one string until the process runs out of memory. A NUL character
/// (binary data) and bytes that are not UTF-8 (read through <see cref="Csv.OpenText"/>) are refused too.
/// </summary>
public sealed class LineReader : IDisposable
{
    private readonly TextReader reader;
    private readonly char[] buffer = new char[1 << 16];
    private readonly StringBuilder line = new();
    private int start, end;
    private bool ended;

    /// <param name="path">Names the file in messages.</param>
    /// <param name="maxLength">Longest line accepted, in characters (line break excluded).</param>
    public LineReader(TextReader reader, string path, int maxLength)
    {
        this.reader = reader;
        Path = path;
        MaxLength = maxLength;
    }

    /// <summary>A reader over a plain or gzip-compressed file (see <see cref="Csv.OpenText"/>).</summary>
    public static LineReader Open(string path, int maxLength) => new(Csv.OpenText(path), path, maxLength);

    public string Path { get; }

    public int MaxLength { get; }

    /// <summary>1-based number of the last line returned (0 before the first).</summary>
    public int LineNumber { get; private set; }

    /// <summary>The next line without its line break, or null at the end of the file.</summary>
    public string? ReadLine() => ReadLine(MaxLength);

    /// <summary>
    /// The next line, refused with a message naming the file and line when longer than <paramref name="maxLength"/>
    /// (a caller's tighter limit, for example what is left of a record's budget); <paramref name="tooLong"/> words the
    /// message from the line number when the caller knows more (the record).
    /// </summary>
    public string? ReadLine(int maxLength, Func<int, string>? tooLong = null)
    {
        line.Clear();
        bool any = false;
        while (true)
        {
            if (start == end)
            {
                start = 0;
                if (ended || (end = reader.Read(buffer, 0, buffer.Length)) == 0)
                {
                    // Emptied for the next call too: a last line without a line break must not leave start past end.
                    end = 0;
                    ended = true;
                    if (!any) return null;
                    break;
                }
            }
            any = true;
            int length = buffer.AsSpan(start, end - start).IndexOf('\n');
            int take = length < 0 ? end - start : length;
            if (line.Length + take > maxLength + 1) // one more for a CR before the LF
                throw TooLong(LineNumber + 1, maxLength, tooLong);
            // Text never holds NUL; a NUL means a binary file (a picture, an archive, a model), not a table of records.
            if (buffer.AsSpan(start, take).Contains('\0'))
                throw new BioForgeException($"{Path}:{LineNumber + 1}: binary data (a NUL byte), not a text file");
            line.Append(buffer, start, take);
            start += take;
            if (length >= 0)
            {
                start++;
                break;
            }
        }
        LineNumber++;
        if (line.Length > 0 && line[^1] == '\r') line.Length--;
        if (line.Length > maxLength) throw TooLong(LineNumber, maxLength, tooLong);
        string text = line.ToString();
        if (text.IndexOf(Csv.InvalidByte) is int column and >= 0)
            throw new BioForgeException($"{Path}:{LineNumber}:{column + 1}: not UTF-8 text (a byte UTF-8 does not allow: a binary file, or a spreadsheet's Latin-1 export? iconv -f latin1 -t utf-8 converts one)");
        return text;
    }

    private BioForgeException TooLong(int number, int limit, Func<int, string>? message) =>
        new(message?.Invoke(number) ?? $"{Path}:{number}: line longer than {limit:N0} characters (is this the right file?)");

    public void Dispose() => reader.Dispose();
}
