namespace BioForge.Proteins;

/// <summary>
/// How a protein longer than ESM-2 reads at once is read, as ProteinGym reads one: windows of the 1,024 tokens ESM-2 was
/// trained on (its crops, &lt;cls&gt; and &lt;eos&gt; included) cut from the whole framed sequence
/// [&lt;cls&gt;, residues…, &lt;eos&gt;], so a window inside the protein has no start or end token. A masked site is read in
/// the window centred on it (ProteinGym's "optimal" window, moved inwards at the ends); a whole sequence is embedded in
/// windows evenly spaced at most half a window apart (ProteinGym steps from both ends), each position weighted down
/// towards its window's edges (after ProteinGym's "overlapping" weights, which it applies to logits) before the windows
/// are averaged. A model with more positions still reads 1,024 tokens a window.
/// </summary>
internal static class ResidueWindows
{
    public const int TrainedTokens = 1024;

    /// <summary>The window's length in tokens for a model of <paramref name="maxTokens"/> positions.</summary>
    public static int Width(int maxTokens) => Math.Min(maxTokens, TrainedTokens);

    /// <summary>
    /// The tokens one pass reads around a masked site of a <paramref name="tokens"/>-token sequence: all of them up to the
    /// window's width, else a window — also for the 1,025–1,026 tokens an ESM-2 checkpoint's 1,026 positions would hold,
    /// where ProteinGym's scoring switches to windows (above the 1,024 tokens ESM-2 trained on).
    /// </summary>
    public static int ReadWidth(int tokens, int maxTokens) => Math.Min(tokens, Width(maxTokens));

    /// <summary>First token of the <paramref name="width"/>-token window around token <paramref name="at"/> of a <paramref name="tokens"/>-token sequence.</summary>
    public static int Centred(int tokens, int at, int width) => tokens <= width ? 0 : Math.Clamp(at - width / 2, 0, tokens - width);

    /// <summary>First tokens of the windows covering a <paramref name="tokens"/>-token sequence: evenly spaced, at most half a width apart.</summary>
    public static int[] Tiling(int tokens, int width)
    {
        if (tokens <= width) return [0];
        int windows = (int)Math.Ceiling((tokens - width) / (double)Math.Max(1, width / 2)) + 1;
        return [.. Enumerable.Range(0, windows).Select(k => (int)Math.Round((double)k * (tokens - width) / (windows - 1)))];
    }

    /// <summary>
    /// The weight of a window's position in the average: 1 in the middle, falling as a sigmoid over the quarter window at
    /// each edge, where the model sees context on one side only (for 1,024 tokens ProteinGym's 1 / (1 + e^−(d − 128)/16)
    /// at d tokens from the edge, d &lt; 256).
    /// </summary>
    public static double Weight(int position, int width)
    {
        double edge = Math.Min(position, width - 1 - position), ramp = width / 4.0;
        return edge >= ramp ? 1 : 1 / (1 + Math.Exp(-(edge - ramp / 2) / (ramp / 16)));
    }

    /// <summary>
    /// The tokens a masked site is read in, and the masked token's index there: the whole sequence when it is no longer
    /// than a window (<see cref="ReadWidth"/>), otherwise the window centred on the site.
    /// </summary>
    /// <param name="tokens">The whole sequence: [&lt;cls&gt;, one token per residue…, &lt;eos&gt;].</param>
    /// <param name="at">The site's token index (1 … residues).</param>
    public static (int[] Tokens, int At) MaskedSite(int[] tokens, int at, int maxTokens, int maskId)
    {
        int width = ReadWidth(tokens.Length, maxTokens);
        int start = Centred(tokens.Length, at, width);
        var window = tokens[start..(start + width)];
        window[at - start] = maskId;
        return (window, at - start);
    }
}
