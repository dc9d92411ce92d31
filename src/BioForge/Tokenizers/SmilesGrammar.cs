using BioForge.Models.Llama;

namespace BioForge.Tokenizers;

/// <summary>
/// SMILES syntax as a token grammar for constrained decoding: branches are opened only after an atom and closed before
/// the end, ring-closure labels follow an atom (optionally with a bond) and are all closed before the end, a ring
/// bond never joins an atom to itself or to a neighbour it is already bonded to, a bond is followed by an atom or a
/// ring label, the end token comes only when the string is complete, and no atom takes more bonds than its largest
/// valence allows (RDKit's, for the element isoelectronic with a charged atom, less its explicit hydrogens; aromatic
/// bonds counted as single, so the check never refuses a valid molecule), and no prefix is a dead end (no atom takes
/// the last bond while a ring waits to be closed and no other atom could close it). What it cannot see — aromaticity
/// (kekulization), chirality — is left to the model. Every valid SMILES of the vocabulary's tokens passes, so a
/// sequence keeps its likelihood up to renormalisation: the grammar only removes the probability of strings that
/// could never parse.
/// </summary>
public sealed class SmilesGrammar : ITokenGrammar
{
    private enum Kind : byte { Never, Atom, RingLabel, OpenBranch, CloseBranch, Bond, Dot, End }

    private readonly Kind[] kinds;
    /// <summary>Per token: an atom's bond capacity, a ring label's number, a bond's order.</summary>
    private readonly int[] values;

    public SmilesGrammar(SmilesVocabulary vocabulary)
    {
        kinds = new Kind[vocabulary.Count];
        values = new int[vocabulary.Count];
        for (int id = 0; id < vocabulary.Count; id++)
        {
            (kinds[id], values[id]) = id == SmilesVocabulary.EosId ? (Kind.End, 0) : Classify(vocabulary.Tokens[id]);
            if (id is SmilesVocabulary.PadId or SmilesVocabulary.BosId or SmilesVocabulary.UnkId) kinds[id] = Kind.Never;
        }
    }

    public string Name => "smiles";
    public int VocabularySize => kinds.Length;

    public ITokenGrammarState Start() => new State(this);

    private static (Kind, int) Classify(string token)
    {
        if (token.Length >= 3 && token[0] == '[' && token[^1] == ']') return (Kind.Atom, BracketCapacity(token[1..^1]));
        if (token.Length == 1 && char.IsAsciiDigit(token[0])) return (Kind.RingLabel, token[0] - '0');
        if (token.Length == 3 && token[0] == '%' && char.IsAsciiDigit(token[1]) && char.IsAsciiDigit(token[2]))
            return (Kind.RingLabel, int.Parse(token.AsSpan(1), provider: null));
        return token switch
        {
            "B" or "b" => (Kind.Atom, 3),
            "C" or "c" => (Kind.Atom, 4),
            "N" or "n" => (Kind.Atom, 3),
            "O" or "o" => (Kind.Atom, 2),
            "P" or "p" => (Kind.Atom, 5),
            "S" or "s" => (Kind.Atom, 6),
            "F" or "Cl" or "Br" => (Kind.Atom, 1),
            "I" => (Kind.Atom, 5),
            "*" => (Kind.Atom, Unlimited),
            "(" => (Kind.OpenBranch, 0),
            ")" => (Kind.CloseBranch, 0),
            "-" or "/" or "\\" or ":" or "~" => (Kind.Bond, 1),
            "=" => (Kind.Bond, 2),
            "#" => (Kind.Bond, 3),
            "$" => (Kind.Bond, 4),
            "." => (Kind.Dot, 0),
            _ => (Kind.Never, 0),
        };
    }

    private const int Unlimited = 8;

    /// <summary>Largest valence by atomic number (RDKit's valence lists), for the elements SMILES models meet.</summary>
    private static readonly Dictionary<int, int> MaxValence = new()
    {
        [5] = 3,
        [6] = 4,
        [7] = 3,
        [8] = 2,
        [9] = 1,
        [14] = 6,
        [15] = 7,
        [16] = 6,
        [17] = 1,
        [33] = 5,
        [34] = 6,
        [35] = 1,
        [53] = 5,
    };

    private static readonly Dictionary<string, int> AtomicNumbers = new(StringComparer.OrdinalIgnoreCase)
    {
        ["B"] = 5,
        ["C"] = 6,
        ["N"] = 7,
        ["O"] = 8,
        ["F"] = 9,
        ["Si"] = 14,
        ["P"] = 15,
        ["S"] = 16,
        ["Cl"] = 17,
        ["As"] = 33,
        ["Se"] = 34,
        ["Br"] = 35,
        ["I"] = 53,
    };

    /// <summary>
    /// Bonds a bracket atom can take: the largest valence of the element isoelectronic with it (a charge of +1 on N
    /// makes it C-like, −1 on O makes it F-like, as RDKit counts), less its explicit hydrogens; unknown elements are
    /// not limited.
    /// </summary>
    private static int BracketCapacity(string inside)
    {
        int i = 0;
        while (i < inside.Length && char.IsAsciiDigit(inside[i])) i++; // isotope
        int start = i;
        if (i < inside.Length && char.IsAsciiLetter(inside[i])) i++;
        while (i < inside.Length && char.IsAsciiLetterLower(inside[i]) && char.IsAsciiLetterUpper(inside[start])) i++;
        if (!AtomicNumbers.TryGetValue(inside[start..i], out int number)) return Unlimited;
        while (i < inside.Length && inside[i] == '@') i++;
        int hydrogens = 0;
        if (i < inside.Length && inside[i] == 'H')
        {
            i++;
            hydrogens = 1;
            if (i < inside.Length && char.IsAsciiDigit(inside[i])) hydrogens = inside[i++] - '0';
        }
        int charge = 0;
        while (i < inside.Length && inside[i] is '+' or '-')
        {
            int sign = inside[i++] == '+' ? 1 : -1;
            if (i < inside.Length && char.IsAsciiDigit(inside[i])) charge += sign * (inside[i++] - '0');
            else charge += sign;
        }
        return MaxValence.TryGetValue(number - charge, out int valence) ? Math.Max(0, valence - hydrogens) : Unlimited;
    }

    /// <summary>
    /// Where one sequence stands: what came last, open branches and ring labels, who bonds with whom, and how many more
    /// bonds each atom can take.
    /// </summary>
    private sealed class State(SmilesGrammar grammar) : ITokenGrammarState
    {
        private Kind last = Kind.Dot; // the start behaves like the position after '.': an atom must come
        private Kind beforeBond; // what the pending bond follows: after an atom or ring label a ring label may come; after '(' the bond is the branch's
        private int pendingOrder = 1; // the order of the next bond: an explicit bond symbol's, else single
        private int current = -1; // the atom that the next bond, branch or ring label attaches to
        private readonly List<int> parents = []; // each atom's chain neighbour (−1 for the first atom of a component)
        private readonly List<int> free = []; // bonds each atom can still take
        private readonly Stack<int> branches = new();
        private readonly Dictionary<int, (int Atom, int Order)> openRings = []; // label → where it was opened, with what bond
        private readonly HashSet<(int, int)> ringBonds = [];

        public void Next(Span<bool> allowed, Span<bool> completing)
        {
            var kinds = grammar.kinds;
            var values = grammar.values;
            bool afterAtom = last is Kind.Atom or Kind.RingLabel;
            bool complete = afterAtom || last == Kind.CloseBranch;
            bool connects = last != Kind.Dot && current >= 0; // the next atom bonds to the current one
            int order = last == Kind.Bond ? pendingOrder : 1;
            int room = current >= 0 ? free[current] : 0;
            // Right after '(' (and its bond) the current atom is the branch point on top of the stack: the branch's first bond
            // uses its room.
            bool currentIsBranchPoint = last == Kind.OpenBranch || (last == Kind.Bond && beforeBond == Kind.OpenBranch);
            bool bondAfterAtom = last == Kind.Bond && beforeBond is Kind.Atom or Kind.RingLabel;
            bool roomBelow = RoomOnStack(skipTop: currentIsBranchPoint);
            bool topHasRoomAfterBond = currentIsBranchPoint && room - order >= 1;
            for (int id = 0; id < kinds.Length; id++)
            {
                int value = values[id];
                allowed[id] = kinds[id] switch
                {
                    Kind.Atom => connects
                        ? room >= order && value >= order && Completable(openRings.Count, value - order >= 1 || roomBelow || topHasRoomAfterBond)
                        : Completable(openRings.Count, value >= 1 || roomBelow),
                    Kind.RingLabel => (afterAtom || bondAfterAtom) && CanUseLabel(value, order, room, roomBelow),
                    Kind.OpenBranch => complete && room >= 1,
                    Kind.CloseBranch => complete && branches.Count > 0 && Completable(openRings.Count, free[branches.Peek()] >= 1 || RoomOnStack(skipTop: true)),
                    Kind.Bond => (complete || last == Kind.OpenBranch) && room >= value,
                    Kind.Dot => complete && branches.Count == 0,
                    Kind.End => complete && branches.Count == 0 && openRings.Count == 0,
                    _ => false,
                };
                completing[id] = allowed[id] && kinds[id] switch
                {
                    Kind.CloseBranch => true,
                    Kind.RingLabel => openRings.ContainsKey(value),
                    _ => false,
                };
            }
        }

        /// <summary>
        /// Whether open rings can still be closed: an atom with room left can always be continued by new carbons that
        /// close them, and closing branches reaches the atoms on the stack. Without this, a ring opened before an atom
        /// that takes no more bonds (…C1CCF) would leave nothing to write.
        /// </summary>
        private static bool Completable(int openRingCount, bool roomSomewhere) => openRingCount == 0 || roomSomewhere;

        private bool RoomOnStack(bool skipTop)
        {
            bool skip = skipTop;
            foreach (int atom in branches)
            {
                if (skip)
                {
                    skip = false;
                    continue;
                }
                if (free[atom] >= 1) return true;
            }
            return false;
        }

        /// <summary>
        /// A new label opens a ring if the atom has room for the bond and more (to reach the atom that closes it); an open
        /// one closes it, unless that would bond an atom to itself or repeat a bond.
        /// </summary>
        private bool CanUseLabel(int label, int order, int room, bool roomBelow)
        {
            if (!openRings.TryGetValue(label, out var opened)) return room >= order && (room - order >= 1 || roomBelow);
            int opener = opened.Atom;
            if (opener == current || parents[current] == opener || parents[opener] == current) return false;
            int closingOrder = last == Kind.Bond ? order : opened.Order;
            return room >= closingOrder && !ringBonds.Contains(Pair(opener, current))
                && Completable(openRings.Count - 1, room - closingOrder >= 1 || roomBelow);
        }

        private static (int, int) Pair(int a, int b) => a < b ? (a, b) : (b, a);

        public void Advance(long token)
        {
            var kind = token >= 0 && token < grammar.kinds.Length ? grammar.kinds[token] : Kind.Never;
            int value = kind == Kind.Never ? 0 : grammar.values[token];
            int order = last == Kind.Bond ? pendingOrder : 1;
            switch (kind)
            {
                case Kind.Atom:
                    bool connects = last != Kind.Dot && current >= 0;
                    parents.Add(connects ? current : -1);
                    free.Add(value - (connects ? order : 0));
                    if (connects) free[current] -= order;
                    current = parents.Count - 1;
                    break;
                case Kind.RingLabel when current >= 0:
                    if (openRings.Remove(value, out var opened))
                    {
                        int closing = last == Kind.Bond ? order : opened.Order;
                        free[current] -= closing;
                        free[opened.Atom] -= closing - opened.Order; // an explicit bond at the closure may raise the order
                        ringBonds.Add(Pair(opened.Atom, current));
                    }
                    else
                    {
                        openRings[value] = (current, order);
                        free[current] -= order;
                    }
                    break;
                case Kind.OpenBranch when current >= 0:
                    branches.Push(current);
                    break;
                case Kind.CloseBranch when branches.Count > 0:
                    current = branches.Pop();
                    break;
                case Kind.Bond:
                    beforeBond = last;
                    pendingOrder = value;
                    break;
            }
            last = kind;
        }
    }
}
