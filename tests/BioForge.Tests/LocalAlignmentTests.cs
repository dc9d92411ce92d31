using BioForge.Proteins;

namespace BioForge.Tests;

/// <summary>
/// Against Biopython 1.80's PairwiseAligner (Debian's python3-biopython) in local mode with BLOSUM62, open_gap_score -12
/// and extend_gap_score -1 (BLAST's 11 + 1 per residue): scores equal; identity and coverage of its first alignment
/// (another alignment of the same score may differ by a tie).
/// </summary>
public sealed class LocalAlignmentTests
{
    [Theory]
    [InlineData("BTK", "ITK", 930, 0.3404, 0.9876)]
    [InlineData("EGFR", "ERBB2", 3099, 0.5016, 0.9793)]
    [InlineData("ABL1(E255K)", "ABL2", 2794, 0.5416, 0.9460)]
    public void DavisKinasesAlignAsBiopythonAlignsThem(string first, string second, int score, double identity, double coverage)
    {
        var targets = Discovery.AffinityDataset.ReadTargets(Path.Combine(Repository.Root, "data", "davis")).ToDictionary(t => t.Id, t => t.Text);
        var result = LocalAlignment.Align(targets[first], targets[second]);
        Assert.Equal(score, result.Score);
        Assert.Equal(score, LocalAlignment.Score(targets[first], targets[second]));
        Assert.Equal(identity, result.Identity, 0.01);
        Assert.Equal(coverage, result.Coverage, 0.01);
    }

    [Theory]
    [InlineData("MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MKTAYIAKQRQISFVKSHFSRQGGGGGLEERLGLIEVQ", 144, 0.8684, 38)] // an insertion: one gap of five
    [InlineData("MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MKTAYIAKQRFSRQLEERLGLIEVQ", 101, 0.7576, 33)] // a deletion
    public void GapsCostElevenToOpenAndOnePerResidue(string first, string second, int score, double identity, int columns)
    {
        var result = LocalAlignment.Align(first, second);
        Assert.Equal(score, result.Score);
        Assert.Equal(score, LocalAlignment.Score(first, second));
        Assert.Equal(identity, result.Identity, 0.001);
        Assert.Equal(columns, result.Columns);
        Assert.Equal(1.0, result.Coverage);
    }

    [Fact]
    public void ASequenceIsIdenticalToItselfAndUnrelatedTextScoresLittle()
    {
        const string abl = "GPSENDPNLFVALYDFVASGDNTLSITKGEKLRVLGYNHNGEWCEAQTKNGQGWVPSNYITPVNS";
        var self = LocalAlignment.Align(abl, abl);
        Assert.Equal((1.0, 1.0, abl.Length), (self.Identity, self.Coverage, self.Columns));
        Assert.True(LocalAlignment.Score(abl, new string('W', 60)) < 20);
    }

    [Fact]
    public void LettersOutsideBlosumScoreAsXButCountAsIdenticalOnlyToThemselves()
    {
        // Selenocysteine against pyrrolysine: both take X's row (−1), and they are different residues.
        var mixed = LocalAlignment.Align("MKTAYUAKQRQISF", "MKTAYOAKQRQISF");
        Assert.Equal((13 / 14.0, 14), (mixed.Identity, mixed.Columns));
        Assert.Equal(LocalAlignment.Score("MKTAYXAKQRQISF", "MKTAYXAKQRQISF"), mixed.Score);
        Assert.Equal(1.0, LocalAlignment.Align("MKTAYUAKQRQISF", "mktayuakqrqisf").Identity);
    }
}
