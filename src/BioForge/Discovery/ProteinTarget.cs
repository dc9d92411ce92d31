using BioForge.IO;

namespace BioForge.Discovery;

/// <summary>A drug target: what to call it, and its protein sequence (upper case, residue letters only).</summary>
public sealed record ProteinTarget(string Name, string Sequence)
{
    /// <summary>
    /// Fewer residues than this is a peptide, not a target protein, and in practice a name that was not found:
    /// read as a sequence, "EGFRX" was scored as a five-residue protein.
    /// </summary>
    public const int MinLength = 30;

    /// <summary>The shipped Davis set, whose target names (ABL1, EGFR, BRAF, …) stand for their sequences.</summary>
    private static string DefaultNames => Shipped.Path("data/davis");

    /// <summary>The shipped KIBA set, whose 229 kinases are named by their UniProt accessions (P00533, Q06187, …).</summary>
    private static string Accessions => Shipped.Path("data/kiba");

    internal const string Residues = "ACDEFGHIKLMNPQRSTVWYXBZUO";

    /// <summary>
    /// A target as people give one: a FASTA file holding one record (named by its id), a target name of the Davis set
    /// in <paramref name="names"/> (any case), a UniProt accession of the shipped KIBA set (named by it, with the Davis
    /// name of the same sequence where there is one: "Q06187 (BTK)"), or a protein sequence of at least
    /// <see cref="MinLength"/> residues; a final <c>*</c> (a stop) is left out. With <paramref name="files"/> false (a
    /// request to the server) the text is never taken for a file name.
    /// </summary>
    public static ProteinTarget Resolve(string target, string? names = null, bool files = true)
    {
        string text = target.Trim();
        string hint = files ? "give a target name such as ABL1, a UniProt accession such as P00519, a protein sequence or a FASTA file" : "give a target name such as ABL1, a UniProt accession such as P00519 or a protein sequence";
        if (text.Length == 0) throw new BioForgeException($"target: empty ({hint})");
        if (files && File.Exists(text)) return FromFasta(text);
        if (files && Directory.Exists(text)) throw new BioForgeException($"target: {text} is a folder; name a FASTA file in it, a target name or a protein sequence");
        if (files && (text.Contains('/') || Path.GetExtension(text).ToLowerInvariant() is ".fasta" or ".fa" or ".faa" or ".gz"))
            throw new BioForgeException($"target: file {text} not found (give a target name such as ABL1, a protein sequence or a FASTA file)");
        var known = Known(names ?? DefaultNames);
        if (known.FirstOrDefault(t => t.Id.Equals(text, StringComparison.OrdinalIgnoreCase)) is { } entry)
        {
            // Davis gives several constructs one sequence (ABL1(T315I) and ABL1p are ABL1's; JAK1's JH1 and JH2 domains
            // share one): a model that reads sequences would answer ABL1's affinities under the mutant's name (imatinib
            // as a strong binder of T315I, measured at 10 µM there). The shortest name stands for the sequence; the
            // others are refused.
            var first = known.Where(t => t.Text.Equals(entry.Text, StringComparison.OrdinalIgnoreCase)).OrderBy(t => t.Id.Length).ThenBy(t => t.Id, StringComparer.Ordinal).First();
            if (first.Id != entry.Id)
                throw new BioForgeException($"target '{text}': the Davis set gives {entry.Id} the same sequence as {first.Id}, so an affinity model, which reads "
                    + $"sequences, cannot tell the two apart and would answer {first.Id}'s affinities; use --target {first.Id}, or a FASTA file of {entry.Id}'s own sequence");
            return new ProteinTarget(entry.Id, entry.Text.ToUpperInvariant());
        }
        if (Known(Accessions).FirstOrDefault(t => t.Id.Equals(text, StringComparison.OrdinalIgnoreCase)) is { } accession)
        {
            string protein = accession.Text.ToUpperInvariant();
            // Davis writes a mutant's name beside the wild type's sequence: the plain name first.
            return known.Where(t => t.Text.Equals(protein, StringComparison.OrdinalIgnoreCase)).OrderBy(t => t.Id.Contains('(')).FirstOrDefault() is { } same
                ? new ProteinTarget($"{accession.Id} ({same.Id})", protein) : new ProteinTarget(accession.Id, protein);
        }
        string sequence = text.EndsWith('*') ? text[..^1] : text;
        if (sequence.Length < MinLength)
        {
            string suggestion = known.Count == 0 ? "" : Spelling.Nearest(text, known.Select(t => t.Id), ignoreCase: true, maxDistance: 1) is { } close ? $" (did you mean {close}?)" : " (e.g. ABL1, EGFR, BRAF)";
            throw new BioForgeException($"target '{text}': not a target name of the Davis set{suggestion} nor a UniProt accession of the KIBA set, and too short for a protein sequence "
                + $"({sequence.Length} characters; a target has at least {MinLength} residues)");
        }
        string residues = Parse(sequence, "", hint);
        return new ProteinTarget($"{residues[..10]}…", residues); // named by its start, as nothing else names it
    }

    private static ProteinTarget FromFasta(string path)
    {
        var records = FastaReader.Read(path).Take(2).ToList();
        if (records.Count > 1) throw new BioForgeException($"target {path}: holds more than one FASTA record; give a file with the target alone");
        var record = records[0];
        string sequence = Parse(record.Sequence, $" ({record.Where})", "give a target name such as ABL1, a protein sequence or a FASTA file");
        if (sequence.Length < MinLength)
            throw new BioForgeException($"target {record.Where}: record '{record.Id}' has {sequence.Length} residues; a target protein has at least {MinLength}");
        return new ProteinTarget(record.Id, sequence);
    }

    /// <summary>The upper-case sequence; the first character that is not a residue letter is named with its position.</summary>
    private static string Parse(string text, string where, string hint)
    {
        string sequence = text.ToUpperInvariant();
        for (int i = 0; i < sequence.Length; i++)
            if (!Residues.Contains(sequence[i]))
                throw new BioForgeException($"target{where}: '{sequence[i]}' at position {i + 1} is not an amino acid ({hint})");
        return sequence;
    }

    /// <summary>The named targets, or none where the set is not there (a model used away from the repository).</summary>
    private static IReadOnlyList<NamedEntry> Known(string directory) =>
        Directory.Exists(directory) ? AffinityDataset.ReadTargets(directory) : [];
}
