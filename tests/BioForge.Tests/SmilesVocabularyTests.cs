using System.Text.Json.Nodes;
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
        File.WriteAllText(path, "[\"<pad>\", null]");
        Assert.Equal($"{path}: token 1 is null, not a string", Assert.Throws<BioForgeException>(() => SmilesVocabulary.Load(path)).Message);
        // A model folder whose vocab.json is a byte-level BPE's map (GPT-2 style) has no SMILES vocabulary: not an error.
        File.WriteAllText(path, "\n {\"<|endoftext|>\": 0, \"C\": 1}");
        Assert.Null(SmilesVocabulary.InModel(Path.GetDirectoryName(path)!));
    }

    /// <summary>Hugging Face's own tokenizers.js, reading the files BioForge writes, gives the ids BioForge gives.</summary>
    [Fact]
    public void TheHuggingFaceTokenizerFilesEncodeAsBioForgeDoes()
    {
        var vocabulary = SmilesVocabulary.Build(File.ReadLines(TestData.Path("train", "zinc2k.smi")).Select(l => l.Split(' ', '\t')[0]));
        string directory = TestData.TempDirectory();
        vocabulary.SaveHuggingFace(directory, maxLength: 256);
        string[] inputs = ["CC(=O)Oc1ccccc1C(=O)O", "F/C=C\\F", "C[C@@H](N)C(=O)[O-]", "C1CC%12CC1%12", "ClCCBr", "[Xe]C", "c1ccc2c(c1)[nH]c1ccccc12"];
        var lines = NodeScript.Lines("tokenize.mjs", [directory, .. inputs]);
        Assert.Equal(inputs.Length, lines.Count);
        for (int i = 0; i < inputs.Length; i++)
        {
            var line = JsonNode.Parse(lines[i])!;
            Assert.Equal(vocabulary.Encode(inputs[i]).Select(id => (long)id), line["ids"]!.AsArray().Select(id => id!.GetValue<long>()));
            if (!vocabulary.Encode(inputs[i]).Contains(SmilesVocabulary.UnkId)) Assert.Equal(inputs[i], line["decoded"]!.GetValue<string>());
        }
        Assert.Contains(SmilesVocabulary.UnkId, vocabulary.Encode("[Xe]C")); // the unknown token is exercised
    }

    [Fact]
    public void TheShippedSmilesModelCarriesItsHuggingFaceTokenizer()
    {
        string model = Path.Combine(Repository.Root, "models", "smiles-llama-small");
        string directory = TestData.TempDirectory();
        SmilesVocabulary.Load(Path.Combine(model, SmilesVocabulary.FileName)).SaveHuggingFace(directory, maxLength: 256);
        foreach (string file in new[] { SmilesVocabulary.HuggingFaceTokenizerFile, "tokenizer_config.json", "special_tokens_map.json" })
            Assert.Equal(File.ReadAllText(Path.Combine(directory, file)), File.ReadAllText(Path.Combine(model, file)));
    }
}
