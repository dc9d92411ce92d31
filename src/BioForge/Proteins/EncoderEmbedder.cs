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
        int[] ids;
        try
        {
            ids = [.. encoder.Encode(record.Sequence, stopCodon: false).Ids.Select(i => (int)i)];
        }
        catch (BioForgeException e)
        {
            throw new BioForgeException($"{record.Where}: record '{record.Id}': {e.Message}");
        }
        // Rotary positions never fail: past the trained ones they only mean nothing.
        if (ids.Length > encoder.MaxTokens)
            throw new BioForgeException($"{record.Where}: record '{record.Id}' has {ids.Length} tokens with its start and end tokens; this model takes at most {encoder.MaxTokens}");
        return ids;
    }
}
