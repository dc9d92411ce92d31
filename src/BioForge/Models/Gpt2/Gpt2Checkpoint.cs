using BioForge.Tokenizers;
using static TorchSharp.torch;

namespace BioForge.Models.Gpt2;

/// <summary>A GPT-2 checkpoint with its tokenizer, ready on a device.</summary>
public sealed class Gpt2Checkpoint : IDisposable
{
    private readonly HuggingFaceTokenizer? tokenizer;

    private Gpt2Checkpoint(Gpt2LMHeadModel model, HuggingFaceTokenizer? tokenizer, string directory)
    {
        Model = model;
        this.tokenizer = tokenizer;
        Directory = directory;
    }

    public Gpt2LMHeadModel Model { get; }
    public Gpt2Config Config => Model.Config;
    public string Directory { get; }

    /// <summary>True when the directory has a tokenizer (text in and out); without one only token ids can be used.</summary>
    public bool HasTokenizer => tokenizer is not null;

    /// <summary>The checkpoint's tokenizer, or one message saying it is missing.</summary>
    public HuggingFaceTokenizer Tokenizer => tokenizer
        ?? throw new BioForgeException($"{Directory}: no {HuggingFaceTokenizer.FileName} (or {HuggingFaceTokenizer.VocabFileName} + {HuggingFaceTokenizer.MergesFileName}); text cannot be read or written without the checkpoint's tokenizer");

    /// <summary>Loads config.json, the weights and, when present, the tokenizer.</summary>
    public static Gpt2Checkpoint Load(string directory, Device device, ScalarType dtype)
    {
        var tokenizer = System.IO.Directory.Exists(directory) && HuggingFaceTokenizer.Exists(directory) ? HuggingFaceTokenizer.Load(directory) : null;
        try
        {
            var model = Gpt2LMHeadModel.Load(directory, device, dtype);
            if (tokenizer is not null && tokenizer.Count > model.Config.VocabSize)
            {
                model.Dispose();
                throw new BioForgeException($"{directory}: the tokenizer has {tokenizer.Count} tokens but config.json says vocab_size {model.Config.VocabSize}");
            }
            return new Gpt2Checkpoint(model, tokenizer, directory);
        }
        catch
        {
            tokenizer?.Dispose();
            throw;
        }
    }

    /// <summary>Begin token, then the tokens of <paramref name="text"/> (a generation prompt; empty for none).</summary>
    public int[] EncodePrompt(string text) => [Config.BosTokenId, .. (text.Length == 0 ? [] : Tokenizer.EncodeExactly(text, $"prompt '{Spelling.Excerpt(text, 80)}'"))];

    /// <summary>The text of generated tokens.</summary>
    public string Decode(IReadOnlyList<int> ids) => Tokenizer.Decode(ids);

    public void Dispose()
    {
        Model.Dispose();
        tokenizer?.Dispose();
    }
}
