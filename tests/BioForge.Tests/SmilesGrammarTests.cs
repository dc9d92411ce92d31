using BioForge.Chem;
using BioForge.Generation;
using BioForge.Models.Llama;
using BioForge.Tokenizers;
using static TorchSharp.torch;

namespace BioForge.Tests;

public sealed class SmilesGrammarTests
{
    private static readonly string[] Tricky =
    [
        "C1CC=1", "c1ccccc1", "C%10CC%10", "[NH3+]CC(=O)[O-]", "C12(CC1)CC2", "CC.O", "C/C=C\\C", "C(C)(C)(C)C", "OS(=O)(=O)O",
        "O=[N+]([O-])c1ccccc1", "C#N", "[Na+].[Cl-]", "P(=O)(O)(O)O", "F(C)", "C1CC2CCC1C2", "C1=CC=CC=C1", "C(=O)=O", "[2H]C",
        "C[C@@H]1CC[C@H](O)CC1", "c1ccc2c(c1)[nH]c1ccccc12", "C1CCC2(CC1)OCCO2", "Cl[C@](F)(Br)I", "N1CC1.N1CC1", "[O-]c1ccccc1",
        "O=S1(=O)CCCC1", "C=1CC1", "C1CC1C1CC1",
        // Aromatic systems RDKit kekulizes: charged rings, exocyclic double bonds, hydrogens in brackets, fused and bridgehead atoms.
        "c1cc[o+]cc1", "c1cc[s+]cc1", "O=c1cccc[nH]1", "c1ccn2ccccc12", "C[n+]1ccccc1", "c1cc[nH+]cc1", "c1ccccc1c1ccccc1",
        "c1cc[se]c1", "Cc1ccc[n-]1", "O=s1cccc1", "c1ccnc1=O", "c1c[nH]c(=O)[nH]c1=O", "C=c1cccc[nH]1", "[O-][n+]1ccccc1",
        "O=c1ccocc1", "c1cc2ccc3cccc4ccc(c1)c2c34", "b1ccccc1", "c1ccpcc1", "[cH-]1cccc1", "[cH+]1cccccc1", "c1ccc2cccc2cc1",
        "c1ccccc1:c1ccccc1", "c1ccc2[nH]ccc2c1",
        // A branch on a ring's closing atom where it has room: the nitrogen's lone pair may stand for the ring's double bond.
        "c1cnc(C)n1(C)", "c1ccccc1(C)", "CCc1nc(CN)on1",
        // A ring label after a closed branch is the branch point's (RDKit reads it; OpenSMILES writes it before the branch).
        "C(C)1CC1", "C(C)=1CC1", "CC(O)1CCCC1",
        // A ring bond written at both ends has the opening's order (RDKit: C-1CCCCC=1 is cyclohexane).
        "C-1(C)(C)CCCC=1",
    ];

    /// <summary>Walks a SMILES through the grammar: every token must be allowed where it stands, and the end after it.</summary>
    private static (bool Accepted, string Where) Walk(SmilesGrammar grammar, SmilesVocabulary vocabulary, string smiles)
    {
        var state = grammar.Start();
        var allowed = new bool[vocabulary.Count];
        var completing = new bool[vocabulary.Count];
        var ids = vocabulary.Encode(smiles);
        for (int i = 1; i < ids.Length; i++)
        {
            state.Next(allowed, completing);
            if (!allowed[ids[i]]) return (false, $"token {i} ('{(ids[i] == SmilesVocabulary.EosId ? "<eos>" : vocabulary.Tokens[ids[i]])}')");
            state.Advance(ids[i]);
        }
        return (true, "");
    }

    [Fact]
    public void EveryValidSmilesPasses()
    {
        // ZINC250k's validation and test splits (9,420 molecules) plus hand-picked corner cases: a grammar that refused
        // one of them would take probability from a valid molecule (and the likelihoods the optimizer learns from).
        var smiles = new[] { "valid.smi.gz", "test.smi.gz" }.SelectMany(f => MoleculeSource.Read(Path.Combine(Repository.Root, "data", "zinc250k", f)))
            .Select(r => r.Text).Concat(Tricky).ToList();
        var vocabulary = SmilesVocabulary.Build(smiles);
        var grammar = new SmilesGrammar(vocabulary);
        foreach (string s in smiles)
        {
            Assert.True(Molecule.TryFromSmiles(s, out var molecule, out _), s);
            molecule!.Dispose();
            var (accepted, where) = Walk(grammar, vocabulary, s);
            Assert.True(accepted, $"{s}: refused at {where}");
        }
    }

    [Theory]
    [InlineData("C(", "<eos>")] // open branch
    [InlineData("C1CC", "<eos>")] // open ring
    [InlineData("C1", "1")] // ring bond to itself
    [InlineData("C1C", "1")] // ring bond repeating a chain bond
    [InlineData("C12C", "2")] // …and the other label on the same pair
    [InlineData("CC(C)(C)(C)", "C")] // a fifth bond on carbon
    [InlineData("F(C)", "C")] // a second bond on fluorine
    [InlineData("[O-]", "=")] // a double bond on a one-bond atom
    [InlineData("C[NH3+]", "(")] // no room for a branch
    [InlineData("C=", "(")] // a bond needs an atom
    [InlineData("C(", ")")] // an empty branch
    [InlineData("C1(F)(F)CCC#", "1")] // a triple bond at the closure would give the opening carbon six bonds
    [InlineData("", "(")] // nothing to branch from
    [InlineData("C1CC", "F")] // F would take the last bond while ring 1 is open: a dead end
    [InlineData("c1cccc2ccccc12", "C")] // a fourth neighbour on an aromatic carbon (naphthalene's fusion atom)
    [InlineData("c1cccc2ccccc12", "(")] // …nor a branch that would bring one
    [InlineData("c1ccc2(C", ")")] // the fusion atom could take no more bonds, and rings 1 and 2 would stay open
    public void IllFormedContinuationsAreRefused(string prefix, string next)
        => AssertRefused(prefix, next);

    /// <summary>After <paramref name="prefix"/>, <paramref name="next"/> is refused while some other token is still allowed.</summary>
    private static void AssertRefused(string prefix, string next)
    {
        var vocabulary = SmilesVocabulary.Build([.. Tricky, "C1CCF", "N#N", "Cc1cc(=O)c(C)oc1C", "C(c)C", "c1cccc1=O", "c1ccccc1-c1ccccc1"]);
        var grammar = new SmilesGrammar(vocabulary);
        var state = grammar.Start();
        foreach (int id in vocabulary.Encode(prefix)[1..^1]) state.Advance(id);
        var allowed = new bool[vocabulary.Count];
        var completing = new bool[vocabulary.Count];
        state.Next(allowed, completing);
        int token = next == "<eos>" ? SmilesVocabulary.EosId : vocabulary.Encode(next)[1];
        Assert.False(allowed[token], $"'{prefix}' then '{next}' was allowed");
        Assert.Contains(true, allowed.AsSpan().ToArray());
    }

    [Theory]
    [InlineData("c1cccc1", "<eos>")] // five aromatic carbons: one is left without a double bond (c1cccc1=O would do)
    [InlineData("c1cccc1", "C")] // …and a single bond does not help it
    [InlineData("c1ccc(=O)cc", "1")] // the same around an exocyclic double bond
    [InlineData("c1ccnc1", "<eos>")] // pyrrole's nitrogen needs its hydrogen written ([nH])
    [InlineData("c1ccccc1", "=")] // a double bond out of benzene leaves five atoms to pair
    [InlineData("C(c", ")")] // an aromatic atom sealed outside any ring
    [InlineData("Cc1cc(=O)c(C)", "o")] // the carbon after the carbonyl has no partner left: the ring oxygen takes none
    [InlineData("c1c2ccccc2cc1", "-")] // nine ring carbons: only an exocyclic double bond (=O) could pair the last one
    [InlineData("C=1CCCC(C)(C)-", "1")] // the opening's '=' is the ring bond's order: a fifth bond on the closing carbon
    public void UnkekulizableContinuationsAreRefused(string prefix, string next)
        => AssertRefused(prefix, next);

    /// <summary>
    /// RDKit refuses an aromatic atom on no ring ("non-ring atom marked aromatic"). The token after which one could never
    /// be on a ring is refused, where the end was refused before and samples ran on to the length limit: every bond to
    /// come must reach the current atom, a branch point with room, or an atom with a ring label open.
    /// </summary>
    [Theory]
    [InlineData("c1ccccc1", "[nH]")] // room for one more bond, and nothing left open to close a ring through it
    [InlineData("C[N+](=O)", "o")] // the same for a ring oxygen after a nitro group's nitrogen
    [InlineData("Cc(C", ")")] // the branch's carbon is sealed; the aromatic carbon is left room for one bond
    [InlineData("Cc", "C")] // the aromatic carbon is sealed between two chain atoms
    public void AnAromaticAtomThatCouldNeverBeOnARingIsRefused(string prefix, string next)
        => AssertRefused(prefix, next);

    /// <summary>Prefixes whose aromatic atom can still be on a ring keep the tokens that lead there.</summary>
    [Theory]
    [InlineData("Cc", "1")] // a ring label opened on it
    [InlineData("Cc1ccc(C", ")")] // the branch point stays open to the ring
    [InlineData("c1ccc2c(c1)", "[nH]")] // ring 2 is open through the fused carbon
    [InlineData("c1cc(-c2ccccc2)", "c")] // the branch's ring is closed, and ring 1 is open
    public void AnAromaticAtomThatCanStillBeOnARingIsAllowed(string prefix, string next)
    {
        var vocabulary = SmilesVocabulary.Build([.. Tricky, prefix + next]);
        var grammar = new SmilesGrammar(vocabulary);
        var state = grammar.Start();
        foreach (int id in vocabulary.Encode(prefix)[1..^1]) state.Advance(id);
        var allowed = new bool[vocabulary.Count];
        state.Next(allowed, new bool[vocabulary.Count]);
        Assert.True(allowed[vocabulary.Encode(next)[1]], $"'{prefix}' then '{next}' was refused");
    }

    /// <summary>
    /// Molecules every token of which the grammar allows, but RDKit cannot read once they end: two odd rings joined by a
    /// bond on no ring, which RDKit makes single, so neither ring can lend the other the double bond it lacks. The end is
    /// refused; before the check it was allowed.
    /// </summary>
    [Theory]
    [InlineData("c1cccc1c1cccc1")]
    [InlineData("c1ccc[nH]1")] // a control: pyrrole ends
    public void TheEndIsRefusedWhereRdkitCannotReadTheMolecule(string smiles)
    {
        var vocabulary = SmilesVocabulary.Build([.. Tricky, smiles]);
        var grammar = new SmilesGrammar(vocabulary);
        var state = grammar.Start();
        var allowed = new bool[vocabulary.Count];
        var completing = new bool[vocabulary.Count];
        var ids = vocabulary.Encode(smiles);
        foreach (int id in ids[1..^1])
        {
            state.Next(allowed, completing);
            Assert.True(allowed[id], $"{smiles}: '{vocabulary.Tokens[id]}' refused before the end");
            state.Advance(id);
        }
        state.Next(allowed, completing);
        bool readable = Molecule.TryFromSmiles(smiles, out var molecule, out _);
        molecule?.Dispose();
        Assert.Equal(readable, allowed[SmilesVocabulary.EosId]);
    }

    /// <summary>
    /// A branch commits an atom to one more neighbour: on the oxadiazole's closing nitrogen, whose last valence its ring
    /// needs, none can follow (min_tokens samples wrote c1noc(C)n1(C), which RDKit cannot kekulize, once the end was held
    /// back); on the imidazole's, whose lone pair can stand for the double bond, one can. (A vocabulary without ':',
    /// whose explicit aromatic bond out of the nitrogen the grammar cannot rule out.)
    /// </summary>
    [Fact]
    public void ABranchOnARingAtomWithNoValenceToSpareIsRefused()
    {
        var vocabulary = SmilesVocabulary.Build(["c1noc(C)n1", "CCc1nc(CN)on1", "c1cnc(C)n1(C)", "c1ccccc1(O)"]);
        var grammar = new SmilesGrammar(vocabulary);
        bool BranchAllowed(string prefix, bool mayEnd = true)
        {
            var state = grammar.Start();
            foreach (int id in vocabulary.Encode(prefix)[1..^1]) state.Advance(id);
            var allowed = new bool[vocabulary.Count];
            state.Next(allowed, new bool[vocabulary.Count]);
            Assert.Equal(mayEnd, allowed[SmilesVocabulary.EosId]);
            return allowed[vocabulary.Encode("(")[1]];
        }
        Assert.False(BranchAllowed("c1noc(C)n1"));
        Assert.False(BranchAllowed("CCc1noc(CN)n1"));
        Assert.True(BranchAllowed("c1cnc(C)n1", mayEnd: false)); // its nitrogen needs a hydrogen or a substituent
        Assert.True(BranchAllowed("c1ccccc1"));
    }

    /// <summary>
    /// The tokens after which only ')' and the end may follow, which a minimum length holds back with the end: an atom or
    /// a branch's close that leaves no atom room for a bond, and a ring closure that leaves its aromatic ring none to give.
    /// </summary>
    [Theory]
    [InlineData("CC", "F", true)]
    [InlineData("CC", "C", false)]
    [InlineData("CC(F)(F)(F", ")", true)] // the branch point has no room left
    [InlineData("CC(F)(F", ")", false)]
    [InlineData("CC(", "F", false)] // the branch point keeps room for one more
    [InlineData("C1CC", "1", false)]
    [InlineData("C1CC(F)(F)C(F)", "1", false)] // the closing carbon keeps room for a fluorine
    [InlineData("C1CC(F)(F)C(F)(F)", "1", true)]
    [InlineData("CCn1ccc(C)n", "1", true)] // the pyrazole's second nitrogen needs its last valence for the ring
    [InlineData("CCc1ccccc", "1", false)] // benzene's last carbon may take a substituent
    [InlineData("CC1(CC=C=", "1", true)] // the closure's '=' takes the branch point's last room: ')' and the end follow
    [InlineData("CCc1nc2n(n1", "2", true)] // the branch point has room the aromatic rules will not let it use
    public void TokensAfterWhichOnlyTheEndCanComeAreMarked(string prefix, string next, bool ending)
    {
        // Without '.': with it a new molecule may follow any complete one, and no token is ending.
        foreach (string dot in new[] { "", "C.C" })
        {
            var vocabulary = SmilesVocabulary.Build(["CC(F)(F)F", "C1CCCC1", "CCn1ccc(C)n1", "c1ccccc1", "C=C", prefix + next, dot]);
            var grammar = new SmilesGrammar(vocabulary);
            var state = grammar.Start();
            foreach (int id in vocabulary.Encode(prefix)[1..^1]) state.Advance(id);
            var allowed = new bool[vocabulary.Count];
            var marked = new bool[vocabulary.Count];
            state.Next(allowed, new bool[vocabulary.Count]);
            state.Ending(allowed, marked);
            int token = vocabulary.Encode(next)[1];
            Assert.True(allowed[token], $"'{prefix}' then '{next}' was refused");
            Assert.Equal(ending && dot == "", marked[token]);
        }
    }

    [Fact]
    public void RandomWalksNeverReachADeadEnd()
    {
        // Uniform choices among the allowed tokens explore prefixes no model would write (rings on halogens, branches on
        // charged atoms): from every one of them some token must still be allowed.
        var vocabulary = SmilesVocabulary.Build(MoleculeSource.Read(Path.Combine(Repository.Root, "data", "zinc250k", "valid.smi.gz")).Select(r => r.Text));
        var grammar = new SmilesGrammar(vocabulary);
        var random = new Random(5);
        var allowed = new bool[vocabulary.Count];
        var completing = new bool[vocabulary.Count];
        int ended = 0;
        for (int walk = 0; walk < 3000; walk++)
        {
            var state = grammar.Start();
            for (int step = 0; step < 80; step++)
            {
                state.Next(allowed, completing);
                var choices = Enumerable.Range(0, vocabulary.Count).Where(t => allowed[t]).ToList();
                Assert.NotEmpty(choices);
                int token = choices[random.Next(choices.Count)];
                if (token == SmilesVocabulary.EosId)
                {
                    ended++;
                    break;
                }
                state.Advance(token);
            }
        }
        Assert.True(ended > 100, $"only {ended} walks ended");
    }

    [Fact]
    public void AnOpenRingLeadsAModelThatWantsToStopToCloseIt()
    {
        var vocabulary = SmilesVocabulary.Build(Tricky);
        var state = new SmilesGrammar(vocabulary).Start();
        foreach (int id in vocabulary.Encode("C1CC")[1..^1]) state.Advance(id);
        var allowed = new bool[vocabulary.Count];
        var completing = new bool[vocabulary.Count];
        state.Next(allowed, completing);
        Assert.True(completing[vocabulary.Encode("1")[1]]);
        Assert.False(completing[vocabulary.Encode("2")[1]]); // opening another ring does not complete anything
        Assert.False(completing[vocabulary.Encode("C")[1]]);
    }

    [Fact]
    public void ConstrainedSamplesAreWellFormedAndTheirLikelihoodsAreTheConstrainedOnes()
    {
        using var checkpoint = LlamaCheckpoint.Load(Path.Combine(Repository.Root, "models", "smiles-llama-small"), TestData.Cpu.Device, TestData.Cpu.DType);
        var vocabulary = checkpoint.Vocabulary!;
        var grammar = new SmilesGrammar(vocabulary);
        var options = new SamplingOptions { Grammar = grammar, MaxNewTokens = 100 };
        using var generator = Sampling.CreateGenerator(3);
        var samples = Sampling.Sample(checkpoint.Model, 48, options, generator);
        foreach (var s in samples.Where(s => s.Finished))
        {
            string smiles = vocabulary.DecodeRaw(s.Tokens);
            Assert.True(Walk(grammar, vocabulary, smiles).Accepted, smiles);
            Assert.Equal(smiles.Count(c => c == '('), smiles.Count(c => c == ')'));
        }
        Assert.True(samples.Count(s => s.Finished) >= 40);

        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var constrained = Sampling.LogLikelihood(checkpoint.Model, samples, grammar).data<float>().ToArray();
        var raw = Sampling.LogLikelihood(checkpoint.Model, samples).data<float>().ToArray();
        for (int i = 0; i < samples.Count; i++)
        {
            Assert.Equal(samples[i].LogLikelihood, constrained[i], 3);
            // Renormalising over fewer tokens can only raise a sequence's probability.
            Assert.True(constrained[i] >= raw[i] - 1e-4, $"sample {i}: constrained {constrained[i]} < raw {raw[i]}");
        }
    }

    [Fact]
    public void TheConstrainedLikelihoodHasFiniteGradients()
    {
        // The optimizer trains its agent through this likelihood: one NaN in the gradient makes every weight NaN and the
        // next sampling step fails (it did, at step 2 of every run with [sampling] grammar = "smiles").
        using var checkpoint = LlamaCheckpoint.Load(Path.Combine(Repository.Root, "models", "smiles-llama-small"), TestData.Cpu.Device, TestData.Cpu.DType);
        var vocabulary = checkpoint.Vocabulary!;
        var grammar = new SmilesGrammar(vocabulary);
        using var generator = Sampling.CreateGenerator(4);
        var samples = Sampling.Sample(checkpoint.Model, 16, new SamplingOptions { Grammar = grammar, MaxNewTokens = 80 }, generator);
        using var scope = NewDisposeScope();
        Sampling.LogLikelihood(checkpoint.Model, samples, grammar).sum().backward();
        foreach (var (name, parameter) in checkpoint.Model.named_parameters())
        {
            Assert.NotNull(parameter.grad);
            Assert.True(parameter.grad.isfinite().all().item<bool>(), $"{name}: the gradient has NaN or infinite entries");
        }
    }

    [Fact]
    public void TheDecodeSchedulerSamplesTheSameConstrainedDistribution()
    {
        using var checkpoint = LlamaCheckpoint.Load(Path.Combine(Repository.Root, "models", "smiles-llama-small"), TestData.Cpu.Device, TestData.Cpu.DType);
        var vocabulary = checkpoint.Vocabulary!;
        var generator = new SmilesGenerator(checkpoint);
        var options = new SamplingOptions { Grammar = generator.Grammar, MaxNewTokens = 100 };
        const string prompt = "c1ccc(";
        var molecules = generator.Generate(24, options, seed: 5, batchSize: 8, validOnly: false, prompt: prompt);
        Assert.True(molecules.Count(m => m.Finished) >= 20);
        foreach (var m in molecules.Where(m => m.Finished))
        {
            Assert.StartsWith(prompt, m.Smiles);
            Assert.True(Walk(generator.Grammar, vocabulary, m.Smiles).Accepted, m.Smiles);
        }

        // The likelihood the scheduler accumulated is the optimizer's constrained likelihood of the same tokens (prompt given).
        var promptIds = generator.EncodePrompt(prompt);
        var sequences = molecules.Select(m => new SampledSequence(
            [.. promptIds[1..].Select(i => (long)i), .. vocabulary.Encode(m.Smiles[prompt.Length..])[1..^1].Select(i => (long)i)], m.Finished, 0)).ToList();
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var whole = Sampling.LogLikelihood(checkpoint.Model, sequences, generator.Grammar).data<float>().ToArray();
        var promptOnly = Sampling.LogLikelihood(checkpoint.Model, [new SampledSequence([.. promptIds[1..].Select(i => (long)i)], false, 0)], generator.Grammar)
            .data<float>()[0];
        for (int i = 0; i < molecules.Count; i++) Assert.Equal(molecules[i].LogLikelihood, whole[i] - promptOnly, 3);

        var refused = Assert.Throws<BioForgeException>(() => generator.Generate(1, options, 0, 1, false, prompt: "C)"));
        Assert.Contains("token 2", refused.Message);
    }
}
