using BioForge.Chem;

namespace BioForge.Tests;

public sealed class DiverseSelectionTests
{
    // Pairwise Tanimoto (Morgan radius 2, 1,024 bits; RDKit 2022.09): the propoxy analogue and the acid are 0.74 and
    // 0.70 like the first amide, the two indoles 0.37 alike, every other pair at most 0.11.
    private static readonly string[] Ranked =
    [
        "CCOc1ccc(CC(=O)N)cc1", "CCCOc1ccc(CC(=O)N)cc1", "C1CC(", "c1ccc2[nH]ccc2c1", "CCOc1ccc(CC(=O)O)cc1", "OC(=O)C1CCCCC1", "c1ccc2[nH]c(C)cc2c1",
    ];

    [Fact]
    public void KeepsTheBestOfEachSeriesInRankOrder()
    {
        Assert.Equal([0, 3, 5, 6], DiverseSelection.Pick(Ranked, 10, 0.6));
        Assert.Equal([0, 3, 5], DiverseSelection.Pick(Ranked, 10, 0.3)); // the indoles are one series now
        Assert.Equal([0, 3], DiverseSelection.Pick(Ranked, 2, 0.6));
        Assert.Equal([0, 1, 3, 4, 5, 6], DiverseSelection.Pick(Ranked, 10, 1)); // every readable molecule
        Assert.Empty(DiverseSelection.Pick(Ranked, 0, 0.6));
    }

    [Theory]
    [InlineData(-1, 0.5, "count -1")]
    [InlineData(10, 0, "maximum similarity 0")]
    [InlineData(10, 1.5, "maximum similarity 1.5")]
    public void RefusesBadSettings(int count, double maxSimilarity, string message) =>
        Assert.Contains(message, Assert.Throws<BioForgeException>(() => DiverseSelection.Pick(Ranked, count, maxSimilarity)).Message);
}
