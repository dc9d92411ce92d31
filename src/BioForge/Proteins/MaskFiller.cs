using BioForge.Models.Esm;
using static TorchSharp.torch;

namespace BioForge.Proteins;

public sealed record MaskCandidate(int Rank, string Token, double Probability);

/// <summary>Predictions for one <c>&lt;mask&gt;</c>; <see cref="Position"/> is 1-based in the residue sequence.</summary>
public sealed record MaskPrediction(int Position, IReadOnlyList<MaskCandidate> Candidates);

public static class MaskFiller
{
    /// <summary>
    /// For each <c>&lt;mask&gt;</c> in the sequence, the most probable residues under the masked-LM head. Probabilities
    /// come from the softmax over the whole vocabulary; only residue letters are offered as candidates (not special
    /// tokens, gaps or insertions).
    /// </summary>
    public static IReadOnlyList<MaskPrediction> Predict(EsmCheckpoint model, string sequence, int topK)
    {
        if (topK < 1) throw new BioForgeException($"--top-k must be at least 1 (got {topK})");
        var tokens = SingleSequence.Encode(model, sequence);
        var maskPositions = Enumerable.Range(0, tokens.Length).Where(i => tokens[i] == model.Tokenizer.MaskId).ToList();
        if (maskPositions.Count == 0) throw new BioForgeException("--seq has no <mask> token to fill");

        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var ids = tensor(tokens.Select(t => (long)t).ToArray(), [1, tokens.Length]).to(model.Device);
        var output = model.Model.Forward(ids, ones_like(ids), new EsmForwardOptions { Logits = true });
        var probs = output.Logits![0].to(ScalarType.Float32).softmax(-1).cpu();
        var vocabulary = model.Tokenizer.Vocabulary;
        var residues = Enumerable.Range(0, vocabulary.Count).Where(i => vocabulary[i].Length == 1 && char.IsLetter(vocabulary[i][0])).ToArray();

        var results = new List<MaskPrediction>();
        foreach (int position in maskPositions)
        {
            var p = probs[position].data<float>().ToArray();
            var best = residues.OrderByDescending(i => p[i]).Take(topK);
            results.Add(new MaskPrediction(position, best.Select((id, rank) => new MaskCandidate(rank + 1, model.Tokenizer.Decode(id), p[id])).ToList()));
        }
        return results;
    }
}
