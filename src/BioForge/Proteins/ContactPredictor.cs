using System.Globalization;
using BioForge.IO;
using BioForge.Models.Esm;
using static TorchSharp.torch;

namespace BioForge.Proteins;

public static class ContactPredictor
{
    /// <summary>The longest sequence read in windows: its map already holds 67 million pairs (a quarter of a GB as floats, more as CSV).</summary>
    public const int MaxWindowedResidues = 8192;

    /// <summary>
    /// Contact probabilities [residues, residues] for one sequence. A sequence longer than the model reads is read in
    /// overlapping windows of as many residues as it reads, each framed by &lt;cls&gt; and &lt;eos&gt; as the contact head
    /// was fitted, evenly spaced at most half a window apart (<see cref="ResidueWindows.Tiling"/>); a pair's probability
    /// is the mean over the windows holding both residues, weighted towards each window's middle
    /// (<see cref="ResidueWindows.Weight"/>), and NaN for a pair no window holds: windows start at most half a window
    /// apart, so pairs up to half a window apart always have a value, farther ones only where one window holds both.
    /// </summary>
    public static float[,] Predict(EsmCheckpoint model, string sequence)
    {
        var tokens = SingleSequence.Encode(model, sequence, windowed: true);
        int residues = tokens.Length - 2, width = WindowResidues(model);
        if (residues <= model.Config.MaxResidues) return Map(model, tokens);
        if (residues > MaxWindowedResidues)
            throw new BioForgeException($"the sequence has {residues} residues; a contact map is predicted for at most {MaxWindowedResidues} (its {residues}² pairs would not fit a file one reads)");

        var sum = new float[residues, residues];
        var weights = new float[residues, residues];
        var edge = Enumerable.Range(0, width).Select(i => (float)ResidueWindows.Weight(i, width)).ToArray();
        foreach (int start in ResidueWindows.Tiling(residues, width))
        {
            int[] window = [tokens[0], .. tokens[(1 + start)..(1 + start + width)], tokens[^1]];
            var map = Map(model, window);
            for (int i = 0; i < width; i++)
                for (int j = 0; j < width; j++)
                {
                    float w = edge[i] * edge[j];
                    sum[start + i, start + j] += w * map[i, j];
                    weights[start + i, start + j] += w;
                }
        }
        for (int i = 0; i < residues; i++)
            for (int j = 0; j < residues; j++)
                sum[i, j] = weights[i, j] > 0 ? sum[i, j] / weights[i, j] : float.NaN;
        return sum;
    }

    /// <summary>Residues of a window when a sequence is longer than <paramref name="model"/> reads at once.</summary>
    public static int WindowResidues(EsmCheckpoint model) => ResidueWindows.Width(model.Config.MaxPositionEmbeddings) - 2;

    /// <summary>The contact head's map of one pass over [&lt;cls&gt;, residues…, &lt;eos&gt;].</summary>
    private static float[,] Map(EsmCheckpoint model, int[] tokens)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var ids = tensor(tokens.Select(t => (long)t).ToArray(), [1, tokens.Length]).to(model.Device);
        var contacts = model.Model.PredictContacts(ids, ones_like(ids))[0].to(ScalarType.Float32).cpu();
        int n = (int)contacts.shape[0];
        var flat = contacts.contiguous().data<float>().ToArray();
        var matrix = new float[n, n];
        Buffer.BlockCopy(flat, 0, matrix, 0, flat.Length * sizeof(float));
        return matrix;
    }

    /// <summary>A square CSV: header and first column label residues as "M1", "K2", …; a pair not predicted (NaN) is left empty.</summary>
    public static void WriteCsv(string path, string sequence, float[,] contacts)
    {
        int n = contacts.GetLength(0);
        var residues = ResidueLabels(sequence.Trim());
        string Label(int i) => (residues.Count == n ? residues[i] : "") + (i + 1);
        // Streamed: a windowed map of thousands of residues is gigabytes as one string.
        AtomicFile.Write(path, stream =>
        {
            using var text = new StreamWriter(stream, leaveOpen: true);
            text.Write("residue");
            for (int j = 0; j < n; j++) text.Write($",{Label(j)}");
            text.Write('\n');
            for (int i = 0; i < n; i++)
            {
                text.Write(Label(i));
                for (int j = 0; j < n; j++)
                {
                    text.Write(',');
                    if (!float.IsNaN(contacts[i, j])) text.Write(contacts[i, j].ToString("G6", CultureInfo.InvariantCulture));
                }
                text.Write('\n');
            }
        });
    }

    /// <summary>What stands at each position as the tokenizer reads it: a residue letter, or a special token such as <c>&lt;mask&gt;</c> whole.</summary>
    private static List<string> ResidueLabels(string sequence)
    {
        var labels = new List<string>();
        for (int i = 0; i < sequence.Length; i++)
        {
            int close = sequence[i] == '<' ? sequence.IndexOf('>', i) : -1;
            if (close > i)
            {
                labels.Add(sequence[i..(close + 1)]);
                i = close;
            }
            else if (!(sequence[i] == '*' && i == sequence.Length - 1))
            {
                labels.Add(char.ToUpperInvariant(sequence[i]).ToString());
            }
        }
        return labels;
    }
}
