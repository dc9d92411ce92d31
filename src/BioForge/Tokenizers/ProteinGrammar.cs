
namespace BioForge.Tokenizers;

/// <summary>
/// What a sampled protein may hold, over an ESM-2 alphabet: residue letters (the 20 amino acids and X, B, U, Z, O), and
/// <c>&lt;eos&gt;</c> once at least one residue is there. Gap and insertion characters (<c>-</c>, <c>.</c>) and the other
/// special tokens are never drawn: a sequence written to FASTA is then exactly what was sampled, and never empty. An
/// undertrained model puts some mass on them; sampling and likelihoods renormalise over the allowed tokens.
/// </summary>
public sealed class ProteinGrammar : ITokenGrammar
{
    private readonly bool[] residue;
    private readonly int eos;
    private readonly IReadOnlyList<string> tokens;

    public ProteinGrammar(EsmTokenizer tokenizer)
    {
        tokens = tokenizer.Vocabulary;
        residue = [.. tokenizer.Vocabulary.Select(t => t.Length == 1 && char.IsAsciiLetterUpper(t[0]))];
        eos = tokenizer.EosId;
    }

    public string Name => "protein";
    public int VocabularySize => residue.Length;
    public string TokenText(int token) => tokens[token];

    public ITokenGrammarState Start() => new State(this);

    private sealed class State(ProteinGrammar grammar) : ITokenGrammarState
    {
        private bool any;

        public void Next(Span<bool> allowed, Span<bool> completing)
        {
            grammar.residue.CopyTo(allowed);
            allowed[grammar.eos] = any;
            // Nothing "closes" a protein: before its first residue the end's share goes to the residues in proportion.
            completing.Clear();
        }

        // A residue never forces the end: only the length limit does.
        public void Ending(ReadOnlySpan<bool> allowed, Span<bool> ending) => ending.Clear();

        public void Advance(long token)
        {
            if (token == grammar.eos) return;
            if (token < 0 || token >= grammar.residue.Length || !grammar.residue[token])
                throw new BioForgeException($"token {token} is not a residue letter");
            any = true;
        }
    }
}
