using BioForge.IO;
using BioForge.Models;

namespace BioForge.Proteins;

/// <summary>
/// Mean-pooled final hidden states of FASTA records from any registered family's <see cref="SequenceEncoder"/> (a
/// decoder such as GPT-2 or Llama), streamed like <see cref="EsmEmbedder"/>.
/// </summary>
internal sealed class EncoderEmbedder(SequenceEncoder encoder, int batchTokens, int windowTokens = 1 << 16)
{
    public IEnumerable<Embedding> Embed(IEnumerable<FastaRecord> records, IProgress<int>? progress = null)
    {
        encoder.Network.eval();
        // The residues: every token between the start and end tokens the encoder framed the text with.
        return WindowedEmbedding.Run(records, Tokenize, windowTokens, batchTokens, (int)encoder.PadId, encoder.Network.parameters().First().device,
            batch => encoder.Hidden(batch.InputIds, batch.AttentionMask), (row, length) => (row.narrow(0, 1, length - 2).mean([0L]), 1), progress);
    }

    private int[] Tokenize(FastaRecord record)
    {
        EncodedSequence encoded;
        try
        {
            encoded = encoder.Encode(record.Sequence, stopCodon: false);
        }
        catch (BioForgeException e)
        {
            throw new BioForgeException($"{record.Where}: record '{record.Id}': {e.Message}");
        }
        // A SMILES decoder reads a token outside its vocabulary as <unk> (its training data can): embedded, the record
        // would be partly the <unk> vector, written as if it were the molecule's (the server refuses it too).
        if (encoded.Unknown > 0)
            throw new BioForgeException($"{record.Where}: record '{record.Id}': {encoded.Unknown} token(s) are outside the model's vocabulary"
                + (encoded.FirstUnknown is { } first ? $", the first {first}" : "") + " (a salt or mixture: give its parent molecule)");
        int[] ids = [.. encoded.Ids.Select(i => (int)i)];
        // Rotary positions never fail: past the trained ones they only mean nothing.
        if (ids.Length > encoder.MaxTokens)
            throw new BioForgeException($"{record.Where}: record '{record.Id}' has {ids.Length} tokens with its start and end tokens; this model takes at most {encoder.MaxTokens}");
        return ids;
    }
}
