namespace BioForge.Tokenizers;

/// <summary>
/// Which tokens may come next in a sequence, for constrained decoding. Sampling and the likelihoods a policy learns
/// from both renormalise the model's distribution over the allowed tokens, so the policy learns the distribution it
/// samples from.
/// </summary>
public interface ITokenGrammar
{
    /// <summary>What users select it by (<c>smiles</c>).</summary>
    string Name { get; }
    int VocabularySize { get; }
    /// <summary>How a token is written, for messages.</summary>
    string TokenText(int token);
    /// <summary>The state of a new sequence, before its first generated token.</summary>
    ITokenGrammarState Start();
}

public interface ITokenGrammarState
{
    /// <summary>
    /// Sets <c>allowed[token]</c> for every token of the vocabulary, and <c>completing[token]</c> for the allowed tokens
    /// that bring the sequence closer to an end (closing what is open). While the end token is not allowed, its
    /// probability goes to the completing tokens in equal shares (to the allowed tokens in proportion when none is
    /// completing): a model that wants to stop is led to close what it left open rather than to go on.
    /// </summary>
    void Next(Span<bool> allowed, Span<bool> completing);
    /// <summary>
    /// Sets <c>ending[token]</c> for the <paramref name="allowed"/> tokens (<see cref="Next"/>'s) after which the sequence
    /// can only close what is open and end (an atom with no valence left, and nothing open elsewhere that could take
    /// another atom). A minimum length holds them back as it holds the end token: after one of them, the end comes anyway.
    /// </summary>
    void Ending(ReadOnlySpan<bool> allowed, Span<bool> ending);
    void Advance(long token);
}

public static class TokenGrammarExtensions
{
    /// <summary>
    /// How many tokens must follow <paramref name="prompt"/> before the end, each the only one allowed (<c>CC(F)(F)(F</c>:
    /// one, the ')'; <c>O=C=O</c>: none), or null when the sample may still choose its length.
    /// </summary>
    public static int? ForcedTokens(this ITokenGrammar grammar, ReadOnlySpan<int> prompt, int end)
    {
        var state = grammar.StartAfter(prompt);
        var allowed = new bool[grammar.VocabularySize];
        var completing = new bool[grammar.VocabularySize];
        for (int forced = 0; ; forced++)
        {
            state.Next(allowed, completing);
            int only = -1, choices = 0;
            for (int token = 0; token < allowed.Length; token++)
                if (allowed[token])
                {
                    only = token;
                    choices++;
                }
            if (choices != 1) return null;
            if (only == end) return forced;
            state.Advance(only);
        }
    }

    /// <summary>The state after <paramref name="tokens"/> (a prompt without its begin token); a token the grammar does not allow is refused with its position and text.</summary>
    public static ITokenGrammarState StartAfter(this ITokenGrammar grammar, ReadOnlySpan<int> tokens)
    {
        var state = grammar.Start();
        var allowed = new bool[grammar.VocabularySize];
        var completing = new bool[grammar.VocabularySize];
        for (int i = 0; i < tokens.Length; i++)
        {
            state.Next(allowed, completing);
            if (tokens[i] < 0 || tokens[i] >= allowed.Length || !allowed[tokens[i]])
            {
                string text = tokens[i] >= 0 && tokens[i] < allowed.Length ? $" ('{grammar.TokenText(tokens[i])}')" : "";
                throw new BioForgeException($"the prompt's token {i + 1}{text} is not allowed there by the {grammar.Name} grammar");
            }
            state.Advance(tokens[i]);
        }
        return state;
    }
}
