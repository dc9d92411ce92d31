using System.Collections.Frozen;

namespace BioForge.Tokenizers;

/// <summary>
/// SMILES syntax as a token grammar for constrained decoding: branches are opened only after an atom and closed before
/// the end, ring-closure labels follow an atom or a closed branch (optionally with a bond; a bond written at the closure
/// must fit both atoms' valence) and are all closed before the end, a ring
/// bond never joins an atom to itself or to a neighbour it is already bonded to, a bond is followed by an atom or a
/// ring label, the end token comes only when the string is complete, and no atom takes more bonds than its largest
/// valence allows (RDKit's, for the element isoelectronic with a charged atom, less its explicit hydrogens; aromatic
/// bonds counted as single, so the check never refuses a valid molecule; an aromatic carbon has at most three
/// neighbours, one unit of its valence going to its double bond), and no prefix is a dead end (no atom takes
/// the last bond while a ring waits to be closed and no other atom could close it). Aromatic rings must stay
/// kekulizable: a token after which some aromatic atom could never get the double bond RDKit would give it is refused
/// (<see cref="AromaticSystems"/>; checked on every molecule of ZINC250k's training split and MOSES's test set, none
/// refused); no token may leave an aromatic atom that could never be on a ring, and the end comes only when the rings
/// kekulize with the bonds on no ring single, as RDKit reads them. What it cannot see — a ring that can only fail once it
/// closes later, chirality — is left to the model.
/// Every valid SMILES of the vocabulary's tokens passes, so a sequence keeps its likelihood up to renormalisation: the
/// grammar only removes the probability of strings that could never be valid molecules.
/// </summary>
public sealed class SmilesGrammar : ITokenGrammar
{
    private enum Kind : byte { Never, Atom, RingLabel, OpenBranch, CloseBranch, Bond, Dot, End }

    private readonly Kind[] kinds;
    /// <summary>Per token: an atom's bond capacity, a ring label's number, a bond's order.</summary>
    private readonly int[] values;
    /// <summary>Per atom token: how many neighbours it can have (see <see cref="NeighbourLimit"/>).</summary>
    private readonly int[] neighbourLimits;
    private readonly AromaticSystems.AtomFacts[] atomFacts;
    private readonly AromaticSystems.BondSymbol[] bondSymbols;
    private readonly IReadOnlyList<string> tokens;
    /// <summary>With '.' a new molecule may follow any complete one, so no token forces the end.</summary>
    private readonly bool hasDot;

    public SmilesGrammar(SmilesVocabulary vocabulary)
    {
        tokens = vocabulary.Tokens;
        kinds = new Kind[vocabulary.Count];
        values = new int[vocabulary.Count];
        neighbourLimits = new int[vocabulary.Count];
        atomFacts = new AromaticSystems.AtomFacts[vocabulary.Count];
        bondSymbols = new AromaticSystems.BondSymbol[vocabulary.Count];
        for (int id = 0; id < vocabulary.Count; id++)
        {
            (kinds[id], values[id]) = id == SmilesVocabulary.EosId ? (Kind.End, 0) : Classify(vocabulary.Tokens[id]);
            if (id is SmilesVocabulary.PadId or SmilesVocabulary.BosId or SmilesVocabulary.UnkId) kinds[id] = Kind.Never;
            if (kinds[id] == Kind.Atom) atomFacts[id] = Facts(vocabulary.Tokens[id]);
            neighbourLimits[id] = NeighbourLimit(vocabulary.Tokens[id]);
            if (kinds[id] == Kind.Bond) bondSymbols[id] = Symbol(vocabulary.Tokens[id]);
        }
        hasDot = kinds.Contains(Kind.Dot);
    }

    public string Name => "smiles";
    public int VocabularySize => kinds.Length;
    public string TokenText(int token) => tokens[token];

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

    /// <summary>
    /// An aromatic carbon spends one unit of its valence of 4 on the double bond kekulization gives it (or on an explicit
    /// '=' it has), so it has at most three neighbours whatever its bonds are written as: a fourth would make it
    /// pentavalent. Counting aromatic bonds as single, the valence alone would let it take four.
    /// </summary>
    private static int NeighbourLimit(string token) => token == "c" ? 3 : Unlimited;

    /// <summary>Largest valence by atomic number (RDKit's valence lists), for the elements SMILES models meet.</summary>
    private static readonly FrozenDictionary<int, int> MaxValence = new Dictionary<int, int>()
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
    }.ToFrozenDictionary();

    private static readonly FrozenDictionary<string, int> AtomicNumbers = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase)
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
    }.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Bonds a bracket atom can take: the largest valence of the element isoelectronic with it (a charge of +1 on N
    /// makes it C-like, −1 on O makes it F-like, as RDKit counts), less its explicit hydrogens; unknown elements are
    /// not limited.
    /// </summary>
    private static int BracketCapacity(string inside)
    {
        var atom = ParseBracket(inside);
        return atom.AtomicNumber > 0 && MaxValence.TryGetValue(atom.AtomicNumber - atom.Charge, out int valence)
            ? Math.Max(0, valence - atom.Hydrogens)
            : Unlimited;
    }

    /// <summary>A bracket atom's element (0 when unknown), aromaticity (a lower-case symbol), hydrogens and charge.</summary>
    private static AromaticSystems.AtomFacts ParseBracket(string inside)
    {
        int i = 0;
        while (i < inside.Length && char.IsAsciiDigit(inside[i])) i++; // isotope
        int start = i;
        if (i >= inside.Length || !char.IsAsciiLetter(inside[i])) return new AromaticSystems.AtomFacts(false, 0, 0, 0);
        bool aromatic = char.IsAsciiLetterLower(inside[start]);
        i++;
        // Element symbols are one upper-case letter and lower-case ones after it; aromatic ones are all lower case (se, as).
        if (i < inside.Length && char.IsAsciiLetterLower(inside[i]) && (!aromatic || AtomicNumbers.ContainsKey(inside[start..(i + 1)]))) i++;
        if (!AtomicNumbers.TryGetValue(inside[start..i], out int number)) return new AromaticSystems.AtomFacts(aromatic, 0, 0, 0);
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
        return new AromaticSystems.AtomFacts(aromatic, number, charge, hydrogens);
    }

    /// <summary>What kekulization needs of an atom token; unbracketed atoms take implicit hydrogens (−1).</summary>
    private static AromaticSystems.AtomFacts Facts(string token)
    {
        if (token[0] == '[') return ParseBracket(token[1..^1]);
        bool aromatic = char.IsAsciiLetterLower(token[0]);
        return new AromaticSystems.AtomFacts(aromatic, AtomicNumbers.GetValueOrDefault(token), 0, -1);
    }

    private static AromaticSystems.BondSymbol Symbol(string token) => token switch
    {
        ":" => AromaticSystems.BondSymbol.Aromatic,
        "=" => AromaticSystems.BondSymbol.Double,
        "#" => AromaticSystems.BondSymbol.Triple,
        "$" => AromaticSystems.BondSymbol.Quadruple,
        _ => AromaticSystems.BondSymbol.Single,
    };

    /// <summary>
    /// Where one sequence stands: what came last, open branches and ring labels, who bonds with whom, and how many more
    /// bonds each atom can take.
    /// </summary>
    private sealed class State(SmilesGrammar grammar) : ITokenGrammarState
    {
        private Kind last = Kind.Dot; // the start behaves like the position after '.': an atom must come
        private Kind beforeBond; // what the pending bond follows: after an atom or ring label a ring label may come; after '(' the bond is the branch's
        private int pendingOrder = 1; // the order of the next bond: an explicit bond symbol's, else single
        private AromaticSystems.BondSymbol pendingSymbol;
        private int current = -1; // the atom that the next bond, branch or ring label attaches to
        private readonly List<int> parents = []; // each atom's chain neighbour (−1 for the first atom of a component)
        private readonly List<int> free = []; // bonds each atom can still take, as valence units
        private readonly List<int> slots = []; // neighbours each atom can still take
        private readonly Stack<int> branches = new();
        private readonly Dictionary<int, (int Atom, int Order, AromaticSystems.BondSymbol Symbol)> openRings = []; // label → where it was opened, with what bond
        private readonly HashSet<(int, int)> ringBonds = [];
        private readonly AromaticSystems aromatics = new();
        private readonly List<long> written = [];

        public void Next(Span<bool> allowed, Span<bool> completing)
        {
            Syntax(allowed, completing);
            RefuseUnreadable(allowed, completing);
        }

        /// <summary>What SMILES syntax and valences allow next, kekulization aside.</summary>
        private void Syntax(Span<bool> allowed, Span<bool> completing)
        {
            var kinds = grammar.kinds;
            var values = grammar.values;
            bool afterAtom = last is Kind.Atom or Kind.RingLabel;
            bool complete = afterAtom || last == Kind.CloseBranch;
            bool connects = last != Kind.Dot && current >= 0; // the next atom bonds to the current one
            int order = last == Kind.Bond ? pendingOrder : 1;
            int room = current >= 0 ? free[current] : 0;
            int slotsLeft = current >= 0 ? slots[current] : 0;
            // Right after '(' (and its bond) the current atom is the branch point on top of the stack: the branch's first bond
            // uses its room.
            bool currentIsBranchPoint = last == Kind.OpenBranch || (last == Kind.Bond && beforeBond == Kind.OpenBranch);
            // RDKit reads a ring label after a closed branch (C(C)1CC1) as the branch point's, as it reads one after the atom.
            bool labelMayFollow = afterAtom || last == Kind.CloseBranch;
            bool bondAfterAtom = last == Kind.Bond && beforeBond is Kind.Atom or Kind.RingLabel or Kind.CloseBranch;
            bool roomBelow = RoomOnStack(skipTop: currentIsBranchPoint);
            bool topHasRoomAfterBond = currentIsBranchPoint && Math.Min(room - order, slotsLeft - 1) >= 1;
            for (int id = 0; id < kinds.Length; id++)
            {
                int value = values[id];
                int newSlots = grammar.neighbourLimits[id];
                allowed[id] = kinds[id] switch
                {
                    Kind.Atom => connects
                        ? slotsLeft >= 1 && room >= order && value >= order
                            && Completable(openRings.Count, Math.Min(value - order, newSlots - 1) >= 1 || roomBelow || topHasRoomAfterBond)
                        : Completable(openRings.Count, value >= 1 || roomBelow),
                    Kind.RingLabel => (labelMayFollow || bondAfterAtom) && CanUseLabel(value, order, room, slotsLeft, roomBelow),
                    Kind.OpenBranch => complete && Math.Min(room, slotsLeft) >= 1,
                    Kind.CloseBranch => complete && branches.Count > 0 && Completable(openRings.Count, Room(branches.Peek()) >= 1 || RoomOnStack(skipTop: true)),
                    Kind.Bond => (complete || last == Kind.OpenBranch) && room >= value && slotsLeft >= 1,
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
        /// The allowed atoms, ring closures and branch closures after which only ')' and the end may follow: those that
        /// leave no ring open and no atom with room for a bond; and, once the molecule has aromatic atoms, a closure after
        /// which the rules for aromatic rings leave nothing else either (a pyrazole's closing nitrogen, whose last valence
        /// its ring needs), found by writing the token, and any ')' that must follow, on a copy of the state.
        /// </summary>
        public void Ending(ReadOnlySpan<bool> allowed, Span<bool> ending)
        {
            ending.Clear();
            if (grammar.hasDot) return;
            var kinds = grammar.kinds;
            var values = grammar.values;
            int order = last == Kind.Bond ? pendingOrder : 1;
            bool currentIsBranchPoint = last == Kind.OpenBranch || (last == Kind.Bond && beforeBond == Kind.OpenBranch);
            bool roomBelow = RoomOnStack(skipTop: currentIsBranchPoint);
            bool topHasRoomAfterBond = currentIsBranchPoint && Math.Min(free[current] - order, slots[current] - 1) >= 1;
            for (int id = 0; id < kinds.Length; id++)
            {
                if (!allowed[id]) continue;
                int value = values[id];
                // Whether no atom but the one current after the token could take a bond, and how many it could take.
                (bool onlyCurrent, int room) = kinds[id] switch
                {
                    Kind.Atom => (openRings.Count == 0 && !roomBelow && !topHasRoomAfterBond, NewAtomRoom(id)),
                    Kind.RingLabel when current >= 0 && openRings.Count == 1 && openRings.TryGetValue(value, out var opened) =>
                        (!RoomOnStackAfterClosing(opened), Math.Min(free[current] - ClosingOrder(opened), slots[current] - 1)),
                    Kind.CloseBranch when branches.Count > 0 => (openRings.Count == 0 && !RoomOnStack(skipTop: true), Room(branches.Peek())),
                    _ => (false, 0),
                };
                if (onlyCurrent && room < 1) ending[id] = true;
                // Room the aromatic rules may still refuse: only a closure can leave an aromatic atom so (an atom written
                // next that could take no bond later would be off every ring, refused already).
                else if (aromatics.Any && ((kinds[id] == Kind.CloseBranch && openRings.Count == 0)
                    || (kinds[id] == Kind.RingLabel && openRings.Count == 1 && openRings.ContainsKey(value))))
                {
                    var after = Replay();
                    after.Advance(id);
                    ending[id] = after.OnlyTheEndFollows();
                }
            }
        }

        /// <summary>Whether a branch point keeps room once the label's ring bond raises its opener's order (<c>C1(CC=C=1</c>).</summary>
        private bool RoomOnStackAfterClosing((int Atom, int Order, AromaticSystems.BondSymbol Symbol) opened)
        {
            int raise = ClosingOrder(opened) - opened.Order;
            foreach (int atom in branches)
                if ((atom == opened.Atom ? Math.Min(free[atom] - raise, slots[atom]) : Room(atom)) >= 1) return true;
            return false;
        }

        /// <summary>Whether nothing but ')' and the end may follow, through every ')' that must (this state is a copy, and is changed).</summary>
        private bool OnlyTheEndFollows()
        {
            var kinds = grammar.kinds;
            Span<bool> allowed = stackalloc bool[kinds.Length];
            Span<bool> completing = stackalloc bool[kinds.Length];
            while (true)
            {
                Next(allowed, completing);
                int close = -1;
                for (int id = 0; id < kinds.Length; id++)
                {
                    if (!allowed[id] || kinds[id] == Kind.End) continue;
                    if (kinds[id] != Kind.CloseBranch) return false;
                    close = id;
                }
                if (close < 0) return true;
                Advance(close);
            }
        }

        /// <summary>A copy of this state, made by writing the same tokens again.</summary>
        private State Replay()
        {
            var copy = new State(grammar);
            foreach (long token in written) copy.Advance(token);
            return copy;
        }

        /// <summary>
        /// Refuses the tokens after which the aromatic rings written so far could never be kekulized (see
        /// <see cref="AromaticSystems"/>), or some aromatic atom could never be on a ring (<see cref="AromaticsCanJoinRings"/>).
        /// Should every allowed token be refused — a prefix already lost — the syntax alone decides.
        /// </summary>
        private void RefuseUnreadable(Span<bool> allowed, Span<bool> completing)
        {
            var kinds = grammar.kinds;
            Span<bool> refused = stackalloc bool[kinds.Length];
            var offRings = AromaticsOffRings();
            // An atom's verdict on rings depends only on whether it is aromatic and the room it would have (none, one, more);
            // a ring label's opening, on nothing but the label's bond (the same for every new label).
            Span<sbyte> atomRings = stackalloc sbyte[6];
            atomRings.Fill(-1);
            sbyte openingRings = -1;
            bool anyLeft = false;
            for (int id = 0; id < kinds.Length; id++)
            {
                if (!allowed[id]) continue;
                bool onRings;
                if (kinds[id] == Kind.Atom)
                {
                    int key = (grammar.atomFacts[id].Aromatic ? 3 : 0) + Math.Clamp(NewAtomRoom(id), 0, 2);
                    if (atomRings[key] < 0) atomRings[key] = (sbyte)(AromaticsCanJoinRings(id, offRings) ? 1 : 0);
                    onRings = atomRings[key] == 1;
                }
                else if (kinds[id] == Kind.RingLabel && !openRings.ContainsKey(grammar.values[id]))
                {
                    if (openingRings < 0) openingRings = (sbyte)(AromaticsCanJoinRings(id, offRings) ? 1 : 0);
                    onRings = openingRings == 1;
                }
                else onRings = AromaticsCanJoinRings(id, offRings);
                refused[id] = !onRings || (aromatics.Any && !KekulizableAfter(id));
                anyLeft |= !refused[id];
            }
            if (!anyLeft) return;
            for (int id = 0; id < kinds.Length; id++)
            {
                if (!refused[id]) continue;
                allowed[id] = false;
                completing[id] = false;
            }
        }

        /// <summary>Whether the aromatic atoms can still be kekulized after <paramref name="token"/>: only a token that bonds to or seals an aromatic atom can change that.</summary>
        private bool KekulizableAfter(int token)
        {
            int value = grammar.values[token];
            switch (grammar.kinds[token])
            {
                case Kind.Atom when last != Kind.Dot && current >= 0 && aromatics.IsAromatic(current):
                    {
                        int order = last == Kind.Bond ? pendingOrder : 1;
                        bool addedHasRoom = Math.Min(value - order, grammar.neighbourLimits[token] - 1) >= 1;
                        return KekulizableWithNewAtom(grammar.atomFacts[token], last == Kind.Bond ? pendingSymbol : AromaticSystems.BondSymbol.Implicit, order, addedHasRoom, currentStays: false);
                    }
                case Kind.RingLabel when openRings.TryGetValue(value, out var opened)
                    && (aromatics.IsAromatic(current) || aromatics.IsAromatic(opened.Atom)):
                    {
                        var symbol = ClosingSymbol(opened.Symbol);
                        aromatics.AddBond(opened.Atom, current, symbol);
                        int at = current;
                        // The closing atom stays current, but once the ring bond takes its last room it can get no double bond elsewhere.
                        int closingOrder = ClosingOrder(opened);
                        bool atHasRoom = Math.Min(free[at] - closingOrder, slots[at] - 1) >= 1;
                        bool ok = aromatics.CanKekulize(atom => (atom == at && atHasRoom) || IsOnStackOrRingOpener(atom, value));
                        aromatics.RemoveBond(opened.Atom, current, symbol);
                        return ok;
                    }
                // A written bond fixes the order of the current atom's next bond, whatever atom or ring label it leads to.
                case Kind.Bond when current >= 0 && aromatics.IsAromatic(current) && grammar.bondSymbols[token] != AromaticSystems.BondSymbol.Aromatic:
                    return KekulizableWithNewAtom(new AromaticSystems.AtomFacts(false, 0, 0, -1), grammar.bondSymbols[token], grammar.values[token], addedHasRoom: true, currentStays: true)
                        && AnyKekulizableAfterBond(token);
                // A branch commits the atom to one more neighbour: an aromatic atom whose ring needs its last valence for a
                // double bond has none to give (c1noc(C)n1( had no kekulizable continuation: every sample ended unreadable).
                case Kind.OpenBranch when current >= 0 && aromatics.IsAromatic(current):
                    return AnyKekulizableAfterOpenBranch(token);
                case Kind.CloseBranch when aromatics.IsAromatic(current):
                    return aromatics.CanKekulize(atom => IsOnStackOrRingOpener(atom, -1));
                case Kind.Dot:
                    return aromatics.CanKekulize(atom => IsOnStackOrRingOpener(atom, -1));
                case Kind.End:
                    return CompleteMoleculeKekulizes();
                default:
                    return true;
            }
        }

        /// <summary>
        /// Whether the finished molecule reads as RDKit reads it: every aromatic atom on a ring (<c>c1ccccc1[nH]C</c>: "non-ring
        /// atom marked aromatic"), and its rings kekulizable with the bonds on no ring single — RDKit makes an unwritten
        /// bond between two aromatic atoms aromatic only in a ring, so two five-rings joined by one (<c>c1cccc1c1cccc1</c>)
        /// cannot lend each other the double bond each lacks.
        /// </summary>
        private bool CompleteMoleculeKekulizes()
        {
            var (onRing, notOnRing) = Rings();
            for (int atom = 0; atom < onRing.Length; atom++)
                if (aromatics.IsAromatic(atom) && !onRing[atom]) return false;
            return aromatics.CanKekulizeFinished(notOnRing);
        }

        /// <summary>How many single bonds an atom <paramref name="token"/> written next could take after its bond to the current atom.</summary>
        private int NewAtomRoom(int token)
        {
            bool connects = last != Kind.Dot && current >= 0;
            int order = last == Kind.Bond ? pendingOrder : 1;
            return Math.Min(grammar.values[token] - (connects ? order : 0), grammar.neighbourLimits[token] - (connects ? 1 : 0));
        }

        /// <summary>Which atoms lie on a ring of the bonds written so far, and which bonds on none.</summary>
        private (bool[] OnRing, HashSet<(int, int)> NotOnRing) Rings()
        {
            var bonds = Bonds();
            var bridges = Bridges(parents.Count, bonds);
            var onRing = new bool[parents.Count];
            var notOnRing = new HashSet<(int, int)>();
            for (int b = 0; b < bonds.Count; b++)
            {
                var (x, y) = bonds[b];
                if (bridges[b]) notOnRing.Add(Pair(x, y));
                else onRing[x] = onRing[y] = true;
            }
            return (onRing, notOnRing);
        }

        /// <summary>The chain's bonds and the closed rings' (none repeated: <see cref="CanUseLabel"/> refuses a repeated bond).</summary>
        private List<(int A, int B)> Bonds()
        {
            var bonds = new List<(int, int)>(parents.Count + ringBonds.Count + 8);
            for (int atom = 0; atom < parents.Count; atom++)
                if (parents[atom] >= 0) bonds.Add((atom, parents[atom]));
            bonds.AddRange(ringBonds);
            return bonds;
        }

        /// <summary>Which edges lie on no cycle (Tarjan's bridges); two parallel edges make a cycle.</summary>
        private static bool[] Bridges(int nodes, List<(int A, int B)> edges)
        {
            // Each node's edges side by side (compressed rows): node v's are ends[first[v] .. first[v + 1]).
            var first = new int[nodes + 1];
            foreach (var (a, b) in edges)
            {
                first[a + 1]++;
                first[b + 1]++;
            }
            for (int v = 0; v < nodes; v++) first[v + 1] += first[v];
            var filled = first[..nodes];
            var ends = new (int Next, int Edge)[2 * edges.Count];
            for (int e = 0; e < edges.Count; e++)
            {
                ends[filled[edges[e].A]++] = (edges[e].B, e);
                ends[filled[edges[e].B]++] = (edges[e].A, e);
            }
            var order = new int[nodes];
            var low = new int[nodes];
            Array.Fill(order, -1);
            var bridges = new bool[edges.Count];
            int time = 0;
            void Visit(int node, int via) // as deep as the molecule is long: a few hundred tokens at most
            {
                order[node] = low[node] = time++;
                for (int i = first[node]; i < first[node + 1]; i++)
                {
                    var (next, edge) = ends[i];
                    if (edge == via) continue;
                    if (order[next] < 0)
                    {
                        Visit(next, edge);
                        low[node] = Math.Min(low[node], low[next]);
                        if (low[next] > order[node]) bridges[edge] = true;
                    }
                    else low[node] = Math.Min(low[node], order[next]);
                }
            }
            for (int v = 0; v < nodes; v++)
                if (order[v] < 0) Visit(v, -1);
            return bridges;
        }

        /// <summary>The aromatic atoms on no ring of the bonds written so far.</summary>
        private List<int> AromaticsOffRings()
        {
            var offRings = new List<int>();
            if (!aromatics.Any) return offRings;
            var (onRing, _) = Rings();
            for (int atom = 0; atom < onRing.Length; atom++)
                if (aromatics.IsAromatic(atom) && !onRing[atom]) offRings.Add(atom);
            return offRings;
        }

        /// <summary>
        /// Whether every aromatic atom is on a ring after <paramref name="token"/>, or could still be: RDKit refuses an
        /// aromatic atom on no ring ("non-ring atom marked aromatic"), and a sample that sealed one off ran on to the length
        /// limit. Bonds to come can only reach the current atom and the branch points with room, and the atoms with a ring
        /// label open; so an aromatic atom can still join a ring only if one of its bonds lies on a cycle of the bonds so far
        /// with each of those atoms bonded to one more node standing for every atom to come (twice where it has room for
        /// two bonds, once per open label). That can only overestimate what the rest of the string can do.
        /// </summary>
        private bool AromaticsCanJoinRings(int token, List<int> offRings)
        {
            var kind = grammar.kinds[token];
            bool addsAromatic = kind == Kind.Atom && grammar.atomFacts[token].Aromatic;
            // A bond or an opened branch keeps every atom that could take a bond able to; the end has its own check.
            if ((offRings.Count == 0 && !addsAromatic) || kind is not (Kind.Atom or Kind.RingLabel or Kind.CloseBranch or Kind.Dot)) return true;
            // Room for two bonds is a ring of its own to come (c1…1).
            if (offRings.Count == 0 && NewAtomRoom(token) >= 2) return true;
            int value = grammar.values[token];
            int order = last == Kind.Bond ? pendingOrder : 1;
            var bonds = Bonds();
            int atoms = parents.Count;
            var ports = new List<int>();
            void Port(int atom, int room)
            {
                for (int k = 0; k < Math.Min(room, 2); k++) ports.Add(atom);
            }
            int closedLabel = -1;
            switch (kind)
            {
                case Kind.Atom:
                    if (last != Kind.Dot && current >= 0) bonds.Add((atoms, current));
                    Port(atoms, NewAtomRoom(token));
                    foreach (int atom in branches)
                        Port(atom, atom == current ? Math.Min(free[atom] - order, slots[atom] - 1) : Room(atom));
                    atoms++;
                    break;
                case Kind.RingLabel when openRings.TryGetValue(value, out var opened):
                    closedLabel = value;
                    bonds.Add((opened.Atom, current));
                    int closingOrder = ClosingOrder(opened);
                    Port(current, Math.Min(free[current] - closingOrder, slots[current] - 1));
                    foreach (int atom in branches)
                        Port(atom, atom == opened.Atom ? Math.Min(free[atom] - (closingOrder - opened.Order), slots[atom]) : Room(atom));
                    break;
                case Kind.RingLabel:
                    ports.Add(current); // the new label's bond
                    Port(current, Math.Min(free[current] - order, slots[current] - 1));
                    foreach (int atom in branches) Port(atom, Room(atom));
                    break;
                case Kind.CloseBranch: // the branch point becomes the current atom; the branch's last atom takes no more bonds
                    foreach (int atom in branches) Port(atom, Room(atom));
                    break;
            }
            foreach (var (label, opened) in openRings)
                if (label != closedLabel) ports.Add(opened.Atom);
            int toCome = atoms;
            foreach (int atom in ports) bonds.Add((atom, toCome));
            var bridges = Bridges(atoms + 1, bonds);
            var onRing = new bool[atoms];
            for (int b = 0; b < bonds.Count; b++)
                if (!bridges[b])
                {
                    if (bonds[b].A < atoms) onRing[bonds[b].A] = true;
                    if (bonds[b].B < atoms) onRing[bonds[b].B] = true;
                }
            foreach (int atom in offRings)
                if (!onRing[atom]) return false;
            return !addsAromatic || onRing[atoms - 1];
        }

        /// <summary>One token of lookahead past an opened branch on an aromatic atom: some atom, bond or ring label must be able to follow it.</summary>
        private bool AnyKekulizableAfterOpenBranch(int open)
        {
            var saved = last;
            Apply(open); // an open branch pushes the current atom, and changes nothing else but last
            Span<bool> allowed = stackalloc bool[grammar.kinds.Length];
            Span<bool> completing = stackalloc bool[grammar.kinds.Length];
            Syntax(allowed, completing);
            bool any = false;
            for (int id = 0; id < allowed.Length && !any; id++) any = allowed[id] && KekulizableAfter(id);
            branches.Pop();
            last = saved;
            return any;
        }

        /// <summary>
        /// One token of lookahead past a bond symbol on an aromatic atom: some atom or ring label must be able to follow it.
        /// A bond only fixes the next bond's order, so <c>c1-</c> on a ring that needs that atom's double bond (an odd
        /// ring that an exocyclic <c>=O</c> would have saved) leaves nothing to write.
        /// </summary>
        private bool AnyKekulizableAfterBond(int bond)
        {
            var saved = (last, beforeBond, pendingOrder, pendingSymbol);
            Apply(bond); // a bond token changes only these four fields
            Span<bool> allowed = stackalloc bool[grammar.kinds.Length];
            Span<bool> completing = stackalloc bool[grammar.kinds.Length];
            Syntax(allowed, completing);
            bool any = false;
            for (int id = 0; id < allowed.Length && !any; id++) any = allowed[id] && KekulizableAfter(id);
            (last, beforeBond, pendingOrder, pendingSymbol) = saved;
            return any;
        }

        /// <summary>
        /// Kekulization after a new atom bonds to the current one with a bond of <paramref name="order"/>: the new atom is
        /// the current one then (open to a double bond while it has room), and the old one is sealed unless it has a ring
        /// label open, is a branch point with room left after this bond, or <paramref name="currentStays"/> (a bond
        /// symbol, which may still lead to a ring label on it).
        /// </summary>
        private bool KekulizableWithNewAtom(AromaticSystems.AtomFacts facts, AromaticSystems.BondSymbol symbol, int order, bool addedHasRoom, bool currentStays)
        {
            int added = parents.Count, at = current;
            bool atStaysOpen = currentStays || IsRingOpener(at, -1) || (branches.Contains(at) && Math.Min(free[at] - order, slots[at] - 1) >= 1);
            aromatics.AddAtom(facts);
            aromatics.AddBond(at, added, symbol);
            bool ok = aromatics.CanKekulize(atom => atom == added ? addedHasRoom : atom == at ? atStaysOpen : IsOnStackOrRingOpener(atom, -1));
            aromatics.RemoveBond(at, added, symbol);
            aromatics.RemoveLastAtom();
            return ok;
        }

        /// <summary>A branch point with room left or an atom with a ring label open (other than <paramref name="closingLabel"/>) can still take bonds.</summary>
        private bool IsOnStackOrRingOpener(int atom, int closingLabel)
        {
            return (branches.Contains(atom) && Room(atom) >= 1) || IsRingOpener(atom, closingLabel);
        }

        private bool IsRingOpener(int atom, int closingLabel)
        {
            foreach (var (label, opened) in openRings)
                if (label != closingLabel && opened.Atom == atom) return true;
            return false;
        }

        /// <summary>
        /// A ring bond's symbol: written at the opening, else at the closure, else neither. Written at both ends, RDKit
        /// keeps the opening's (<c>C-1CCCCC=1</c> is cyclohexane).
        /// </summary>
        private AromaticSystems.BondSymbol ClosingSymbol(AromaticSystems.BondSymbol atOpening) =>
            last == Kind.Bond && atOpening == AromaticSystems.BondSymbol.Implicit ? pendingSymbol : atOpening;

        /// <summary>The order of the ring bond a label closes, by the rule of <see cref="ClosingSymbol"/>.</summary>
        private int ClosingOrder((int Atom, int Order, AromaticSystems.BondSymbol Symbol) opened) =>
            last == Kind.Bond && opened.Symbol == AromaticSystems.BondSymbol.Implicit ? pendingOrder : opened.Order;

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
                if (Room(atom) >= 1) return true;
            }
            return false;
        }

        /// <summary>
        /// A new label opens a ring if the atom has room for the bond and more (to reach the atom that closes it); an open
        /// one closes it, unless that would bond an atom to itself or repeat a bond.
        /// </summary>
        private bool CanUseLabel(int label, int order, int room, int slotsLeft, bool roomBelow)
        {
            if (slotsLeft < 1) return false;
            if (!openRings.TryGetValue(label, out var opened)) return room >= order && (Math.Min(room - order, slotsLeft - 1) >= 1 || roomBelow);
            int opener = opened.Atom;
            if (opener == current || parents[current] == opener || parents[opener] == current) return false;
            int closingOrder = ClosingOrder(opened);
            // A bond written at the closure (C1CCC#1) raises the order the opening atom gave: it needs the difference free.
            return room >= closingOrder && free[opener] >= closingOrder - opened.Order && !ringBonds.Contains(Pair(opener, current))
                && Completable(openRings.Count - 1, Math.Min(room - closingOrder, slotsLeft - 1) >= 1 || roomBelow);
        }

        /// <summary>Whether <paramref name="atom"/> can take one more single bond: valence and a neighbour to spare.</summary>
        private int Room(int atom) => Math.Min(free[atom], slots[atom]);

        private static (int, int) Pair(int a, int b) => a < b ? (a, b) : (b, a);

        public void Advance(long token)
        {
            written.Add(token);
            Apply(token);
        }

        /// <summary>The token's change to the state, without recording it (the lookaheads undo it).</summary>
        private void Apply(long token)
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
                    slots.Add(grammar.neighbourLimits[token] - (connects ? 1 : 0));
                    aromatics.AddAtom(grammar.atomFacts[token]);
                    if (connects)
                    {
                        free[current] -= order;
                        slots[current]--;
                        aromatics.AddBond(current, parents.Count - 1, last == Kind.Bond ? pendingSymbol : AromaticSystems.BondSymbol.Implicit);
                    }
                    current = parents.Count - 1;
                    break;
                case Kind.RingLabel when current >= 0:
                    if (openRings.Remove(value, out var opened))
                    {
                        int closing = ClosingOrder(opened);
                        free[current] -= closing;
                        slots[current]--;
                        free[opened.Atom] -= closing - opened.Order; // an explicit bond at the closure may raise the order
                        ringBonds.Add(Pair(opened.Atom, current));
                        aromatics.AddBond(opened.Atom, current, ClosingSymbol(opened.Symbol));
                    }
                    else
                    {
                        openRings[value] = (current, order, last == Kind.Bond ? pendingSymbol : AromaticSystems.BondSymbol.Implicit);
                        free[current] -= order;
                        slots[current]--;
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
                    pendingSymbol = grammar.bondSymbols[token];
                    break;
            }
            last = kind;
        }
    }
}
