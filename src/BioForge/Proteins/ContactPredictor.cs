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
        string residues = new(sequence.Trim().ToUpperInvariant().Where(char.IsLetter).ToArray());
        string Label(int i) => (i < residues.Length && residues.Length == n ? residues[i].ToString() : "") + (i + 1);
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
}
