/* BioForge's flat C ABI over RDKit.
 *
 * Conventions
 * - Every function that can fail returns BF_OK (0) or a BF_E* code; bf_last_error() then describes the failure.
 *   No C++ exception crosses this boundary.
 * - bf_last_error() returns a thread-local string owned by the shim, valid until the next call on the same thread.
 * - Strings returned through `char **out` are allocated by the shim; the caller frees them with bf_string_free.
 * - Handles (bf_mol, bf_query, bf_filter, bf_reaction) are freed with their *_free function; freeing NULL is allowed.
 * - All functions may be called from several threads at once on different handles. A molecule handle is not for
 *   several threads at once: RDKit caches what it computes on the molecule (SMILES output order, Crippen and TPSA
 *   values, ring information), so even reading functions write to it. BioForge gives each thread its own.
 */
#ifndef BIOFORGE_RDKIT_H
#define BIOFORGE_RDKIT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BF_API __attribute__((visibility("default")))

#define BF_OK 0
#define BF_EPARSE 1
#define BF_ESANITIZE 2
#define BF_EARG 3
#define BF_EINTERNAL 4

typedef struct bf_mol bf_mol;
typedef struct bf_query bf_query;
typedef struct bf_filter bf_filter;
typedef struct bf_reaction bf_reaction;

BF_API const char *bf_version(void);
BF_API const char *bf_last_error(void);
BF_API void bf_string_free(char *s);
/* Number of molecule, query, filter and reaction handles alive in the process (for leak tests). */
BF_API long bf_live_handles(void);

BF_API int bf_mol_from_smiles(const char *smiles, int sanitize, bf_mol **out);
BF_API int bf_mol_from_molblock(const char *molblock, int sanitize, bf_mol **out);
BF_API void bf_mol_free(bf_mol *mol);
BF_API int bf_mol_to_smiles(const bf_mol *mol, int isomeric, char **out);
/* A random valid SMILES of the molecule (random root atom and branch order), reproducible for a given seed. */
BF_API int bf_mol_to_random_smiles(const bf_mol *mol, int isomeric, uint32_t seed, char **out);
BF_API int bf_mol_remove_hs(const bf_mol *mol, bf_mol **out);
/* RDKit's MolStandardize Uncharger: neutralizes charges that can be (protonation states), keeps zwitterions balanced. */
BF_API int bf_mol_uncharge(const bf_mol *mol, bf_mol **out);
// The parent of a salt or mixture, by RDKit's LargestFragmentChooser (organic fragments preferred).
BF_API int bf_mol_largest_fragment(const bf_mol *mol, bf_mol **out);
BF_API int bf_mol_add_hs(const bf_mol *mol, bf_mol **out);
/* Per atom: atomic number and formal charge (up to capacity atoms); *n receives the number of atoms. */
BF_API int bf_mol_atoms(const bf_mol *mol, int *atomic_numbers, int *formal_charges, int capacity, int *n);
/* Size of every ring of the ring perception RDKit stores on the molecule (the symmetrized SSSR); *n receives the number of rings. */
BF_API int bf_mol_ring_sizes(const bf_mol *mol, int *sizes, int capacity, int *n);

/* Descriptors in this order (BF_DESCRIPTOR_COUNT values):
 * 0 MolWt  1 ExactMolWt  2 HeavyAtomCount  3 MolLogP (Crippen)  4 MolMR (Crippen)  5 TPSA  6 NumHDonors (Lipinski)
 * 7 NumHAcceptors (Lipinski)  8 NumRotatableBonds (RDKit default)  9 RingCount  10 NumAromaticRings  11 FractionCSP3
 * 12 FormalCharge (sum)  13 NumAtomStereoCenters  14 NumRotatableBonds (strict)  15 NumAtoms (heavy + explicit H)
 * 16 NumSpiroAtoms  17 NumBridgeheadAtoms
 * 18 ChiralCenters (assigned or possible, as Chem.FindMolChiralCenters(includeUnassigned=True))
 * 19 Macrocycles (rings of more than 8 atoms) */
#define BF_DESCRIPTOR_COUNT 20
BF_API int bf_mol_descriptors(const bf_mol *mol, double *out, int count);

BF_API int bf_query_from_smarts(const char *smarts, bf_query **out);
BF_API void bf_query_free(bf_query *query);
/* Number of unique matches (0 when none). */
BF_API int bf_mol_count_matches(const bf_mol *mol, const bf_query *query, int *out);
/* The molecule with every match of the query deleted. */
BF_API int bf_mol_delete_substructs(const bf_mol *mol, const bf_query *query, bf_mol **out);
/* Number of rings in the smallest set of smallest rings. */
BF_API int bf_mol_sssr_count(const bf_mol *mol, int *out);

/* Morgan (ECFP-like) fingerprint folded to nbits, written as nbits/64 little-endian 64-bit words. */
BF_API int bf_mol_morgan_bits(const bf_mol *mol, int radius, int nbits, int chirality, uint64_t *words);
/* Unfolded Morgan count fingerprint: up to capacity (id, count) pairs; *n receives the total number of ids. */
BF_API int bf_mol_morgan_counts(const bf_mol *mol, int radius, int chirality, uint32_t *ids, uint32_t *counts,
                                int capacity, int *n);

/* Unfolded Morgan count fingerprint over feature invariants (FCFP: RDKit's getFeatureInvariants, Gobbi-style donor,
 * acceptor, aromatic, halogen, basic, acidic classes), no chirality; as bf_mol_morgan_counts otherwise. */
BF_API int bf_mol_feature_morgan_counts(const bf_mol *mol, int radius, uint32_t *ids, uint32_t *counts, int capacity,
                                        int *n);
/* Unhashed atom-pair count fingerprint (RDKit's getAtomPairFingerprint: 2D, no chirality) over pairs of atoms
 * min_length..max_length bonds apart; as bf_mol_morgan_counts otherwise. */
BF_API int bf_mol_atom_pair_counts(const bf_mol *mol, int min_length, int max_length, uint32_t *ids, uint32_t *counts,
                                   int capacity, int *n);
/* All-pairs shortest path lengths, row-major (n*n values when n*n <= capacity); *n receives the number of atoms.
 * Each bond counts 1, or with bond_order 1/order (aromatic 2/3) as RDKit's getDistanceMat(useBO); atoms in different
 * fragments are 1e8 apart. */
BF_API int bf_mol_distance_matrix(const bf_mol *mol, int bond_order, double *out, int capacity, int *n);
/* Unique matches of a query, each as the molecule atoms matched by query atoms 0..size-1, concatenated (up to
 * capacity ints); *n receives the number of matches and *size the atoms per match. */
BF_API int bf_mol_substruct_matches(const bf_mol *mol, const bf_query *query, int *atoms, int capacity, int *n,
                                    int *size);
/* Per bond (up to capacity): begin and end atom, RDKit's Bond::BondType value (1 single, 2 double, 3 triple,
 * 12 aromatic, ...) and the aromatic flag; *n receives the number of bonds. */
BF_API int bf_mol_bonds(const bf_mol *mol, int *begin, int *end, int *type, int *aromatic, int capacity, int *n);

/* Bemis-Murcko scaffold SMILES; generic: every atom carbon, every bond single; isomeric 0: without stereochemistry
 * (the grouping key of scaffold splits, as MoleculeNet and chemprop write it). */
BF_API int bf_mol_murcko_scaffold(const bf_mol *mol, int generic, int isomeric, char **out);
/* Fragments after cutting BRICS bonds, as one SMILES with fragments separated by '.'. */
BF_API int bf_mol_brics_fragments(const bf_mol *mol, char **out);

/* 2D depiction; highlight may be NULL. PNG bytes are returned in *out with their length in *length. */
BF_API int bf_mol_svg(const bf_mol *mol, int width, int height, const int *highlight, int highlight_count, char **out);
BF_API int bf_mol_png(const bf_mol *mol, int width, int height, const int *highlight, int highlight_count, char **out,
                      int *length);

/* catalogs: bit mask 1 PAINS_A, 2 PAINS_B, 4 PAINS_C, 8 BRENK, 16 NIH. */
BF_API int bf_filter_new(int catalogs, bf_filter **out);
BF_API void bf_filter_free(bf_filter *filter);
/* Descriptions of every matching rule, one per line as "CATALOG:description" (empty string when none match). */
BF_API int bf_filter_matches(const bf_filter *filter, const bf_mol *mol, char **out);
/* Every rule of the filter's catalogues, one "CATALOG:description" per line, as bf_filter_matches names them. */
BF_API int bf_filter_entries(const bf_filter *filter, char **out);

/* Graph edits for genetic operators (mutation and crossover by reaction SMARTS, as in Jensen's graph-based GA). */
/* A reaction from reaction SMARTS (as RDKit's AllChem.ReactionFromSmarts), ready to run. */
BF_API int bf_reaction_from_smarts(const char *smarts, bf_reaction **out);
BF_API void bf_reaction_free(bf_reaction *reaction);
/* Runs the reaction on `count` reactants (its number of templates), each a copy kekulized with aromatic flags cleared,
 * so that single and double bond patterns reach into aromatic rings. The first product of every outcome is sanitized;
 * those that sanitize are written as canonical SMILES into *out, one per line, in outcome order (repeats kept). */
BF_API int bf_reaction_run(const bf_reaction *reaction, const bf_mol *const *reactants, int count, char **out);
/* Cuts the molecule (a kekulized copy) at the bonds between `pairs` atom pairs (2 * pairs atom indices), a dummy atom
 * of isotope 1 on each cut end, and writes the sanitized pieces as SMILES into *out, one per line. BF_EARG when two
 * atoms are not bonded, BF_ESANITIZE when a piece cannot be sanitized. */
BF_API int bf_mol_fragment_on_bonds(const bf_mol *mol, const int *atom_pairs, int pairs, char **out);

#ifdef __cplusplus
}
#endif
#endif
