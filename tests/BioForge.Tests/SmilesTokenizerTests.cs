using BioForge.Tokenizers;

namespace BioForge.Tests;

public sealed class SmilesTokenizerTests
{
    [Theory]
    [InlineData("CC(=O)Oc1ccccc1C(=O)O", "C C ( = O ) O c 1 c c c c c 1 C ( = O ) O")]
    [InlineData("[NH3+]CCl.Br[C@@H](F)I", "[NH3+] C Cl . Br [C@@H] ( F ) I")]
    [InlineData("F/C=C\\F", "F / C = C \\ F")]
    [InlineData("C%12CC%12", "C %12 C C %12")]
    public void SplitsIntoSchwallerTokens(string smiles, string expected)
    {
        var tokens = SmilesTokenizer.Split(smiles);
        Assert.Equal(expected.Split(' '), tokens);
        Assert.Equal(smiles, string.Concat(tokens));
    }

    [Fact]
    public void UncoveredCharactersAreErrors() =>
        Assert.Contains("no token covers 'X' at position 3", Assert.Throws<BioForgeException>(() => SmilesTokenizer.Split("CCXC")).Message);
}
