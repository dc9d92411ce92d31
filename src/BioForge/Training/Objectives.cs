using BioForge.Runtime;
namespace BioForge.Training;

/// <summary>Inputs and labels of one sequence; label −100 means "not scored", as in PyTorch's cross-entropy.</summary>
public sealed record TrainingExample(int[] Inputs, int[] Labels);

/// <summary>
/// BERT/ESM masked language modelling: each maskable position is chosen with probability 15 %; a chosen token
/// becomes &lt;mask&gt; 80 % of the time, a random replacement token 10 %, and stays 10 %; only chosen positions are
/// scored. Every draw depends on (seed, epoch, document, position) alone.
/// </summary>
public sealed class MaskedLanguageModeling(int maskId, IReadOnlyList<int> replacementTokens, Func<int, bool> maskable, double rate = 0.15)
{
    public const int Ignore = -100;

    public TrainingExample Apply(int[] tokens, ulong seed, int epoch, long document)
    {
        var inputs = (int[])tokens.Clone();
        var labels = Enumerable.Repeat(Ignore, tokens.Length).ToArray();
        for (int i = 0; i < tokens.Length; i++)
        {
            if (!maskable(tokens[i])) continue;
            if (StatelessRandom.Unit(seed, epoch, document, 3L * i) >= rate) continue;
            labels[i] = tokens[i];
            double action = StatelessRandom.Unit(seed, epoch, document, 3L * i + 1);
            if (action < 0.8) inputs[i] = maskId;
            else if (action < 0.9)
                inputs[i] = replacementTokens[(int)(StatelessRandom.Hash(seed, epoch, document, 3L * i + 2) % (ulong)replacementTokens.Count)];
        }
        return new TrainingExample(inputs, labels);
    }

    /// <summary>ESM-2's setting: the 20 canonical amino acids as random replacements; special tokens never masked.</summary>
    public static MaskedLanguageModeling ForProteins(Tokenizers.EsmTokenizer tokenizer)
    {
        var canonical = "ACDEFGHIKLMNPQRSTVWY".Select(c => tokenizer.IdOf(c.ToString())).ToArray();
        var special = new HashSet<int> { tokenizer.ClsId, tokenizer.EosId, tokenizer.PadId, tokenizer.MaskId, tokenizer.UnkId };
        return new MaskedLanguageModeling(tokenizer.MaskId, canonical, id => !special.Contains(id));
    }
}

/// <summary>Causal language modelling: predict token t+1 from tokens up to t.</summary>
internal static class CausalLanguageModeling
{
    public static TrainingExample Apply(int[] tokens) =>
        tokens.Length < 2
            ? throw new BioForgeException("a causal-LM example needs at least two tokens")
            : new TrainingExample(tokens[..^1], tokens[1..]);
}
