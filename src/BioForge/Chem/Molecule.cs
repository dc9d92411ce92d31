using System.Globalization;

namespace BioForge.Chem;

/// <summary>An RDKit molecule. Immutable from C#; dispose it (or let the finalizer) to free the native memory.</summary>
public sealed class Molecule : IDisposable
{
    internal MoleculeHandle Handle { get; }

    private Molecule(MoleculeHandle handle) => Handle = handle;

    /// <summary>The RDKit version behind the shim; loading it here reports a missing shim before any work starts.</summary>
    public static string RDKitVersion => RDKitNative.Version();

    /// <summary>Why RDKit cannot be used here (the shim missing or not loadable), or null when it can.</summary>
    public static string? Unavailable()
    {
        try
        {
            _ = RDKitNative.Version();
            return null;
        }
        catch (BioForgeException e)
        {
            return e.Message;
        }
    }

    /// <summary>
    /// Longest SMILES accepted. RDKit 2022.09's parser and stereo perception grow much faster than linearly with
    /// chain length (a 2,000-atom chain takes over 10 s to parse), so longer inputs are refused up front.
    /// </summary>
    public const int MaxSmilesLength = 1000;

    /// <summary>
    /// Most atoms a MOL block may declare, for the same reason (a 1,500-atom chain took 10 s in <c>chem props</c>); only a
    /// V3000 block can say more, V2000's count having three digits.
    /// </summary>
    public const int MaxMolBlockAtoms = 1000;

    /// <summary>Parses and sanitizes a SMILES; throws <see cref="BioForgeException"/> with RDKit's reason when invalid.</summary>
    public static Molecule FromSmiles(string smiles) =>
        TryFromSmiles(smiles, out var molecule, out string? error) ? molecule! : throw new BioForgeException($"invalid SMILES '{Spelling.Excerpt(smiles, 80)}': {error}");

    public static bool TryFromSmiles(string smiles, out Molecule? molecule, out string? error)
    {
        molecule = null;
        if (string.IsNullOrWhiteSpace(smiles))
        {
            error = "empty SMILES";
            return false;
        }
        if (smiles.Length > MaxSmilesLength)
        {
            error = $"SMILES of {smiles.Length} characters is longer than the {MaxSmilesLength} accepted";
            return false;
        }
        if ((NonPrintableAscii(smiles) ?? Whitespace(smiles)) is { } reason)
        {
            error = reason;
            return false;
        }
        int status = RDKitNative.bf_mol_from_smiles(smiles, 1, out var handle);
        return Finish(status, handle, out molecule, out error);
    }

    /// <summary>Parses one MOL block (V2000 or V3000), as found between the records of an SDF file.</summary>
    public static bool TryFromMolBlock(string molBlock, out Molecule? molecule, out string? error)
    {
        molecule = null;
        if (molBlock.Contains('\0'))
        {
            error = "MOL block contains a NUL character";
            return false;
        }
        int? atoms = DeclaredAtoms(molBlock);
        if (atoms > MaxMolBlockAtoms)
        {
            error = $"MOL block of {atoms} atoms is larger than the {MaxMolBlockAtoms} accepted";
            return false;
        }
        // RDKit reads an empty block as a molecule of nothing, which every property and prediction would then describe.
        if (atoms == 0)
        {
            error = "MOL block has no atoms";
            return false;
        }
        int status = RDKitNative.bf_mol_from_molblock(molBlock, 1, out var handle);
        return Finish(status, handle, out molecule, out error);
    }

    /// <summary>
    /// How many atoms a MOL block holds, before RDKit reads it. V2000: its counts line (three digits). V3000: the larger
    /// of the <c>COUNTS</c> record's atom count and the atom records themselves, read as V3000's logical records (a line
    /// ending in <c>-</c> continues on the next) from the counts line on — so neither a continued COUNTS record, nor one
    /// in the title, nor one that understates lets a large molecule through.
    /// </summary>
    private static int? DeclaredAtoms(string molBlock)
    {
        var lines = molBlock.Split('\n');
        if (lines.Length < 4) return null;
        if (!lines[3].Contains("V3000", StringComparison.Ordinal))
            return lines[3].Length >= 3 && int.TryParse(lines[3].AsSpan(0, 3).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int count) ? count : null;
        long declared = 0, records = 0;
        bool inAtoms = false;
        foreach (string record in V3000Records(lines.Skip(4)))
        {
            if (record.StartsWith("BEGIN ATOM", StringComparison.Ordinal)) inAtoms = true;
            else if (record.StartsWith("END ATOM", StringComparison.Ordinal)) inAtoms = false;
            else if (inAtoms) records++;
            else if (record.StartsWith("COUNTS ", StringComparison.Ordinal))
            {
                var fields = record.AsSpan("COUNTS ".Length).TrimStart();
                int space = fields.IndexOf(' ');
                var digits = space < 0 ? fields : fields[..space];
                // A count past int's range is no reason to let RDKit try it (it would allocate for that many atoms).
                if (digits.Length > 0 && digits.IndexOfAnyExceptInRange('0', '9') < 0)
                    declared = Math.Max(declared, long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n : long.MaxValue);
            }
        }
        return (int)Math.Min(int.MaxValue, Math.Max(declared, records));
    }

    /// <summary>V3000's logical records (the text after <c>M  V30 </c>), continuation lines joined.</summary>
    private static IEnumerable<string> V3000Records(IEnumerable<string> lines)
    {
        const string prefix = "M  V30 ";
        var record = new System.Text.StringBuilder();
        foreach (string raw in lines)
        {
            string line = raw.TrimEnd('\r');
            if (!line.StartsWith(prefix, StringComparison.Ordinal)) continue;
            string content = line[prefix.Length..];
            bool continues = content.EndsWith('-');
            record.Append(continues ? content[..^1] : content);
            if (continues) continue;
            yield return record.ToString();
            record.Clear();
        }
        if (record.Length > 0) yield return record.ToString();
    }

    private static bool Finish(int status, MoleculeHandle handle, out Molecule? molecule, out string? error)
    {
        if (status != RDKitNative.Ok)
        {
            handle.Dispose();
            molecule = null;
            error = RDKitNative.LastError();
            return false;
        }
        molecule = new Molecule(handle);
        error = null;
        return true;
    }

    /// <summary>
    /// Why a SMILES holds a character outside printable ASCII, or null. SMILES is ASCII; RDKit's parser stops at the
    /// first byte it does not know and keeps what came before, so "C😀C" was read as methane and reported valid.
    /// Every path that parses a SMILES (files, command line, server, generation seeds) goes through here.
    /// </summary>
    public static string? NonPrintableAscii(string smiles)
    {
        int position = 0;
        foreach (var rune in smiles.EnumerateRunes())
        {
            position++;
            if (rune.Value is >= 0x20 and <= 0x7E) continue;
            string shown = System.Text.Rune.IsControl(rune) || System.Text.Rune.IsWhiteSpace(rune) ? "" : $"'{rune}' ";
            return $"character {shown}(U+{rune.Value:X4}) at position {position} is not printable ASCII";
        }
        return null;
    }

    /// <summary>
    /// Why a SMILES holds a space, or null. RDKit ends a SMILES at the first space and reads the rest as the
    /// molecule's name, so "C C" was methane; readers split a name column off before the SMILES gets here.
    /// Tabs and line breaks are already refused as non-printable.
    /// </summary>
    internal static string? Whitespace(string smiles, string notation = "SMILES")
    {
        int space = smiles.IndexOf(' ', StringComparison.Ordinal);
        return space < 0 ? null : $"space at position {space + 1}: a {notation} holds no whitespace (RDKit would read what follows as a name)";
    }

    /// <summary>RDKit's canonical SMILES (with stereochemistry and isotopes unless <paramref name="isomeric"/> is false).</summary>
    public string ToSmiles(bool isomeric = true)
    {
        RDKitNative.Check(RDKitNative.bf_mol_to_smiles(Handle, isomeric ? 1 : 0, out IntPtr text), "SMILES output");
        return RDKitNative.TakeString(text);
    }

    /// <summary>A random valid SMILES of the same molecule (random atom order), reproducible for a seed: for augmentation.</summary>
    public string ToRandomSmiles(uint seed, bool isomeric = true)
    {
        RDKitNative.Check(RDKitNative.bf_mol_to_random_smiles(Handle, isomeric ? 1 : 0, seed, out IntPtr text), "random SMILES");
        return RDKitNative.TakeString(text);
    }

    /// <summary>
    /// The parent of a salt or mixture (<c>CC(=O)Oc1ccccc1C(=O)O.[Na+]</c>) as RDKit's standardizer chooses it
    /// (<c>LargestFragmentChooser(preferOrganic=True)</c>): carbon-bearing pieces first, then the most atoms counting
    /// hydrogens (amphetamine's 23 over a tosylate's 19, though the tosylate has more heavy atoms), then the weight;
    /// null when the molecule is one piece.
    /// </summary>
    public Molecule? LargestFragment()
    {
        if (!ToSmiles().Contains('.')) return null;
        RDKitNative.Check(RDKitNative.bf_mol_largest_fragment(Handle, out var parent), "largest fragment");
        return new Molecule(parent);
    }

    /// <summary>
    /// The molecule as a chemist reads a library entry: the parent of a salt or mixture (<see cref="LargestFragment"/>),
    /// neutralized where its charges are protonation states (<see cref="Neutralized"/>); null when it is one piece with no
    /// charged atom. <paramref name="mayBeMixture"/> false skips looking for pieces (a SMILES without '.': writing the
    /// molecule out to look costs a screen of millions a canonical SMILES each).
    /// </summary>
    public Molecule? Standardized(bool mayBeMixture = true)
    {
        var parent = mayBeMixture ? LargestFragment() : null;
        var current = parent ?? this;
        if (!current.Atoms().Any(a => a.FormalCharge != 0)) return parent;
        try
        {
            return current.Neutralized();
        }
        finally
        {
            parent?.Dispose();
        }
    }

    /// <summary>
    /// The neutral form where charges are protonation states (<c>C[NH3+]</c> → <c>CN</c>, <c>CC(=O)[O-]</c> →
    /// <c>CC(=O)O</c>), as RDKit's Uncharger makes it; quaternary nitrogens and balanced zwitterions keep their charges.
    /// </summary>
    public Molecule Neutralized()
    {
        RDKitNative.Check(RDKitNative.bf_mol_uncharge(Handle, out var result), "neutralizing charges");
        return new Molecule(result);
    }

    public Molecule WithoutHydrogens()
    {
        RDKitNative.Check(RDKitNative.bf_mol_remove_hs(Handle, out var result), "removing hydrogens");
        return new Molecule(result);
    }

    public Molecule WithHydrogens()
    {
        RDKitNative.Check(RDKitNative.bf_mol_add_hs(Handle, out var result), "adding hydrogens");
        return new Molecule(result);
    }

    /// <summary>Atomic number and formal charge of every atom, in atom order.</summary>
    public unsafe IReadOnlyList<(int AtomicNumber, int FormalCharge)> Atoms()
    {
        int capacity = 64;
        while (true)
        {
            var numbers = new int[capacity];
            var charges = new int[capacity];
            int n;
            fixed (int* pn = numbers, pc = charges)
                RDKitNative.Check(RDKitNative.bf_mol_atoms(Handle, pn, pc, capacity, out n), "atoms");
            if (n <= capacity) return Enumerable.Range(0, n).Select(i => (numbers[i], charges[i])).ToList();
            capacity = n;
        }
    }

    /// <summary>True when the molecule has a carbon atom: what screening and activity models take for organic (water, an inorganic salt, a metal have none).</summary>
    public bool HasCarbon() => Atoms().Any(a => a.AtomicNumber == 6);

    /// <summary>Sizes of the rings in the smallest set of smallest rings.</summary>
    public unsafe IReadOnlyList<int> RingSizes()
    {
        int capacity = 32;
        while (true)
        {
            var sizes = new int[capacity];
            int n;
            fixed (int* p = sizes)
                RDKitNative.Check(RDKitNative.bf_mol_ring_sizes(Handle, p, capacity, out n), "rings");
            if (n <= capacity) return sizes[..n];
            capacity = n;
        }
    }

    /// <summary>Bonds in bond order: end atoms, RDKit's <c>Bond::BondType</c> value and the aromatic flag.</summary>
    public unsafe IReadOnlyList<BondInfo> Bonds()
    {
        int capacity = 64;
        while (true)
        {
            var begin = new int[capacity];
            var end = new int[capacity];
            var type = new int[capacity];
            var aromatic = new int[capacity];
            int n;
            fixed (int* pb = begin, pe = end, pt = type, pa = aromatic)
                RDKitNative.Check(RDKitNative.bf_mol_bonds(Handle, pb, pe, pt, pa, capacity, out n), "bonds");
            if (n <= capacity) return Enumerable.Range(0, n).Select(i => new BondInfo(begin[i], end[i], type[i], aromatic[i] != 0)).ToList();
            capacity = n;
        }
    }

    /// <summary>
    /// All-pairs shortest path lengths (RDKit's <c>GetDistanceMatrix</c>): each bond counts 1, or with
    /// <paramref name="bondOrder"/> 1/order (aromatic 2/3); atoms in different fragments are 1e8 apart.
    /// </summary>
    public unsafe double[,] DistanceMatrix(bool bondOrder = false)
    {
        int atoms;
        RDKitNative.Check(RDKitNative.bf_mol_distance_matrix(Handle, bondOrder ? 1 : 0, null, 0, out atoms), "distance matrix");
        var matrix = new double[atoms, atoms];
        if (atoms == 0) return matrix;
        fixed (double* p = matrix)
            RDKitNative.Check(RDKitNative.bf_mol_distance_matrix(Handle, bondOrder ? 1 : 0, p, matrix.Length, out atoms), "distance matrix");
        return matrix;
    }

    /// <summary>Unique matches of a SMARTS query, each as the atoms matched by the query's atoms in order.</summary>
    public unsafe IReadOnlyList<int[]> SubstructureMatches(SmartsQuery query)
    {
        int capacity = 64;
        while (true)
        {
            var atoms = new int[capacity];
            int n, size;
            fixed (int* p = atoms)
                RDKitNative.Check(RDKitNative.bf_mol_substruct_matches(Handle, query.Handle, p, capacity, out n, out size), "substructure match");
            if (n * size <= capacity) return Enumerable.Range(0, n).Select(i => atoms[(i * size)..((i + 1) * size)]).ToList();
            capacity = n * size;
        }
    }

    public unsafe MolecularDescriptors Descriptors()
    {
        var values = stackalloc double[RDKitNative.DescriptorCount];
        RDKitNative.Check(RDKitNative.bf_mol_descriptors(Handle, values, RDKitNative.DescriptorCount), "descriptors");
        return new MolecularDescriptors(values);
    }

    /// <summary>Number of unique matches of a SMARTS query.</summary>
    public int CountMatches(SmartsQuery query)
    {
        RDKitNative.Check(RDKitNative.bf_mol_count_matches(Handle, query.Handle, out int count), "substructure match");
        return count;
    }

    public bool HasMatch(SmartsQuery query) => CountMatches(query) > 0;

    public Molecule DeleteSubstructures(SmartsQuery query)
    {
        RDKitNative.Check(RDKitNative.bf_mol_delete_substructs(Handle, query.Handle, out var result), "deleting substructures");
        return new Molecule(result);
    }

    /// <summary>Size of the smallest set of smallest rings.</summary>
    public int RingCount()
    {
        RDKitNative.Check(RDKitNative.bf_mol_sssr_count(Handle, out int count), "ring perception");
        return count;
    }

    /// <summary>
    /// Bemis–Murcko scaffold SMILES; <paramref name="generic"/> turns every atom into carbon and every bond single;
    /// <paramref name="isomeric"/> false leaves out stereochemistry (scaffold splits group by that, as MoleculeNet does:
    /// stereoisomers share a scaffold).
    /// </summary>
    public string MurckoScaffold(bool generic = false, bool isomeric = true)
    {
        RDKitNative.Check(RDKitNative.bf_mol_murcko_scaffold(Handle, generic ? 1 : 0, isomeric ? 1 : 0, out IntPtr text), "Murcko scaffold");
        return RDKitNative.TakeString(text);
    }

    /// <summary>Fragments after breaking BRICS bonds (dummy atoms labelled with the BRICS environment).</summary>
    public IReadOnlyList<string> BricsFragments()
    {
        RDKitNative.Check(RDKitNative.bf_mol_brics_fragments(Handle, out IntPtr text), "BRICS fragmentation");
        return RDKitNative.TakeString(text).Split('.');
    }

    /// <summary>
    /// The pieces left after cutting the bonds between the given atoms (of a kekulized copy), each cut end capped by a
    /// dummy atom of isotope 1 (<c>[1*]</c>), as SMILES. Throws when two atoms are not bonded or a piece cannot be sanitized.
    /// </summary>
    public unsafe IReadOnlyList<string> FragmentOnBonds(IReadOnlyList<(int First, int Second)> atomPairs)
    {
        // An empty array is pinned as a null pointer, which the shim would report as its own fault.
        if (atomPairs.Count == 0) throw new BioForgeException("cutting bonds: no bond to cut");
        int[] atoms = [.. atomPairs.SelectMany(p => new[] { p.First, p.Second })];
        IntPtr text;
        fixed (int* p = atoms)
            RDKitNative.Check(RDKitNative.bf_mol_fragment_on_bonds(Handle, p, atomPairs.Count, out text), "cutting bonds");
        return RDKitNative.TakeString(text).Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    public unsafe string ToSvg(int width = 400, int height = 300, IReadOnlyList<int>? highlightAtoms = null)
    {
        int[] atoms = highlightAtoms?.ToArray() ?? [];
        IntPtr text;
        fixed (int* p = atoms)
            RDKitNative.Check(RDKitNative.bf_mol_svg(Handle, width, height, atoms.Length > 0 ? p : null, atoms.Length, out text), "SVG depiction");
        return RDKitNative.TakeString(text);
    }

    public unsafe byte[] ToPng(int width = 400, int height = 300, IReadOnlyList<int>? highlightAtoms = null)
    {
        int[] atoms = highlightAtoms?.ToArray() ?? [];
        IntPtr bytes;
        int length;
        fixed (int* p = atoms)
            RDKitNative.Check(RDKitNative.bf_mol_png(Handle, width, height, atoms.Length > 0 ? p : null, atoms.Length, out bytes, out length), "PNG depiction");
        try
        {
            return new ReadOnlySpan<byte>((void*)bytes, length).ToArray();
        }
        finally
        {
            RDKitNative.bf_string_free(bytes);
        }
    }

    public void Dispose() => Handle.Dispose();
}

/// <summary>A bond: its end atoms, RDKit's <c>Bond::BondType</c> value (1 single, 2 double, 3 triple, 12 aromatic …) and aromaticity.</summary>
public readonly record struct BondInfo(int Begin, int End, int Type, bool Aromatic);

/// <summary>A compiled SMARTS pattern.</summary>
public sealed class SmartsQuery : IDisposable
{
    internal QueryHandle Handle { get; }

    public string Smarts { get; }

    /// <param name="smarts">A pattern; spaces around it are dropped (a config's stray one), one inside refused.</param>
    public SmartsQuery(string smarts)
    {
        if (string.IsNullOrWhiteSpace(smarts)) throw new BioForgeException($"invalid SMARTS '{smarts}'");
        smarts = smarts.Trim();
        if ((Molecule.NonPrintableAscii(smarts) ?? Molecule.Whitespace(smarts, "SMARTS")) is { } reason) throw new BioForgeException($"invalid SMARTS '{smarts}': {reason}");
        int status = RDKitNative.bf_query_from_smarts(smarts, out var handle);
        if (status != RDKitNative.Ok)
        {
            handle.Dispose();
            throw new BioForgeException($"invalid SMARTS '{smarts}': {RDKitNative.LastError()}");
        }
        Handle = handle;
        Smarts = smarts;
    }

    public void Dispose() => Handle.Dispose();
}
