using BioForge.Tokenizers;
using BioForge.Training;

namespace BioForge.Tests;

public sealed class TrainingDataTests
{
    [Fact]
    public void EpochBatchesCoverEveryDocumentOnceUnderTheBudgetAndRepeat()
    {
        var random = new Random(5);
        var lengths = Enumerable.Range(0, 1000).Select(_ => random.Next(5, 300)).ToList();
        var batches = TokenBudgetBatches.ForEpoch(lengths, maxTokens: 2048, seed: 11, epoch: 3, window: 200);
        Assert.Equal(Enumerable.Range(0, 1000), batches.SelectMany(b => b).Order());
        Assert.All(batches, b => Assert.True(b.Length * b.Max(i => lengths[i]) <= 2048));
        Assert.Equal(batches, TokenBudgetBatches.ForEpoch(lengths, 2048, 11, 3, 200));
        Assert.NotEqual(batches, TokenBudgetBatches.ForEpoch(lengths, 2048, 11, 4, 200));
        // bucketing keeps padding small: padded tokens exceed real ones by well under a half
        long real = lengths.Sum(), padded = batches.Sum(b => (long)b.Length * b.Max(i => lengths[i]));
        Assert.True(padded < real * 1.5, $"padded {padded} vs real {real}");
    }

    [Fact]
    public void MaskingFollowsEightyTenTenAndIsReproducible()
    {
        var tokenizer = EsmTokenizer.Esm2;
        var mlm = MaskedLanguageModeling.ForProteins(tokenizer);
        var random = new Random(1);
        string protein = new(Enumerable.Range(0, 500).Select(_ => "ACDEFGHIKLMNPQRSTVWY"[random.Next(20)]).ToArray());
        var tokens = tokenizer.Encode(protein);
        int chosen = 0, masked = 0, replaced = 0, kept = 0;
        for (int doc = 0; doc < 200; doc++)
        {
            var example = mlm.Apply(tokens, seed: 9, epoch: 0, document: doc);
            Assert.Equal(MaskedLanguageModeling.Ignore, example.Labels[0]);   // <cls> never chosen
            Assert.Equal(MaskedLanguageModeling.Ignore, example.Labels[^1]);  // <eos> never chosen
            for (int i = 0; i < tokens.Length; i++)
            {
                if (example.Labels[i] == MaskedLanguageModeling.Ignore)
                {
                    Assert.Equal(tokens[i], example.Inputs[i]);
                    continue;
                }
                chosen++;
                Assert.Equal(tokens[i], example.Labels[i]);
                if (example.Inputs[i] == tokenizer.MaskId) masked++;
                else if (example.Inputs[i] == tokens[i]) kept++;
                else replaced++;
            }
        }
        double total = 200.0 * protein.Length;
        Assert.InRange(chosen / total, 0.14, 0.16);
        Assert.InRange((double)masked / chosen, 0.78, 0.82);
        // 10 % replaced by one of the 20 residues (19 in 20 differ: 9.5 %), 10 % kept plus the replacements equal to the
        // original (10.5 %): checked apart, so 80/0/20 or 80/20/0 would fail.
        Assert.InRange((double)replaced / chosen, 0.085, 0.105);
        Assert.InRange((double)kept / chosen, 0.095, 0.115);
        Assert.Equal(mlm.Apply(tokens, 9, 0, 7), mlm.Apply(tokens, 9, 0, 7), new ExampleComparer());
    }

    [Fact]
    public void CausalExamplesAreShiftedByOne()
    {
        var example = CausalLanguageModeling.Apply([1, 10, 11, 2]);
        Assert.Equal([1, 10, 11], example.Inputs);
        Assert.Equal([10, 11, 2], example.Labels);
        Assert.Throws<BioForgeException>(() => CausalLanguageModeling.Apply([1]));
    }

    private sealed class ExampleComparer : IEqualityComparer<TrainingExample>
    {
        public bool Equals(TrainingExample? x, TrainingExample? y) => x!.Inputs.SequenceEqual(y!.Inputs) && x.Labels.SequenceEqual(y.Labels);
        public int GetHashCode(TrainingExample obj) => obj.Inputs.Length;
    }
}
