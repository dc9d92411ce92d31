using BioForge.Chem;

namespace BioForge.Tests;

/// <summary>Runs alone: a test here counts the process's live RDKit handles, which tests running beside it would change.</summary>
[CollectionDefinition(nameof(GraphGeneticOperatorsTests), DisableParallelization = true)]
public sealed class GraphGeneticOperatorsCollection;

[Collection(nameof(GraphGeneticOperatorsTests))]
public sealed class GraphGeneticOperatorsTests
{
    // Drug-like parents with chains, fused and single rings, hetero atoms (celecoxib, albuterol, amlodipine, aspirin, caffeine, ibuprofen).
    private static readonly string[] Parents =
    [
        "Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1",
        "CC(C)(C)NCC(O)c1ccc(O)c(CO)c1",
        "CCOC(=O)C1=C(COCCN)NC(C)=C(C(=O)OC)C1c1ccccc1Cl",
        "CC(=O)Oc1ccccc1C(=O)O",
        "Cn1c(=O)c2c(ncn2C)n(C)c1=O",
        "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    ];

    [Fact]
    public void AReactionEditsEveryPlaceItsTemplateMatchesAndRefusesBadInput()
    {
        using var fluorinate = new Reaction("[*;!H0:1]>>[*:1]F");
        using var propane = Molecule.FromSmiles("CCC");
        Assert.Equal(["CCCF", "CC(C)F", "CCCF"], fluorinate.Run(propane));
        // Bond patterns reach into aromatic rings: benzene's kekulized double bonds can be made single.
        using var saturate = new Reaction("[*:1]=[*:2]>>[*:1]-[*:2]");
        using var benzene = Molecule.FromSmiles("c1ccccc1");
        Assert.All(saturate.Run(benzene), p => Assert.Equal("C1=CCCC=C1", p));
        // A product that cannot be sanitized (pentavalent carbon) is left out, not returned broken.
        using var overload = new Reaction("[C:1]>>[C:1](C)(C)(C)(C)C");
        Assert.Empty(overload.Run(propane));

        Assert.Contains("invalid reaction SMARTS '[C:1>>C'", Assert.Throws<BioForgeException>(() => new Reaction("[C:1>>C")).Message);
        // Templates RDKit parses but cannot match (no product; a map number twice) are refused as the SMARTS they are,
        // not found out when run, as a fault of RDKit's.
        foreach (string unmatched in new[] { "[C:1]>>", "[C:1][C:1]>>[C:1]" })
        {
            var refused = Assert.Throws<BioForgeException>(() => new Reaction(unmatched));
            Assert.Contains($"invalid reaction SMARTS '{unmatched}': reaction SMARTS does not validate", refused.Message);
            Assert.False(refused.ServerFault);
        }
        var e = Assert.Throws<BioForgeException>(() => fluorinate.Run(propane, propane));
        Assert.Contains("takes 1 reactants, not 2", e.Message);
    }

    [Fact]
    public void CuttingBondsLeavesPiecesCappedWithLabelledDummyAtoms()
    {
        using var ester = Molecule.FromSmiles("CCOC(=O)c1ccccc1"); // atoms: C0 C1 O2 C3 (=O4) c5 …
        Assert.Equal(["[1*]OCC", "[1*]C(=O)c1ccccc1"], ester.FragmentOnBonds([(2, 3)]));
        Assert.Contains("atoms 0 and 5 are not bonded", Assert.Throws<BioForgeException>(() => ester.FragmentOnBonds([(0, 5)])).Message);
        // RDKit would read the second copy of a bond after freeing it.
        Assert.Contains("the bond between atoms 3 and 2 is named twice", Assert.Throws<BioForgeException>(() => ester.FragmentOnBonds([(2, 3), (3, 2)])).Message);
        var none = Assert.Throws<BioForgeException>(() => ester.FragmentOnBonds([]));
        Assert.Contains("no bond to cut", none.Message);
        Assert.False(none.ServerFault);
    }

    [Fact]
    public void ChildrenAreNewValidDrugSizedMoleculesAndASeedRepeatsThem()
    {
        // Earlier tests' molecules left to finalizers are freed first, so only this test's handles are counted.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long handlesBefore = RDKitNative.bf_live_handles();
        var first = Breed(seed: 11);
        Assert.Equal(first, Breed(seed: 11));
        Assert.NotEqual(first, Breed(seed: 12));

        var children = first.Where(c => c is not null).Select(c => c!).ToList();
        Assert.True(children.Count >= first.Count * 0.6, $"only {children.Count} of {first.Count} crossovers made a child");
        Assert.True(children.Distinct().Count() >= children.Count * 0.7, "crossover keeps making the same child");
        foreach (string child in children)
        {
            Assert.DoesNotContain(child, Parents);
            using var molecule = Molecule.FromSmiles(child);
            Assert.Equal(child, molecule.ToSmiles()); // canonical
            int atoms = molecule.Atoms().Count;
            Assert.InRange(atoms, 6, 55);
            Assert.DoesNotContain("*", child);
            Assert.All(molecule.RingSizes(), size => Assert.InRange(size, 3, 8));
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.Equal(handlesBefore, RDKitNative.bf_live_handles());
    }

    [Fact]
    public void MutantsDifferFromTheirParentByOneGraphEdit()
    {
        using var operators = new GraphGeneticOperators();
        var random = new Random(5);
        int made = 0;
        foreach (string smiles in Parents)
        {
            using var parent = Molecule.FromSmiles(smiles);
            for (int i = 0; i < 10; i++)
            {
                string? mutant = operators.Mutate(parent, random);
                if (mutant is null) continue;
                made++;
                Assert.NotEqual(parent.ToSmiles(), mutant);
                using var molecule = Molecule.FromSmiles(mutant);
                int delta = Math.Abs(molecule.Atoms().Count - parent.Atoms().Count);
                Assert.True(delta <= 1, $"{smiles} -> {mutant}: one edit adds or removes at most one atom");
                Assert.All(molecule.RingSizes(), size => Assert.InRange(size, 3, 6));
            }
        }
        Assert.True(made >= 40, $"only {made} of 60 mutations made a molecule");
    }

    /// <summary>
    /// GB-GA's edits as GB-GA writes them: a double bond between atoms with no hydrogen (a ketone's C=O) can be made
    /// single (a template here asked for a hydrogen on one end, so 4-octanone never became 4-octanol), and an element is
    /// changed only from one the molecule has.
    /// </summary>
    [Fact]
    public void AKetonesCarbonylCanBeSaturatedAndOnlyElementsPresentAreChanged()
    {
        using var operators = new GraphGeneticOperators();
        using var ketone = Molecule.FromSmiles("CCCCC(=O)CCC");
        var random = new Random(3);
        var mutants = Enumerable.Range(0, 400).Select(_ => operators.Mutate(ketone, random)).ToHashSet();
        Assert.Contains("CCCCC(O)CCC", mutants);
        for (int i = 0; i < 200; i++)
        {
            string edit = GraphGeneticOperators.ChangeAtom(random, ketone)!;
            Assert.True(edit.StartsWith("[#6:1]>>", StringComparison.Ordinal) || edit.StartsWith("[#8:1]>>", StringComparison.Ordinal), edit);
        }
        using var phosphine = Molecule.FromSmiles("P(I)(I)I");
        Assert.Null(GraphGeneticOperators.ChangeAtom(random, phosphine)); // none of GB-GA's elements to change
    }

    private static List<string?> Breed(int seed)
    {
        using var operators = new GraphGeneticOperators();
        var random = new Random(seed);
        var molecules = Parents.Select(Molecule.FromSmiles).ToList();
        try
        {
            var children = new List<string?>();
            for (int i = 0; i < 40; i++)
                children.Add(operators.Reproduce(molecules[random.Next(molecules.Count)], molecules[random.Next(molecules.Count)], 0.5, random));
            return children;
        }
        finally
        {
            foreach (var m in molecules) m.Dispose();
        }
    }
}
