using System.Globalization;
using System.Text;
using BioForge.IO;
using BioForge.Models.Esm;
using static TorchSharp.torch;

namespace BioForge.Proteins;

public static class ContactPredictor
{
    /// <summary>Contact probabilities [residues, residues] for one sequence.</summary>
    public static float[,] Predict(EsmCheckpoint model, string sequence)
    {
        var tokens = SingleSequence.Encode(model, sequence);
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

    /// <summary>A square CSV: header and first column label residues as "M1", "K2", …</summary>
    public static void WriteCsv(string path, string sequence, float[,] contacts)
    {
        int n = contacts.GetLength(0);
        var residues = ResidueLabels(sequence.Trim());
        string Label(int i) => (residues.Count == n ? residues[i] : "") + (i + 1);
        var text = new StringBuilder();
        text.Append("residue");
        for (int j = 0; j < n; j++) text.Append(',').Append(Label(j));
        text.Append('\n');
        for (int i = 0; i < n; i++)
        {
            text.Append(Label(i));
            for (int j = 0; j < n; j++) text.Append(',').Append(contacts[i, j].ToString("G6", CultureInfo.InvariantCulture));
            text.Append('\n');
        }
        AtomicFile.WriteText(path, text.ToString());
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
