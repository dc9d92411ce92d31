namespace BioForge.Proteins;

/// <summary>How two protein sequences align where they are most alike (Smith–Waterman).</summary>
/// <param name="Identity">Identical residue pairs (the same letter, either case) over the alignment's columns (gaps included).</param>
/// <param name="Coverage">Share of the first sequence inside the alignment.</param>
public sealed record LocalAlignmentResult(int Score, double Identity, double Coverage, int Columns);

/// <summary>
/// Local alignment of protein sequences with BLAST's protein defaults: BLOSUM62, gaps cost 11 to open and 1 per residue
/// (a gap of k residues: 11 + k). A score-only pass in linear memory ranks many sequences; the alignment itself (for
/// identity and coverage) is traced back for the ones that matter.
/// </summary>
internal static class LocalAlignment
{
    private const int GapOpen = 12; // existence 11 + the first residue's extension
    private const int GapExtend = 1;

    private const string Alphabet = "ARNDCQEGHILKMFPSTWYVBZX*";

    /// <summary>NCBI's BLOSUM62 (public domain), in <see cref="Alphabet"/>'s order.</summary>
    private static readonly int[][] Blosum62 =
    [
        [4, -1, -2, -2, 0, -1, -1, 0, -2, -1, -1, -1, -1, -2, -1, 1, 0, -3, -2, 0, -2, -1, 0, -4],
        [-1, 5, 0, -2, -3, 1, 0, -2, 0, -3, -2, 2, -1, -3, -2, -1, -1, -3, -2, -3, -1, 0, -1, -4],
        [-2, 0, 6, 1, -3, 0, 0, 0, 1, -3, -3, 0, -2, -3, -2, 1, 0, -4, -2, -3, 3, 0, -1, -4],
        [-2, -2, 1, 6, -3, 0, 2, -1, -1, -3, -4, -1, -3, -3, -1, 0, -1, -4, -3, -3, 4, 1, -1, -4],
        [0, -3, -3, -3, 9, -3, -4, -3, -3, -1, -1, -3, -1, -2, -3, -1, -1, -2, -2, -1, -3, -3, -2, -4],
        [-1, 1, 0, 0, -3, 5, 2, -2, 0, -3, -2, 1, 0, -3, -1, 0, -1, -2, -1, -2, 0, 3, -1, -4],
        [-1, 0, 0, 2, -4, 2, 5, -2, 0, -3, -3, 1, -2, -3, -1, 0, -1, -3, -2, -2, 1, 4, -1, -4],
        [0, -2, 0, -1, -3, -2, -2, 6, -2, -4, -4, -2, -3, -3, -2, 0, -2, -2, -3, -3, -1, -2, -1, -4],
        [-2, 0, 1, -1, -3, 0, 0, -2, 8, -3, -3, -1, -2, -1, -2, -1, -2, -2, 2, -3, 0, 0, -1, -4],
        [-1, -3, -3, -3, -1, -3, -3, -4, -3, 4, 2, -3, 1, 0, -3, -2, -1, -3, -1, 3, -3, -3, -1, -4],
        [-1, -2, -3, -4, -1, -2, -3, -4, -3, 2, 4, -2, 2, 0, -3, -2, -1, -2, -1, 1, -4, -3, -1, -4],
        [-1, 2, 0, -1, -3, 1, 1, -2, -1, -3, -2, 5, -1, -3, -1, 0, -1, -3, -2, -2, 0, 1, -1, -4],
        [-1, -1, -2, -3, -1, 0, -2, -3, -2, 1, 2, -1, 5, 0, -2, -1, -1, -1, -1, 1, -3, -1, -1, -4],
        [-2, -3, -3, -3, -2, -3, -3, -3, -1, 0, 0, -3, 0, 6, -4, -2, -2, 1, 3, -1, -3, -3, -1, -4],
        [-1, -2, -2, -1, -3, -1, -1, -2, -2, -3, -3, -1, -2, -4, 7, -1, -1, -4, -3, -2, -2, -1, -2, -4],
        [1, -1, 1, 0, -1, 0, 0, 0, -1, -2, -2, 0, -1, -2, -1, 4, 1, -3, -2, -2, 0, 0, 0, -4],
        [0, -1, 0, -1, -1, -1, -1, -2, -2, -1, -1, -1, -1, -2, -1, 1, 5, -2, -2, 0, -1, -1, 0, -4],
        [-3, -3, -4, -4, -2, -2, -3, -2, -2, -3, -2, -3, -1, 1, -4, -3, -2, 11, 2, -3, -4, -3, -2, -4],
        [-2, -2, -2, -3, -2, -1, -2, -3, 2, -1, -1, -2, -1, 3, -3, -2, -2, 2, 7, -1, -3, -2, -1, -4],
        [0, -3, -3, -3, -1, -2, -2, -3, -3, 3, 1, -2, 1, -1, -2, -2, 0, -3, -1, 4, -3, -2, -1, -4],
        [-2, -1, 3, 4, -3, 0, 1, -1, 0, -3, -4, 0, -3, -3, -2, 0, -1, -4, -3, -3, 4, 1, -1, -4],
        [-1, 0, 0, 1, -3, 3, 4, -2, 0, -3, -3, 1, -1, -3, -1, 0, -1, -3, -2, -2, 1, 4, -1, -4],
        [0, -1, -1, -1, -2, -1, -1, -1, -1, -1, -1, -1, -1, -1, -2, 0, 0, -2, -1, -1, -1, -1, -1, -4],
        [-4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, 1],
    ];

    /// <summary>Indices into BLOSUM62; selenocysteine (U) and pyrrolysine (O), absent from it, and anything else count as X.</summary>
    private static byte[] Encode(string sequence)
    {
        var codes = new byte[sequence.Length];
        int x = Alphabet.IndexOf('X');
        for (int i = 0; i < sequence.Length; i++)
        {
            int k = Alphabet.IndexOf(char.ToUpperInvariant(sequence[i]));
            codes[i] = (byte)(k < 0 ? x : k);
        }
        return codes;
    }

    /// <summary>The best local alignment score, in memory linear in the second sequence's length.</summary>
    public static int Score(string first, string second)
    {
        byte[] a = Encode(first), b = Encode(second);
        int m = b.Length, best = 0;
        var h = new int[m + 1];
        var f = new int[m + 1]; // best score ending in a gap in the second sequence, per column
        Array.Fill(f, int.MinValue / 2);
        for (int i = 1; i <= a.Length; i++)
        {
            int[] row = Blosum62[a[i - 1]];
            int diagonal = 0, e = int.MinValue / 2, left = 0;
            for (int j = 1; j <= m; j++)
            {
                e = Math.Max(left - GapOpen, e - GapExtend);
                f[j] = Math.Max(h[j] - GapOpen, f[j] - GapExtend);
                int score = Math.Max(Math.Max(0, diagonal + row[b[j - 1]]), Math.Max(e, f[j]));
                diagonal = h[j];
                h[j] = left = score;
                if (score > best) best = score;
            }
        }
        return best;
    }

    /// <summary>The best local alignment with its identity and coverage (memory: one byte per cell).</summary>
    public static LocalAlignmentResult Align(string first, string second)
    {
        byte[] a = Encode(first), b = Encode(second);
        int n = a.Length, m = b.Length;
        // Per cell: bits 0–1 where H came from (0 start, 1 diagonal, 2 gap in the first sequence, 3 gap in the second);
        // bit 2: that gap in the first was extended (else opened); bit 3: likewise in the second.
        var trace = new byte[(n + 1) * (m + 1)];
        var h = new int[m + 1];
        var f = new int[m + 1];
        Array.Fill(f, int.MinValue / 2);
        int best = 0, bestI = 0, bestJ = 0;
        for (int i = 1; i <= n; i++)
        {
            int[] row = Blosum62[a[i - 1]];
            int diagonal = 0, e = int.MinValue / 2, left = 0;
            for (int j = 1; j <= m; j++)
            {
                byte cell = 0;
                if (e - GapExtend > left - GapOpen) { e -= GapExtend; cell |= 4; }
                else e = left - GapOpen;
                if (f[j] - GapExtend > h[j] - GapOpen) { f[j] -= GapExtend; cell |= 8; }
                else f[j] = h[j] - GapOpen;
                int match = diagonal + row[b[j - 1]], score = 0;
                if (match > score) { score = match; cell = (byte)((cell & ~3) | 1); }
                if (e > score) { score = e; cell = (byte)((cell & ~3) | 2); }
                if (f[j] > score) { score = f[j]; cell = (byte)((cell & ~3) | 3); }
                trace[i * (m + 1) + j] = cell;
                diagonal = h[j];
                h[j] = left = score;
                if (score > best) (best, bestI, bestJ) = (score, i, j);
            }
        }
        int identical = 0, columns = 0, state = 0, endI = bestI; // state 0: H, 2: gap in the first, 3: gap in the second
        int ci = bestI, cj = bestJ;
        while (ci > 0 && cj > 0)
        {
            byte cell = trace[ci * (m + 1) + cj];
            if (state == 0)
            {
                int from = cell & 3;
                if (from == 0) break;
                if (from == 1)
                {
                    columns++;
                    // Letters, not matrix rows: U and O share X's row but are not the same residue (Biopython counts letters too).
                    if (char.ToUpperInvariant(first[ci - 1]) == char.ToUpperInvariant(second[cj - 1])) identical++;
                    ci--;
                    cj--;
                }
                else state = from;
            }
            else if (state == 2)
            {
                columns++;
                cj--;
                state = (cell & 4) != 0 ? 2 : 0;
            }
            else
            {
                columns++;
                ci--;
                state = (cell & 8) != 0 ? 3 : 0;
            }
        }
        return new LocalAlignmentResult(best, columns == 0 ? 0 : (double)identical / columns, n == 0 ? 0 : (double)(endI - ci) / n, columns);
    }
}
