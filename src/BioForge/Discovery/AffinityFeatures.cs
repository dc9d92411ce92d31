using BioForge.Chem;
using BioForge.Models;
using static TorchSharp.torch;

namespace BioForge.Discovery;

/// <summary>What describes a molecule and a target to the affinity model (all optional parts on by default).</summary>
public sealed record AffinityFeatureSettings
{
    public int MorganRadius { get; init; } = 2;
    /// <summary>Morgan (ECFP-like) substructure counts folded into this many slots, as log(1 + count).</summary>
    public int MorganBits { get; init; } = 1024;
    /// <summary>RDKit descriptors: weight, logP, TPSA, donors, acceptors, rotatable bonds, rings, aromatic rings, sp3 fraction, charge, heavy atoms.</summary>
    public bool Descriptors { get; init; } = true;
    /// <summary>Amino-acid and dipeptide composition of the target (420 numbers).</summary>
    public bool Composition { get; init; } = true;
    /// <summary>ESM-2 directory: the mean of its final hidden states over the target's residues (null: not used).</summary>
    public string? ProteinModel { get; init; }
    /// <summary>SMILES language-model directory: the mean of its final hidden states over the SMILES tokens (null: not used).</summary>
    public string? MoleculeModel { get; init; }
}

/// <summary>
/// Turns molecules and protein sequences into fixed-width feature rows: RDKit fingerprints and descriptors, sequence
/// composition, and mean embeddings from BioForge's protein and SMILES language models.
/// </summary>
internal sealed class AffinityFeaturizer : IDisposable
{
    private const string AminoAcids = "ACDEFGHIKLMNPQRSTVWY";
    // ESM-2 reads at most 1,022 residues at once; longer targets are read in consecutive pieces.
    private const int ProteinPiece = 1022;
    private const int Batch = 64;

    private readonly AffinityFeatureSettings settings;
    private readonly SequenceEncoder? protein;
    private readonly SequenceEncoder? molecule;
    private readonly Device device;

    public AffinityFeaturizer(AffinityFeatureSettings settings, string? proteinModel, string? moleculeModel, Device device)
    {
        this.settings = settings;
        this.device = device;
        try
        {
            protein = proteinModel is null ? null : SequenceEncoder.Load(proteinModel, device);
            if (protein is not null && protein.Alphabet != SequenceAlphabet.Protein)
                throw new BioForgeException($"features.protein_model {proteinModel}: expected a protein language model, found a {protein.Family.Title} over {protein.Alphabet.ToString().ToLowerInvariant()}");
            molecule = moleculeModel is null ? null : SequenceEncoder.Load(moleculeModel, device);
            if (molecule is not null && molecule.Alphabet != SequenceAlphabet.Smiles)
                throw new BioForgeException($"features.molecule_model {moleculeModel}: expected a SMILES language model, found a {molecule.Family.Title} over {molecule.Alphabet.ToString().ToLowerInvariant()}");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public int DrugWidth => settings.MorganBits + (settings.Descriptors ? DescriptorCount : 0) + (molecule?.HiddenSize ?? 0);

    public int TargetWidth => (settings.Composition ? 20 + 400 : 0) + (protein?.HiddenSize ?? 0);

    private const int DescriptorCount = 11;

    /// <summary>One row per molecule (already parsed), [N, DrugWidth].</summary>
    public float[][] Drugs(IReadOnlyList<Molecule> molecules)
    {
        var rows = new float[molecules.Count][];
        Parallel.For(0, molecules.Count, i => rows[i] = ChemistryRow(molecules[i]));
        if (molecule is not null)
        {
            var smiles = molecules.Select(m => m.ToSmiles()).ToList();
            var embedded = Embed(molecule, [.. smiles.Select(s => molecule.Encode(s))]);
            for (int i = 0; i < rows.Length; i++) rows[i] = [.. rows[i], .. embedded[i]];
        }
        return rows;
    }

    private float[] ChemistryRow(Molecule m)
    {
        var row = new float[settings.MorganBits + (settings.Descriptors ? DescriptorCount : 0)];
        foreach (var (id, count) in Fingerprints.MorganCounts(m, settings.MorganRadius))
            row[id % (uint)settings.MorganBits] += (float)Math.Log(1 + count);
        if (settings.Descriptors)
        {
            var d = m.Descriptors();
            double[] values = [d.MolWt, d.LogP, d.Tpsa, d.HBondDonors, d.HBondAcceptors, d.RotatableBonds, d.Rings, d.AromaticRings,
                d.FractionCsp3, d.FormalCharge, d.HeavyAtoms];
            for (int k = 0; k < values.Length; k++) row[settings.MorganBits + k] = (float)values[k];
        }
        return row;
    }

    /// <summary>One row per target sequence, [N, TargetWidth].</summary>
    public float[][] Targets(IReadOnlyList<string> sequences)
    {
        var rows = sequences.Select(s => settings.Composition ? Composition(s) : []).ToArray();
        if (protein is not null)
        {
            // Each target's pieces, embedded together, averaged weighted by their residues.
            var pieces = new List<(int Target, int Residues, EncodedSequence Encoded)>();
            for (int t = 0; t < sequences.Count; t++)
                for (int start = 0; start < sequences[t].Length; start += ProteinPiece)
                {
                    string piece = sequences[t].Substring(start, Math.Min(ProteinPiece, sequences[t].Length - start));
                    pieces.Add((t, piece.Length, protein.Encode(piece)));
                }
            var embedded = Embed(protein, [.. pieces.Select(p => p.Encoded)]);
            var sums = sequences.Select(_ => new double[protein.HiddenSize]).ToArray();
            for (int p = 0; p < pieces.Count; p++)
                for (int k = 0; k < protein.HiddenSize; k++) sums[pieces[p].Target][k] += embedded[p][k] * pieces[p].Residues;
            for (int t = 0; t < rows.Length; t++)
                rows[t] = [.. rows[t], .. sums[t].Select(v => (float)(v / sequences[t].Length))];
        }
        return rows;
    }

    private static float[] Composition(string sequence)
    {
        var row = new float[20 + 400];
        int residues = 0, pairs = 0;
        for (int i = 0; i < sequence.Length; i++)
        {
            int a = AminoAcids.IndexOf(sequence[i], StringComparison.Ordinal);
            if (a < 0) continue;
            row[a]++;
            residues++;
            if (i + 1 < sequence.Length && AminoAcids.IndexOf(sequence[i + 1], StringComparison.Ordinal) is int b and >= 0)
            {
                row[20 + a * 20 + b]++;
                pairs++;
            }
        }
        for (int k = 0; k < 20; k++) row[k] /= Math.Max(1, residues);
        for (int k = 20; k < row.Length; k++) row[k] /= Math.Max(1, pairs);
        return row;
    }

    /// <summary>Mean final hidden states of each sequence, in batches of similar length.</summary>
    private float[][] Embed(SequenceEncoder encoder, IReadOnlyList<EncodedSequence> sequences) => encoder.MeanEmbeddings(sequences, device, maxBatch: Batch);

    public void Dispose()
    {
        protein?.Dispose();
        molecule?.Dispose();
    }
}
