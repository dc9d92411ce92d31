using BioForge.Tokenizers;

namespace BioForge.Tests;

public sealed class EsmTokenizerTests
{
    [Fact]
    public void UsesTheEsm2IdsOfTheCheckpointVocabulary()
    {
        var fromFile = EsmTokenizer.FromVocabFile(Path.Combine(TestData.EsmTiny, "vocab.txt"));
        Assert.Equal(EsmTokenizer.Esm2Vocabulary, fromFile.Vocabulary);
        Assert.Equal([0, 4, 5, 6, 7, 23, 2], EsmTokenizer.Esm2.Encode("LAGVC"));
        Assert.Equal((0, 1, 2, 3, 32), (fromFile.ClsId, fromFile.PadId, fromFile.EosId, fromFile.UnkId, fromFile.MaskId));
    }

    [Fact]
    public void MatchesTheFixtureInputIds()
    {
        // Third fixture sequence with <mask> at token positions 5 and 9, as transformers tokenized it.
        string seq = "MALWMRLLPLLALLALWGPDPAAAFVNQHLCGSHLVEALYLVCGERGFFYTPKT";
        var tokens = EsmTokenizer.Esm2.Encode(seq[..4] + "<mask>" + seq[5..8] + "<mask>" + seq[9..]);
        Assert.Equal(seq.Length + 2, tokens.Length);
        Assert.Equal(32, tokens[5]);
        Assert.Equal(32, tokens[9]);
        Assert.Equal(20, tokens[1]); // M
    }

    [Fact]
    public void AcceptsLowerCaseAndSpecialTokens()
    {
        Assert.Equal(EsmTokenizer.Esm2.Encode("MKT"), EsmTokenizer.Esm2.Encode("mkt"));
        Assert.Equal([0, 20, 3, 32, 2], EsmTokenizer.Esm2.Encode("M<unk><mask>"));
    }

    [Fact]
    public void AStopCodonEndingTheSequenceIsLeftOutAsFastaFilesAreRead()
    {
        Assert.Equal(EsmTokenizer.Esm2.Encode("MKT"), EsmTokenizer.Esm2.Encode("MKT*"));
        Assert.Contains("invalid residue '*' at position 2", Assert.Throws<BioForgeException>(() => EsmTokenizer.Esm2.Encode("M*KT")).Message);
    }

    [Theory]
    [InlineData("MK<cls>T")]
    [InlineData("MK<eos>T")]
    [InlineData("MK<pad>T")]
    [InlineData("MK<null_1>T")]
    public void FramingAndFillerTokensAreRefusedInsideASequence(string sequence)
    {
        var e = Assert.Throws<BioForgeException>(() => EsmTokenizer.Esm2.Encode(sequence));
        Assert.Contains("at position 3 is not allowed inside a sequence", e.Message);
    }

    [Fact]
    public void UnknownLettersFailUnlessMappedToUnk()
    {
        var e = Assert.Throws<BioForgeException>(() => EsmTokenizer.Esm2.Encode("MKJT"));
        Assert.Contains("'J' at position 3", e.Message);
        Assert.Equal([0, 20, 15, 3, 11, 2], EsmTokenizer.Esm2.Encode("MKJT", unknownAsUnk: true));
        Assert.Contains("unknown special token '<foo>'", Assert.Throws<BioForgeException>(() => EsmTokenizer.Esm2.Encode("M<foo>")).Message);
    }

    /// <summary>
    /// Hugging Face's tokenizers (its Rust library, and tokenizers.js) read the files a protein decoder is saved with
    /// into the ids BioForge gives: residues of either case, gaps, &lt;mask&gt;, &lt;unk&gt;, and unknown letters.
    /// </summary>
    [Fact]
    public void TheHuggingFaceTokenizerFilesOfAProteinDecoderEncodeAsBioForgeDoes()
    {
        string directory = TestData.TempDirectory();
        EsmTokenizer.Esm2.SaveHuggingFace(directory, maxLength: 512);
        string[] inputs = ["MKTAYIAKQRQISFVKSHFSRQ", "mktayiak", "MK<mask>TA<mask>", "AXBZUO.-G", "MKJT", "M<unk>K", "LAGVSERTIDPKQNFYMHWC"];
        using (var rust = HuggingFaceTokenizer.Load(directory))
            foreach (string input in inputs)
                Assert.Equal(EsmTokenizer.Esm2.Encode(input, unknownAsUnk: true), rust.Encode(input));
        var lines = NodeScript.Lines("tokenize.mjs", [directory, .. inputs]);
        Assert.Equal(inputs.Length, lines.Count);
        for (int i = 0; i < inputs.Length; i++)
            Assert.Equal(EsmTokenizer.Esm2.Encode(inputs[i], unknownAsUnk: true).Select(id => (long)id),
                System.Text.Json.Nodes.JsonNode.Parse(lines[i])!["ids"]!.AsArray().Select(id => id!.GetValue<long>()));
        Assert.Contains(EsmTokenizer.Esm2.UnkId, EsmTokenizer.Esm2.Encode("MKJT", unknownAsUnk: true)); // the unknown token is exercised
    }

    [Fact]
    public void TheShippedProteinDecoderCarriesItsHuggingFaceTokenizer()
    {
        string model = Path.Combine(Repository.Root, "models", "protein-llama-small");
        string directory = TestData.TempDirectory();
        EsmTokenizer.FromVocabFile(Path.Combine(model, "vocab.txt")).SaveHuggingFace(directory, maxLength: 512);
        foreach (string file in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
            Assert.Equal(File.ReadAllText(Path.Combine(directory, file)), File.ReadAllText(Path.Combine(model, file)));
    }
}
