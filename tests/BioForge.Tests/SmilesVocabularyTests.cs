using BioForge.Tokenizers;

namespace BioForge.Tests;

public sealed class SmilesVocabularyTests
{
    private static readonly string[] Training = ["CC(=O)Oc1ccccc1C(=O)O", "CCO", "c1ccccc1Cl", "[NH3+]CC(=O)[O-]", "F/C=C\\F"];

    [Fact]
    public void EncodesAndDecodesEveryTrainingMolecule()
    {
        var vocabulary = SmilesVocabulary.Build(Training);
        Assert.Equal(["<pad>", "<bos>", "<eos>", "<unk>"], vocabulary.Tokens.Take(4));
        Assert.Equal("c", vocabulary.Tokens[4]); // the most frequent token: 12 aromatic carbons
        foreach (string smiles in Training)
        {
            int[] ids = vocabulary.Encode(smiles);
            Assert.Equal(SmilesVocabulary.BosId, ids[0]);
            Assert.Equal(SmilesVocabulary.EosId, ids[^1]);
            Assert.DoesNotContain(SmilesVocabulary.UnkId, ids);
            Assert.Equal(smiles, vocabulary.Decode(ids.Select(i => (long)i)));
        }
    }

    [Fact]
    public void UnknownTokensAndRareTokensMapToUnk()
    {
        var vocabulary = SmilesVocabulary.Build(Training, minCount: 2);
        Assert.DoesNotContain("Cl", vocabulary.Tokens); // seen once
        Assert.Contains(SmilesVocabulary.UnkId, vocabulary.Encode("CCBr"));
        Assert.Null(vocabulary.Decode(vocabulary.Encode("CCBr").Select(i => (long)i)));
        long carbon = vocabulary.Encode("C")[1];
        Assert.Equal("CC", vocabulary.Decode([SmilesVocabulary.BosId, carbon, carbon, SmilesVocabulary.EosId, carbon, SmilesVocabulary.PadId]));
    }

    [Fact]
    public void SavesAndLoads()
    {
        var vocabulary = SmilesVocabulary.Build(Training);
        string path = Path.Combine(TestData.TempDirectory(), SmilesVocabulary.FileName);
        vocabulary.Save(path);
        Assert.Equal(vocabulary.Tokens, SmilesVocabulary.Load(path).Tokens);
        File.WriteAllText(path, "[\"C\", \"O\"]");
        Assert.Contains("must start with <pad>", Assert.Throws<BioForgeException>(() => SmilesVocabulary.Load(path)).Message);
        File.WriteAllText(path, "{");
        Assert.Contains("not a JSON list", Assert.Throws<BioForgeException>(() => SmilesVocabulary.Load(path)).Message);
    }
}
