using BioForge.Models.Esm;

namespace BioForge.Proteins;

internal static class SingleSequence
{
    /// <summary>Tokenizes one command-line sequence, with the model's length limit checked unless it is read in <see cref="ResidueWindows"/>.</summary>
    public static int[] Encode(EsmCheckpoint model, string sequence, bool unknownAsUnk = false, bool windowed = false)
    {
        string trimmed = sequence.Trim();
        if (trimmed.Length == 0) throw new BioForgeException("--seq is empty");
        var tokens = model.Tokenizer.Encode(trimmed, unknownAsUnk);
        if (!windowed && tokens.Length - 2 > model.Config.MaxResidues)
            throw new BioForgeException($"the sequence has {tokens.Length - 2} tokens; this model takes at most {model.Config.MaxResidues} (max_position_embeddings {model.Config.MaxPositionEmbeddings} minus <cls> and <eos>)");
        return tokens;
    }
}
