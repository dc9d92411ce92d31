namespace BioForge.Proteins;

/// <summary>
/// How a protein longer than ESM-2 reads at once (1,022 residues) is read: a site is scored in the window of that many
/// residues centred on it (ESM-1v's and ProteinGym's rule, moved inwards at the sequence's ends), and a whole sequence
/// is embedded in windows overlapping by half. Each window is framed by &lt;cls&gt; and &lt;eos&gt; like a sequence of its own.
/// </summary>
internal static class ResidueWindows
{
    /// <summary>0-based first residue of the <paramref name="width"/>-residue window centred on residue <paramref name="site"/> (0-based).</summary>
    public static int Centred(int length, int site, int width) => Math.Clamp(site - width / 2, 0, Math.Max(0, length - width));

    /// <summary>First residues (0-based) of windows covering the sequence: one every half width, the last ending where the sequence ends.</summary>
    public static IEnumerable<int> Tiling(int length, int width)
    {
        int stride = Math.Max(1, width / 2);
        for (int start = 0; ; start += stride)
        {
            if (start + width >= length)
            {
                yield return Math.Max(0, length - width);
                yield break;
            }
            yield return start;
        }
    }

    /// <summary>
    /// The tokens a masked site is read in, and the masked token's index there: the whole sequence when it fits,
    /// otherwise the <paramref name="width"/> residues centred on the site between the sequence's own start and end tokens.
    /// </summary>
    /// <param name="tokens">The whole sequence: [&lt;cls&gt;, one token per residue…, &lt;eos&gt;].</param>
    /// <param name="site">The site's token index (1 … residues).</param>
    public static (int[] Tokens, int At) MaskedSite(int[] tokens, int site, int width, int maskId)
    {
        int residues = tokens.Length - 2;
        int start = residues <= width ? 0 : Centred(residues, site - 1, width);
        int kept = Math.Min(residues, width);
        var window = new int[kept + 2];
        window[0] = tokens[0];
        window[^1] = tokens[^1];
        Array.Copy(tokens, 1 + start, window, 1, kept);
        window[site - start] = maskId;
        return (window, site - start);
    }
}
