namespace BioForge.Chem;

/// <summary>
/// The graph-based genetic operators of Jensen's GB-GA (Chem. Sci. 2019; the "Graph GA" of the PMO benchmark):
/// crossover joins a piece of one parent to a piece of the other, cut either at a chain bond or across a ring;
/// mutation makes one random graph edit (insert, append, delete or change an atom, change a bond order, open or close
/// a ring), each written as reaction SMARTS. A child must sanitize, have more than 5 and fewer than about 39 atoms
/// (a size drawn around ZINC's, so the population does not grow without bound) and, if it has rings, no ring larger
/// than 6, no allene in a ring and no double bond in a 3- or 4-ring. Every choice comes from the caller's
/// <see cref="Random"/>: one seed, the same children.
/// </summary>
internal sealed class GraphGeneticOperators : IDisposable
{
    // GB-GA's size rule: fewer atoms than a draw from N(39.15, 3.50), ZINC's heavy-atom count.
    private const double MeanSize = 39.15, SizeSpread = 3.50;
    private const int Tries = 10;

    private readonly Dictionary<string, Reaction> reactions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SmartsQuery> queries = new(StringComparer.Ordinal);

    /// <summary>One weighted choice of a mutation: the reaction SMARTS it applies to a molecule (null: none applies), made from the random draws it needs.</summary>
    private sealed record Edit(double Weight, Func<Random, Molecule, string?> Smarts);

    // (weight, SMARTS) alternatives inside each kind of edit, and the kinds' weights, as in GB-GA.
    private static readonly (double Weight, Edit[] Alternatives)[] Mutations =
    [
        (0.15, Bonded("[*:1]~[*:2]>>[*:1]X[*:2]", ["C", "N", "O", "S"], "[*;!H0:1]~[*:2]>>[*:1]=X-[*:2]", ["C", "N"], "[*;!R;!H1;!H0:1]~[*:2]>>[*:1]#X-[*:2]", ["C"])), // insert an atom
        (0.14, Fixed((0.45, "[*:1]!-[*:2]>>[*:1]-[*:2]"), (0.45, "[*;!H0:1]-[*;!H0:2]>>[*:1]=[*:2]"), (0.05, "[*:1]#[*:2]>>[*:1]=[*:2]"),
            (0.05, "[*;!R;!H1;!H0:1]~[*:2]>>[*:1]#[*:2]"))), // change a bond order
        (0.14, Fixed((1.0, "[*:1]@[*:2]>>([*:1].[*:2])"))), // open a ring
        (0.14, Fixed((0.05, "[*;!r;!H0:1]~[*;!r:2]~[*;!r;!H0:3]>>[*:1]1~[*:2]~[*:3]1"), (0.05, "[*;!r;!H0:1]~[*!r:2]~[*!r:3]~[*;!r;!H0:4]>>[*:1]1~[*:2]~[*:3]~[*:4]1"),
            (0.45, "[*;!r;!H0:1]~[*!r:2]~[*:3]~[*:4]~[*;!r;!H0:5]>>[*:1]1~[*:2]~[*:3]~[*:4]~[*:5]1"),
            (0.45, "[*;!r;!H0:1]~[*!r:2]~[*:3]~[*:4]~[*!r:5]~[*;!r;!H0:6]>>[*:1]1~[*:2]~[*:3]~[*:4]~[*:5]~[*:6]1"))), // close a ring
        (0.14, Fixed((0.25, "[*:1]~[D1:2]>>[*:1]"), (0.25, "[*:1]~[D2:2]~[*:3]>>[*:1]-[*:3]"), (0.25, "[*:1]~[D3:2](~[*;!H0:3])~[*:4]>>[*:1]-[*:3]-[*:4]"),
            (0.1875, "[*:1]~[D4:2](~[*;!H0:3])(~[*;!H0:4])~[*:5]>>[*:1]-[*:3]-[*:4]-[*:5]"),
            (0.0625, "[*:1]~[D4:2](~[*;!H0;!H1:3])(~[*:4])~[*:5]>>[*:1]-[*:3](-[*:4])-[*:5]"))), // delete an atom
        (0.14, [new Edit(1.0, ChangeAtom)]), // change an element
        (0.15, Bonded("[*;!H0:1]>>[*:1]X", ["C", "N", "O", "F", "S", "Cl", "Br"], "[*;!H0;!H1:1]>>[*:1]=X", ["C", "N", "O"], "[*;H3:1]>>[*:1]#X", ["C", "N"])), // append an atom
    ];

    private static readonly int[] Elements = [6, 7, 8, 9, 16, 17, 35];
    private static readonly double[] ElementWeights = [0.15, 0.15, 0.14, 0.14, 0.14, 0.14, 0.14];

    private static Edit[] Fixed(params (double Weight, string Smarts)[] alternatives) => [.. alternatives.Select(a => new Edit(a.Weight, (_, _) => a.Smarts))];

    /// <summary>Single, double and triple variants (weights 0.60, 0.35, 0.05), each with a random element for X.</summary>
    private static Edit[] Bonded(string single, string[] singleElements, string @double, string[] doubleElements, string triple, string[] tripleElements) =>
    [
        new(0.60, (r, _) => single.Replace("X", singleElements[r.Next(singleElements.Length)], StringComparison.Ordinal)),
        new(0.35, (r, _) => @double.Replace("X", doubleElements[r.Next(doubleElements.Length)], StringComparison.Ordinal)),
        new(0.05, (r, _) => triple.Replace("X", tripleElements[r.Next(tripleElements.Length)], StringComparison.Ordinal)),
    ];

    /// <summary>
    /// An element the molecule has, into another: GB-GA draws the first until the molecule has it, which is a draw
    /// among the elements present (a template for an absent one would match nothing and spend one of the ten tries).
    /// </summary>
    internal static string? ChangeAtom(Random random, Molecule molecule)
    {
        var present = molecule.Atoms().Select(a => a.AtomicNumber).ToHashSet();
        var weights = Elements.Select((e, i) => present.Contains(e) ? ElementWeights[i] : 0).ToArray();
        if (weights.All(w => w == 0)) return null;
        int from = Elements[Pick(random, weights)], to;
        do to = Elements[Pick(random, ElementWeights)]; while (to == from);
        return $"[#{from}:1]>>[#{to}:1]";
    }

    /// <summary>
    /// A child of two parents: crossover, then with probability <paramref name="mutationRate"/> a mutation of the
    /// child. Canonical SMILES, or null when no child different from its parents came out.
    /// </summary>
    public string? Reproduce(Molecule first, Molecule second, double mutationRate, Random random)
    {
        string? child = Crossover(first, second, random);
        if (child is null || random.NextDouble() >= mutationRate) return child;
        if (!Molecule.TryFromSmiles(child, out var molecule, out _)) return null;
        using (molecule) return Mutate(molecule!, random);
    }

    /// <summary>A crossover child (canonical SMILES) that is neither parent, or null after ten tries.</summary>
    private string? Crossover(Molecule first, Molecule second, Random random)
    {
        var parents = new HashSet<string>([first.ToSmiles(), second.ToSmiles()], StringComparer.Ordinal);
        for (int i = 0; i < Tries; i++)
        {
            string? child = random.NextDouble() <= 0.5 ? ChainCrossover(first, second, random) : RingCrossover(first, second, random);
            if (child is not null && !parents.Contains(child)) return child;
        }
        return null;
    }

    /// <summary>A mutant (canonical SMILES) of the molecule, or null when ten random edits made nothing acceptable.</summary>
    public string? Mutate(Molecule molecule, Random random)
    {
        for (int i = 0; i < Tries; i++)
        {
            var alternatives = Mutations[Pick(random, [.. Mutations.Select(m => m.Weight)])].Alternatives;
            var edit = alternatives[Pick(random, [.. alternatives.Select(a => a.Weight)])];
            if (edit.Smarts(random, molecule) is not { } smarts) continue;
            using var products = new Products();
            var children = ReactionOf(smarts).Run(molecule).Where(c => Acceptable(products.Read(c), random, ringCheck: true)).ToList();
            if (children.Count > 0) return children[random.Next(children.Count)];
        }
        return null;
    }

    // Cut each parent at a random acyclic single bond and join a piece of one to a piece of the other.
    private string? ChainCrossover(Molecule first, Molecule second, Random random)
    {
        var join = ReactionOf("[*:1]-[1*].[1*]-[*:2]>>[*:1]-[*:2]");
        for (int i = 0; i < Tries; i++)
        {
            var piecesA = CutChain(first, random);
            var piecesB = CutChain(second, random);
            if (piecesA is null || piecesB is null) return null;
            using var products = new Products();
            var children = Join(join, products.ReadAll(piecesA), products.ReadAll(piecesB)).Where(c => Acceptable(products.Read(c), random, ringCheck: false)).ToList();
            if (children.Count > 0) return children[random.Next(children.Count)];
        }
        return null;
    }

    // Cut a ring system of each parent open at two bonds and close new rings from a piece of each.
    private string? RingCrossover(Molecule first, Molecule second, Random random)
    {
        var ring = Query("[R]");
        if (!first.HasMatch(ring) && !second.HasMatch(ring)) return null;
        string[] joins = ["[*:1]~[1*].[1*]~[*:2]>>[*:1]-[*:2]", "[*:1]~[1*].[1*]~[*:2]>>[*:1]=[*:2]"];
        string[] closures = ["([*:1]~[1*].[1*]~[*:2])>>[*:1]-[*:2]", "([*:1]~[1*].[1*]~[*:2])>>[*:1]=[*:2]"];
        for (int i = 0; i < Tries; i++)
        {
            var piecesA = CutRing(first, random);
            var piecesB = CutRing(second, random);
            if (piecesA is null || piecesB is null) return null;
            using var products = new Products();
            var (readA, readB) = (products.ReadAll(piecesA), products.ReadAll(piecesB));
            var joined = joins.SelectMany(j => Join(ReactionOf(j), readA, readB)).Where(c => Acceptable(products.Read(c), random, ringCheck: false)).ToList();
            var children = new List<string>();
            foreach (string smiles in joined)
                foreach (string closure in closures)
                    children.AddRange(ReactionOf(closure).Run(products.Read(smiles)!).Where(c => Acceptable(products.Read(c), random, ringCheck: true)));
            if (children.Count > 0) return children[random.Next(children.Count)];
        }
        return null;
    }

    private static List<string> Join(Reaction join, IReadOnlyList<Molecule> piecesA, IReadOnlyList<Molecule> piecesB)
    {
        var products = new List<string>();
        foreach (var a in piecesA)
            foreach (var b in piecesB)
                if (join.Run(a, b) is [var first, ..]) products.Add(first);
        return products;
    }

    /// <summary>
    /// The molecules of one try, each SMILES read once: a piece takes part in every join, the same product comes out of
    /// several (a ring closure matches both ways round), and a joined product is read again to close its rings.
    /// </summary>
    private sealed class Products : IDisposable
    {
        private readonly Dictionary<string, Molecule?> read = new(StringComparer.Ordinal);

        /// <summary>The molecule, or null where RDKit cannot read the SMILES (it writes some sanitized pieces so).</summary>
        public Molecule? Read(string smiles)
        {
            if (!read.TryGetValue(smiles, out var molecule))
                read[smiles] = molecule = Molecule.TryFromSmiles(smiles, out var parsed, out _) ? parsed : null;
            return molecule;
        }

        /// <summary>The pieces RDKit reads, in order: one it cannot read joins nothing.</summary>
        public List<Molecule> ReadAll(IEnumerable<string> pieces) => [.. pieces.Select(Read).OfType<Molecule>()];

        public void Dispose()
        {
            foreach (var molecule in read.Values) molecule?.Dispose();
        }
    }

    private IReadOnlyList<string>? CutChain(Molecule molecule, Random random)
    {
        var bonds = molecule.SubstructureMatches(Query("[*]-;!@[*]"));
        if (bonds.Count == 0) return null;
        var bond = bonds[random.Next(bonds.Count)];
        return TryFragment(molecule, [(bond[0], bond[1])]);
    }

    // Two bonds of a ring system: two ring bonds one bond apart, or the two ring bonds on either side of a branched ring atom.
    private IReadOnlyList<string>? CutRing(Molecule molecule, Random random)
    {
        for (int i = 0; i < Tries; i++)
        {
            bool apart = random.NextDouble() < 0.5;
            var matches = molecule.SubstructureMatches(Query(apart ? "[R]@[R]@[R]@[R]" : "[R]@[R;!D2]@[R]"));
            if (matches.Count == 0) continue;
            var m = matches[random.Next(matches.Count)];
            var pieces = TryFragment(molecule, apart ? [(m[0], m[1]), (m[2], m[3])] : [(m[0], m[1]), (m[1], m[2])]);
            if (pieces is null) return null;
            if (pieces.Count == 2) return pieces;
        }
        return null;
    }

    private static IReadOnlyList<string>? TryFragment(Molecule molecule, IReadOnlyList<(int, int)> bonds)
    {
        try
        {
            return molecule.FragmentOnBonds(bonds);
        }
        catch (BioForgeException)
        {
            return null; // a piece RDKit cannot sanitize (an aromatic ring cut open) is no parent material
        }
    }

    private bool Acceptable(Molecule? molecule, Random random, bool ringCheck)
    {
        if (molecule is null) return false;
        int atoms = molecule.Atoms().Count;
        if (atoms <= 5 || atoms >= MeanSize + SizeSpread * Gaussian(random)) return false;
        return !ringCheck || RingsAcceptable(molecule);
    }

    private bool RingsAcceptable(Molecule molecule)
    {
        var sizes = molecule.RingSizes();
        if (sizes.Count == 0) return true;
        return sizes.Max() <= 6 && !molecule.HasMatch(Query("[R]=[R]=[R]")) && !molecule.HasMatch(Query("[r3,r4]=[r3,r4]"));
    }

    private static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    /// <summary>An index drawn with probability proportional to its weight.</summary>
    internal static int Pick(Random random, IReadOnlyList<double> weights)
    {
        double u = random.NextDouble() * weights.Sum();
        for (int i = 0; i < weights.Count; i++)
        {
            u -= weights[i];
            if (u < 0) return i;
        }
        // Rounding left u at or above 0: the last choice that can be drawn at all.
        for (int i = weights.Count - 1; i > 0; i--)
            if (weights[i] > 0) return i;
        return 0;
    }

    private Reaction ReactionOf(string smarts)
    {
        if (!reactions.TryGetValue(smarts, out var reaction)) reactions[smarts] = reaction = new Reaction(smarts);
        return reaction;
    }

    private SmartsQuery Query(string smarts)
    {
        if (!queries.TryGetValue(smarts, out var query)) queries[smarts] = query = new SmartsQuery(smarts);
        return query;
    }

    public void Dispose()
    {
        foreach (var r in reactions.Values) r.Dispose();
        foreach (var q in queries.Values) q.Dispose();
    }
}
