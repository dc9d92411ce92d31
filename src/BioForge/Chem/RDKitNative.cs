using System.Reflection;
using System.Runtime.InteropServices;

namespace BioForge.Chem;

/// <summary>
/// Bindings to <c>libbioforge_rdkit.so</c> (native/rdkit-shim/bioforge_rdkit.h documents the ABI). Every call returns
/// a status; failures become <see cref="BioForgeException"/>s carrying the shim's thread-local message.
/// </summary>
internal static partial class RDKitNative
{
    private const string Library = "bioforge_rdkit";
    public const int DescriptorCount = 20;

    public const int Ok = 0;
    public const int ParseError = 1;
    public const int SanitizeError = 2;
    public const int ArgumentError = 3;
    public const int InternalError = 4;

    private const string InstallHint =
        "build it with the RDKit development packages installed: apt-get install cmake g++ librdkit-dev rdkit-data libboost-dev libcairo2-dev (scripts/setup.sh does this), then rebuild (./bioforge rebuilds when sources change)";

    static RDKitNative() => NativeLibrary.SetDllImportResolver(typeof(RDKitNative).Assembly, Resolve);

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != Library) return IntPtr.Zero;
        string path = Path.Combine(AppContext.BaseDirectory, "libbioforge_rdkit.so");
        if (!File.Exists(path)) throw new BioForgeException($"the RDKit shim {path} is missing; {InstallHint}") { MissingDependency = true };
        try
        {
            return NativeLibrary.Load(path);
        }
        catch (DllNotFoundException e)
        {
            throw new BioForgeException($"cannot load the RDKit shim {path} ({e.Message.Split('\n')[0]}); {InstallHint}", e) { MissingDependency = true };
        }
    }

    /// <summary>Loads the shim now, so a missing RDKit is reported before any work starts.</summary>
    public static string Version() => Marshal.PtrToStringUTF8(bf_version()) ?? "";

    public static string LastError() => Marshal.PtrToStringUTF8(bf_last_error()) ?? "unknown RDKit error";

    public static void Check(int status, string what)
    {
        // A molecule RDKit cannot read is the input's fault; a bad argument (ours) or an exception inside RDKit is not.
        if (status != Ok) throw new BioForgeException($"{what}: {LastError()}") { ServerFault = status is ArgumentError or InternalError };
    }

    /// <summary>Takes ownership of a shim-allocated string.</summary>
    public static string TakeString(IntPtr text)
    {
        try
        {
            return Marshal.PtrToStringUTF8(text) ?? "";
        }
        finally
        {
            bf_string_free(text);
        }
    }

    [LibraryImport(Library)] private static partial IntPtr bf_version();
    [LibraryImport(Library)] private static partial IntPtr bf_last_error();
    [LibraryImport(Library)] public static partial void bf_string_free(IntPtr s);
    [LibraryImport(Library)] public static partial long bf_live_handles();

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)] public static partial int bf_mol_from_smiles(string smiles, int sanitize, out MoleculeHandle mol);
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)] public static partial int bf_mol_from_molblock(string molblock, int sanitize, out MoleculeHandle mol);
    [LibraryImport(Library)] public static partial void bf_mol_free(IntPtr mol);
    [LibraryImport(Library)] public static partial int bf_mol_to_smiles(MoleculeHandle mol, int isomeric, out IntPtr text);
    [LibraryImport(Library)] public static partial int bf_mol_to_random_smiles(MoleculeHandle mol, int isomeric, uint seed, out IntPtr text);
    [LibraryImport(Library)] public static partial int bf_mol_remove_hs(MoleculeHandle mol, out MoleculeHandle result);
    [LibraryImport(Library)] public static partial int bf_mol_uncharge(MoleculeHandle mol, out MoleculeHandle result);
    [LibraryImport(Library)] public static partial int bf_mol_largest_fragment(MoleculeHandle mol, out MoleculeHandle result);
    [LibraryImport(Library)] public static partial int bf_mol_add_hs(MoleculeHandle mol, out MoleculeHandle result);
    [LibraryImport(Library)] public static unsafe partial int bf_mol_atoms(MoleculeHandle mol, int* atomicNumbers, int* charges, int capacity, out int n);
    [LibraryImport(Library)] public static unsafe partial int bf_mol_ring_sizes(MoleculeHandle mol, int* sizes, int capacity, out int n);
    [LibraryImport(Library)] public static unsafe partial int bf_mol_descriptors(MoleculeHandle mol, double* values, int count);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)] public static partial int bf_query_from_smarts(string smarts, out QueryHandle query);
    [LibraryImport(Library)] public static partial void bf_query_free(IntPtr query);
    [LibraryImport(Library)] public static partial int bf_mol_count_matches(MoleculeHandle mol, QueryHandle query, out int count);
    [LibraryImport(Library)] public static partial int bf_mol_delete_substructs(MoleculeHandle mol, QueryHandle query, out MoleculeHandle result);
    [LibraryImport(Library)] public static partial int bf_mol_sssr_count(MoleculeHandle mol, out int count);

    [LibraryImport(Library)] public static unsafe partial int bf_mol_morgan_bits(MoleculeHandle mol, int radius, int bits, int chirality, ulong* words);
    [LibraryImport(Library)] public static unsafe partial int bf_mol_morgan_counts(MoleculeHandle mol, int radius, int chirality, uint* ids, uint* counts, int capacity, out int n);

    [LibraryImport(Library)] public static unsafe partial int bf_mol_feature_morgan_counts(MoleculeHandle mol, int radius, uint* ids, uint* counts, int capacity, out int n);
    [LibraryImport(Library)] public static unsafe partial int bf_mol_atom_pair_counts(MoleculeHandle mol, int minLength, int maxLength, uint* ids, uint* counts, int capacity, out int n);
    [LibraryImport(Library)] public static unsafe partial int bf_mol_distance_matrix(MoleculeHandle mol, int bondOrder, double* values, int capacity, out int n);
    [LibraryImport(Library)] public static unsafe partial int bf_mol_substruct_matches(MoleculeHandle mol, QueryHandle query, int* atoms, int capacity, out int n, out int size);
    [LibraryImport(Library)] public static unsafe partial int bf_mol_bonds(MoleculeHandle mol, int* begin, int* end, int* type, int* aromatic, int capacity, out int n);

    [LibraryImport(Library)] public static partial int bf_mol_murcko_scaffold(MoleculeHandle mol, int generic, int isomeric, out IntPtr text);
    [LibraryImport(Library)] public static partial int bf_mol_brics_fragments(MoleculeHandle mol, out IntPtr text);
    [LibraryImport(Library)] public static unsafe partial int bf_mol_svg(MoleculeHandle mol, int width, int height, int* highlight, int count, out IntPtr text);
    [LibraryImport(Library)] public static unsafe partial int bf_mol_png(MoleculeHandle mol, int width, int height, int* highlight, int count, out IntPtr bytes, out int length);

    [LibraryImport(Library)] public static partial int bf_filter_new(int catalogs, out FilterHandle filter);
    [LibraryImport(Library)] public static partial void bf_filter_free(IntPtr filter);
    [LibraryImport(Library)] public static partial int bf_filter_matches(FilterHandle filter, MoleculeHandle mol, out IntPtr text);
    [LibraryImport(Library)] public static partial int bf_filter_entries(FilterHandle filter, out IntPtr text);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)] public static partial int bf_reaction_from_smarts(string smarts, out ReactionHandle reaction);
    [LibraryImport(Library)] public static partial void bf_reaction_free(IntPtr reaction);
    [LibraryImport(Library)] public static unsafe partial int bf_reaction_run(ReactionHandle reaction, IntPtr* reactants, int count, out IntPtr text);
    [LibraryImport(Library)] public static unsafe partial int bf_mol_fragment_on_bonds(MoleculeHandle mol, int* atomPairs, int pairs, out IntPtr text);
}

internal sealed class MoleculeHandle() : SafeHandle(IntPtr.Zero, ownsHandle: true)
{
    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle()
    {
        RDKitNative.bf_mol_free(handle);
        return true;
    }
}

internal sealed class QueryHandle() : SafeHandle(IntPtr.Zero, ownsHandle: true)
{
    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle()
    {
        RDKitNative.bf_query_free(handle);
        return true;
    }
}

internal sealed class FilterHandle() : SafeHandle(IntPtr.Zero, ownsHandle: true)
{
    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle()
    {
        RDKitNative.bf_filter_free(handle);
        return true;
    }
}

internal sealed class ReactionHandle() : SafeHandle(IntPtr.Zero, ownsHandle: true)
{
    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle()
    {
        RDKitNative.bf_reaction_free(handle);
        return true;
    }
}
