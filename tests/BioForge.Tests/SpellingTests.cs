namespace BioForge.Tests;

/// <summary>The words of error messages: long input quoted short, a misspelt name's nearest.</summary>
public sealed class SpellingTests
{
    [Theory]
    [InlineData("CCO", 5, "CCO")]
    [InlineData("CCCCC", 5, "CCCCC")]
    [InlineData("CCCCCC", 5, "CCCC…")]
    [InlineData("ab\U0001F600cd", 4, "ab…")] // the emoji's two UTF-16 units are not split
    [InlineData("abc\U0001F600d", 4, "abc…")]
    public void AnExcerptIsTheTextUpToItsLengthWithAnEllipsis(string text, int maxLength, string expected)
    {
        string excerpt = Spelling.Excerpt(text, maxLength);
        Assert.Equal(expected, excerpt);
        Assert.True(excerpt.Length <= maxLength);
    }

    [Theory]
    [InlineData("embedd", "embed")]
    [InlineData("generat", "generate")]
    [InlineData("xyz", null)]
    public void TheNearestNameIsATypoAwayOrNone(string word, string? expected) =>
        Assert.Equal(expected, Spelling.Nearest(word, ["embed", "generate", "serve"]));
}
