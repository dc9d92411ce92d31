// BioForge's C ABI over RDKit: every entry point catches everything, so no C++ exception reaches .NET.
#include "bioforge_rdkit.h"

#include <DataStructs/ExplicitBitVect.h>
#include <DataStructs/SparseIntVect.h>
#include <GraphMol/ChemReactions/Reaction.h>
#include <GraphMol/ChemReactions/ReactionParser.h>
#include <GraphMol/ChemTransforms/ChemTransforms.h>
#include <GraphMol/ChemTransforms/MolFragmenter.h>
#include <GraphMol/Descriptors/Crippen.h>
#include <GraphMol/Descriptors/Lipinski.h>
#include <GraphMol/Descriptors/MolDescriptors.h>
#include <GraphMol/Descriptors/MolSurf.h>
#include <GraphMol/FileParsers/FileParsers.h>
#include <GraphMol/FilterCatalog/FilterCatalog.h>
#include <GraphMol/Fingerprints/AtomPairs.h>
#include <GraphMol/Fingerprints/FingerprintUtil.h>
#include <GraphMol/Fingerprints/MorganFingerprints.h>
#include <GraphMol/GraphMol.h>
#include <GraphMol/MolDraw2D/MolDraw2DCairo.h>
#include <GraphMol/MolDraw2D/MolDraw2DSVG.h>
#include <GraphMol/MolDraw2D/MolDraw2DUtils.h>
#include <GraphMol/MolOps.h>
#include <GraphMol/MolStandardize/Charge.h>
#include <GraphMol/MolStandardize/Fragment.h>
#include <GraphMol/SmilesParse/SmilesParse.h>
#include <GraphMol/SmilesParse/SmilesWrite.h>
#include <GraphMol/Substruct/SubstructMatch.h>
#include <RDGeneral/FileParseException.h>
#include <RDGeneral/Invariant.h>
#include <RDGeneral/RDLog.h>
#include <RDGeneral/versions.h>
#include <RDGeneral/utils.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace {
std::atomic<long> live_handles{0};

// Counts itself in live_handles for as long as the handle that contains it exists.
struct Tracked {
  Tracked() { ++live_handles; }
  Tracked(const Tracked &) = delete;
  ~Tracked() { --live_handles; }
};
}  // namespace

struct bf_mol {
  std::unique_ptr<RDKit::ROMol> mol;
  Tracked tracked{};
};
struct bf_query {
  std::unique_ptr<RDKit::ROMol> query;
  Tracked tracked{};
};
struct bf_filter {
  std::vector<std::pair<std::string, std::unique_ptr<RDKit::FilterCatalog>>> catalogs;
  Tracked tracked{};
};
struct bf_reaction {
  std::unique_ptr<RDKit::ChemicalReaction> reaction;
  Tracked tracked{};
};

namespace {

thread_local std::string last_error;
thread_local std::string captured_log;

// RDKit reports why a SMILES failed only through its error log. The log's stream is redirected to a buffer that
// appends to a thread-local string, so each thread sees the messages of its own calls and nothing reaches stderr.
class ThreadLocalBuffer : public std::streambuf {
 protected:
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) captured_log.push_back(static_cast<char>(c));
    return c;
  }
  std::streamsize xsputn(const char *s, std::streamsize n) override {
    captured_log.append(s, static_cast<size_t>(n));
    return n;
  }
};

// Never destroyed: RDKit's loggers flush their stream when they are destroyed at exit, which may be after this file's
// statics are (a use after destruction that today's libstdc++ happens to survive).
std::ostream &capture_stream = *new std::ostream(new ThreadLocalBuffer());
std::once_flag init_once;
std::mutex random_smiles_mutex;

void initialise() {
  std::call_once(init_once, [] {
    RDLog::InitLogs();
    if (rdErrorLog) rdErrorLog->dp_dest = &capture_stream;
    if (rdWarningLog) rdWarningLog->dp_dest = &capture_stream;
    if (rdInfoLog) rdInfoLog->df_enabled = false;
    if (rdDebugLog) rdDebugLog->df_enabled = false;
  });
}

// "[12:34:56] SMILES Parse Error: ..." lines → "SMILES Parse Error: ...; ...".
std::string log_messages() {
  std::istringstream lines(captured_log);
  std::string line, joined;
  while (std::getline(lines, line)) {
    if (line.size() > 11 && line[0] == '[' && line[9] == ']') line = line.substr(11);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line.find_first_not_of(" ^") == std::string::npos) continue;
    if (!joined.empty()) joined += "; ";
    joined += line;
  }
  return joined;
}

int fail(int code, const std::string &message) noexcept {
  try {
    last_error = message;
  } catch (...) {
    // Out of memory while keeping the message: the code still says what kind of failure it was.
    last_error.clear();
  }
  return code;
}

// The handlers' form: the message is built inside the try, so a failure to allocate it cannot escape either.
int fail(int code, const char *prefix, const char *what) noexcept {
  try {
    last_error = std::string(prefix) + what;
  } catch (...) {
    last_error.clear();
  }
  return code;
}

// Every exported function runs its body here: no C++ exception may cross the C ABI into .NET (it would end the process).
template <class Body>
int guarded(Body &&body) noexcept {
  captured_log.clear();
  last_error.clear();
  try {
    initialise();
    return body();
  } catch (const RDKit::MolSanitizeException &e) {
    return fail(BF_ESANITIZE, "", e.what());
  } catch (const Invar::Invariant &e) {
    return fail(BF_EINTERNAL, "RDKit invariant violation: ", e.what());
  } catch (const std::exception &e) {
    return fail(BF_EINTERNAL, "", e.what());
  } catch (...) {
    return fail(BF_EINTERNAL, "", "unknown C++ exception in RDKit");
  }
}

// A copy with alternating single/double bonds for aromatic rings and no aromatic flags; unchanged if that fails.
std::unique_ptr<RDKit::RWMol> kekulized(const RDKit::ROMol &mol) {
  auto copy = std::make_unique<RDKit::RWMol>(mol);
  try {
    RDKit::MolOps::Kekulize(*copy, true);
  } catch (const RDKit::MolSanitizeException &) {
    copy = std::make_unique<RDKit::RWMol>(mol);
  }
  return copy;
}

std::string joined_lines(const std::vector<std::string> &lines) {
  std::string text;
  for (const auto &line : lines) {
    if (!text.empty()) text += '\n';
    text += line;
  }
  return text;
}

char *copy_string(const std::string &s) {
  char *out = static_cast<char *>(std::malloc(s.size() + 1));
  if (!out) throw std::bad_alloc();
  std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

// A sanitized molecule is sanitized once more, as MOSES (get_mol) and GuacaMol (smiles_to_rdkit_mol) check validity:
// RDKit reads a few SMILES (a charged aromatic nitrogen in a ring it cannot keep aromatic) that it cannot sanitize
// again, and whose canonical SMILES it cannot read back; those are invalid here too.
int finish_parse(RDKit::RWMol *parsed, bf_mol **out, const char *what, bool sanitized) {
  if (!parsed) {
    std::string reason = log_messages();
    return fail(BF_EPARSE, reason.empty() ? std::string("invalid ") + what : reason);
  }
  std::unique_ptr<RDKit::RWMol> mol(parsed);
  if (sanitized) {
    try {
      RDKit::MolOps::sanitizeMol(*mol);
    } catch (const RDKit::MolSanitizeException &e) {
      return fail(BF_ESANITIZE, std::string("RDKit reads it but cannot sanitize it again: ") + e.what());
    }
  }
  *out = new bf_mol{std::unique_ptr<RDKit::ROMol>(mol.release())};
  return BF_OK;
}

int check(const void *a, const void *b = reinterpret_cast<const void *>(1)) {
  return a && b ? BF_OK : fail(BF_EARG, "null argument");
}

std::vector<int> highlights(const int *atoms, int count, const RDKit::ROMol &mol) {
  std::vector<int> result;
  for (int i = 0; atoms && i < count; ++i) {
    if (atoms[i] < 0 || atoms[i] >= static_cast<int>(mol.getNumAtoms()))
      throw std::invalid_argument("highlighted atom index " + std::to_string(atoms[i]) + " is outside the molecule");
    result.push_back(atoms[i]);
  }
  return result;
}

template <class Drawer>
std::string draw(Drawer &drawer, const RDKit::ROMol &mol, const int *atoms, int count) {
  auto highlight = highlights(atoms, count, mol);
  RDKit::MolDraw2DUtils::prepareAndDrawMolecule(drawer, mol, "", highlight.empty() ? nullptr : &highlight);
  drawer.finishDrawing();
  return drawer.getDrawingText();
}

template <class Vect>
int write_counts(const Vect &fp, uint32_t *ids, uint32_t *counts, int capacity, int *n) {
  int i = 0;
  for (const auto &[id, count] : fp.getNonzeroElements()) {
    if (i < capacity) {
      ids[i] = static_cast<uint32_t>(id);
      counts[i] = static_cast<uint32_t>(count);
    }
    ++i;
  }
  *n = i;
  return BF_OK;
}

}  // namespace

extern "C" {

const char *bf_version(void) { return RDKit::rdkitVersion; }

const char *bf_last_error(void) { return last_error.c_str(); }

void bf_string_free(char *s) { std::free(s); }

long bf_live_handles(void) { return live_handles.load(); }

int bf_mol_from_smiles(const char *smiles, int sanitize, bf_mol **out) {
  return guarded([&] {
    if (int rc = check(smiles, out)) return rc;
    *out = nullptr;
    RDKit::SmilesParserParams params;
    params.sanitize = sanitize != 0;
    return finish_parse(RDKit::SmilesToMol(smiles, params), out, "SMILES", params.sanitize);
  });
}

int bf_mol_from_molblock(const char *molblock, int sanitize, bf_mol **out) {
  return guarded([&] {
    if (int rc = check(molblock, out)) return rc;
    *out = nullptr;
    try {
      return finish_parse(RDKit::MolBlockToMol(molblock, sanitize != 0, true), out, "MOL block", sanitize != 0);
    } catch (const RDKit::FileParseException &e) {
      // A malformed block ("EOF hit while reading atoms") is the input's fault, not RDKit's.
      return fail(BF_EPARSE, e.what());
    }
  });
}

void bf_mol_free(bf_mol *mol) { delete mol; }

int bf_mol_to_smiles(const bf_mol *mol, int isomeric, char **out) {
  return guarded([&] {
    if (int rc = check(mol, out)) return rc;
    *out = copy_string(RDKit::MolToSmiles(*mol->mol, isomeric != 0));
    return BF_OK;
  });
}

int bf_mol_to_random_smiles(const bf_mol *mol, int isomeric, uint32_t seed, char **out) {
  return guarded([&] {
    if (int rc = check(mol, out)) return rc;
    RDKit::SmilesWriteParams params;
    params.doIsomericSmiles = isomeric != 0;
    params.doRandom = true;
    params.canonical = false;
    // RDKit draws from one process-wide generator: seed and use it under a lock so results are reproducible. It reseeds
    // only for a positive seed, so every seed maps into 1 .. 2^31 - 1 (seed 0 would draw on from wherever it was).
    std::lock_guard<std::mutex> lock(random_smiles_mutex);
    RDKit::getRandomGenerator(static_cast<int>(seed % 0x7fffffffu) + 1);
    *out = copy_string(RDKit::MolToSmiles(*mol->mol, params));
    return BF_OK;
  });
}

int bf_mol_remove_hs(const bf_mol *mol, bf_mol **out) {
  return guarded([&] {
    if (int rc = check(mol, out)) return rc;
    *out = new bf_mol{std::unique_ptr<RDKit::ROMol>(RDKit::MolOps::removeHs(*mol->mol))};
    return BF_OK;
  });
}

int bf_mol_uncharge(const bf_mol *mol, bf_mol **out) {
  return guarded([&] {
    if (int rc = check(mol, out)) return rc;
    // Its constructor compiles its SMARTS patterns: once per thread, not once per charged molecule of a library.
    static thread_local RDKit::MolStandardize::Uncharger uncharger;
    *out = new bf_mol{std::unique_ptr<RDKit::ROMol>(uncharger.uncharge(*mol->mol))};
    return BF_OK;
  });
}

int bf_mol_add_hs(const bf_mol *mol, bf_mol **out) {
  return guarded([&] {
    if (int rc = check(mol, out)) return rc;
    *out = new bf_mol{std::unique_ptr<RDKit::ROMol>(RDKit::MolOps::addHs(*mol->mol))};
    return BF_OK;
  });
}

int bf_mol_largest_fragment(const bf_mol *mol, bf_mol **out) {
  return guarded([&] {
    if (int rc = check(mol, out)) return rc;
    // Organic pieces first, then the most atoms counting hydrogens, then the weight, then the SMILES: RDKit's own rule.
    RDKit::MolStandardize::LargestFragmentChooser chooser(true);
    *out = new bf_mol{std::unique_ptr<RDKit::ROMol>(chooser.choose(*mol->mol))};
    return BF_OK;
  });
}

int bf_mol_atoms(const bf_mol *mol, int *atomic_numbers, int *formal_charges, int capacity, int *n) {
  return guarded([&] {
    if (int rc = check(mol, n)) return rc;
    if (capacity < 0 || (capacity > 0 && (!atomic_numbers || !formal_charges))) return fail(BF_EARG, "bad buffers");
    int i = 0;
    for (const auto atom : mol->mol->atoms()) {
      if (i < capacity) {
        atomic_numbers[i] = atom->getAtomicNum();
        formal_charges[i] = atom->getFormalCharge();
      }
      ++i;
    }
    *n = i;
    return BF_OK;
  });
}

int bf_mol_ring_sizes(const bf_mol *mol, int *sizes, int capacity, int *n) {
  return guarded([&] {
    if (int rc = check(mol, n)) return rc;
    if (capacity < 0 || (capacity > 0 && !sizes)) return fail(BF_EARG, "bad buffer");
    const RDKit::ROMol &m = *mol->mol;
    if (!m.getRingInfo()->isInitialized()) RDKit::MolOps::findSSSR(m);
    int i = 0;
    for (const auto &ring : m.getRingInfo()->atomRings()) {
      if (i < capacity) sizes[i] = static_cast<int>(ring.size());
      ++i;
    }
    *n = i;
    return BF_OK;
  });
}

int bf_mol_descriptors(const bf_mol *mol, double *out, int count) {
  return guarded([&] {
    if (int rc = check(mol, out)) return rc;
    if (count < BF_DESCRIPTOR_COUNT) return fail(BF_EARG, "descriptor buffer too small");
    const RDKit::ROMol &m = *mol->mol;
    namespace D = RDKit::Descriptors;
    double logp = 0, mr = 0;
    // Forced: RDKit caches these on the molecule, and a copy (the Uncharger's result) inherits another molecule's values.
    D::calcCrippenDescriptors(m, logp, mr, true, true);

    RDKit::RWMol stereo(m);
    RDKit::MolOps::assignStereochemistry(stereo, true, true, true);
    int chiral = 0;
    for (const auto atom : stereo.atoms())
      if (atom->hasProp(RDKit::common_properties::_CIPCode) || atom->hasProp(RDKit::common_properties::_ChiralityPossible))
        ++chiral;
    int macrocycles = 0;
    if (!m.getRingInfo()->isInitialized()) RDKit::MolOps::findSSSR(m);
    for (const auto &ring : m.getRingInfo()->atomRings())
      if (ring.size() > 8) ++macrocycles;

    out[0] = D::calcAMW(m);
    out[1] = D::calcExactMW(m);
    out[2] = m.getNumHeavyAtoms();
    out[3] = logp;
    out[4] = mr;
    out[5] = D::calcTPSA(m, true);
    out[6] = D::calcNumHBD(m);
    out[7] = D::calcNumHBA(m);
    out[8] = D::calcNumRotatableBonds(m);
    out[9] = D::calcNumRings(m);
    out[10] = D::calcNumAromaticRings(m);
    out[11] = D::calcFractionCSP3(m);
    out[12] = RDKit::MolOps::getFormalCharge(m);
    out[13] = D::numAtomStereoCenters(stereo);
    out[14] = D::calcNumRotatableBonds(m, D::Strict);
    out[15] = m.getNumAtoms();
    out[16] = D::calcNumSpiroAtoms(m);
    out[17] = D::calcNumBridgeheadAtoms(m);
    out[18] = chiral;
    out[19] = macrocycles;
    return BF_OK;
  });
}

int bf_query_from_smarts(const char *smarts, bf_query **out) {
  return guarded([&] {
    if (int rc = check(smarts, out)) return rc;
    *out = nullptr;
    RDKit::RWMol *query = RDKit::SmartsToMol(smarts);
    if (!query) {
      std::string reason = log_messages();
      return fail(BF_EPARSE, reason.empty() ? "invalid SMARTS" : reason);
    }
    *out = new bf_query{std::unique_ptr<RDKit::ROMol>(query)};
    return BF_OK;
  });
}

void bf_query_free(bf_query *query) { delete query; }

int bf_mol_count_matches(const bf_mol *mol, const bf_query *query, int *out) {
  return guarded([&] {
    if (int rc = check(mol, query) | check(out)) return rc;
    std::vector<RDKit::MatchVectType> matches;
    *out = static_cast<int>(RDKit::SubstructMatch(*mol->mol, *query->query, matches, true));
    return BF_OK;
  });
}

int bf_mol_delete_substructs(const bf_mol *mol, const bf_query *query, bf_mol **out) {
  return guarded([&] {
    if (int rc = check(mol, query) | check(out)) return rc;
    *out = new bf_mol{std::unique_ptr<RDKit::ROMol>(RDKit::deleteSubstructs(*mol->mol, *query->query))};
    return BF_OK;
  });
}

int bf_mol_sssr_count(const bf_mol *mol, int *out) {
  return guarded([&] {
    if (int rc = check(mol, out)) return rc;
    RDKit::RWMol copy(*mol->mol);
    std::vector<std::vector<int>> rings;
    *out = RDKit::MolOps::findSSSR(copy, rings);
    return BF_OK;
  });
}

int bf_mol_morgan_bits(const bf_mol *mol, int radius, int nbits, int chirality, uint64_t *words) {
  return guarded([&] {
    if (int rc = check(mol, words)) return rc;
    if (radius < 0 || nbits <= 0 || nbits % 64 != 0) return fail(BF_EARG, "radius must be >= 0 and bits a positive multiple of 64");
    std::unique_ptr<ExplicitBitVect> fp(RDKit::MorganFingerprints::getFingerprintAsBitVect(
        *mol->mol, static_cast<unsigned>(radius), static_cast<unsigned>(nbits), nullptr, nullptr, chirality != 0));
    std::memset(words, 0, static_cast<size_t>(nbits / 64) * sizeof(uint64_t));
    for (int i = 0; i < nbits; ++i)
      if (fp->getBit(static_cast<unsigned>(i))) words[i / 64] |= uint64_t{1} << (i % 64);
    return BF_OK;
  });
}

int bf_mol_morgan_counts(const bf_mol *mol, int radius, int chirality, uint32_t *ids, uint32_t *counts, int capacity,
                         int *n) {
  return guarded([&] {
    if (int rc = check(mol, n)) return rc;
    if (radius < 0 || capacity < 0 || (capacity > 0 && (!ids || !counts))) return fail(BF_EARG, "bad radius or buffers");
    std::unique_ptr<RDKit::SparseIntVect<uint32_t>> fp(RDKit::MorganFingerprints::getFingerprint(
        *mol->mol, static_cast<unsigned>(radius), nullptr, nullptr, chirality != 0, true, true));
    const auto &elements = fp->getNonzeroElements();
    int i = 0;
    for (const auto &[id, count] : elements) {
      if (i < capacity) {
        ids[i] = id;
        counts[i] = static_cast<uint32_t>(count);
      }
      ++i;
    }
    *n = i;
    return BF_OK;
  });
}

int bf_mol_feature_morgan_counts(const bf_mol *mol, int radius, uint32_t *ids, uint32_t *counts, int capacity,
                                 int *n) {
  return guarded([&] {
    if (int rc = check(mol, n)) return rc;
    if (radius < 0 || capacity < 0 || (capacity > 0 && (!ids || !counts))) return fail(BF_EARG, "bad radius or buffers");
    std::vector<std::uint32_t> invariants(mol->mol->getNumAtoms());
    RDKit::MorganFingerprints::getFeatureInvariants(*mol->mol, invariants);
    std::unique_ptr<RDKit::SparseIntVect<uint32_t>> fp(RDKit::MorganFingerprints::getFingerprint(
        *mol->mol, static_cast<unsigned>(radius), &invariants, nullptr, false, true, true));
    return write_counts(*fp, ids, counts, capacity, n);
  });
}

int bf_mol_atom_pair_counts(const bf_mol *mol, int min_length, int max_length, uint32_t *ids, uint32_t *counts,
                            int capacity, int *n) {
  return guarded([&] {
    if (int rc = check(mol, n)) return rc;
    if (min_length < 1 || max_length < min_length || capacity < 0 || (capacity > 0 && (!ids || !counts)))
      return fail(BF_EARG, "need 1 <= min_length <= max_length, and buffers");
    std::unique_ptr<RDKit::SparseIntVect<std::int32_t>> fp(RDKit::AtomPairs::getAtomPairFingerprint(
        *mol->mol, static_cast<unsigned>(min_length), static_cast<unsigned>(max_length)));
    return write_counts(*fp, ids, counts, capacity, n);
  });
}

int bf_mol_distance_matrix(const bf_mol *mol, int bond_order, double *out, int capacity, int *n) {
  return guarded([&] {
    if (int rc = check(mol, n)) return rc;
    if (capacity < 0 || (capacity > 0 && !out)) return fail(BF_EARG, "bad buffer");
    // getDistanceMat caches its result on the molecule it is given: a private copy keeps shared handles untouched.
    RDKit::ROMol copy(*mol->mol);
    const int atoms = static_cast<int>(copy.getNumAtoms());
    const double *matrix = RDKit::MolOps::getDistanceMat(copy, bond_order != 0, false, true);
    const long size = static_cast<long>(atoms) * atoms;
    if (size <= capacity) std::memcpy(out, matrix, static_cast<size_t>(size) * sizeof(double));
    *n = atoms;
    return BF_OK;
  });
}

int bf_mol_substruct_matches(const bf_mol *mol, const bf_query *query, int *atoms, int capacity, int *n, int *size) {
  return guarded([&] {
    if (int rc = check(mol, query) | check(n, size)) return rc;
    if (capacity < 0 || (capacity > 0 && !atoms)) return fail(BF_EARG, "bad buffer");
    std::vector<RDKit::MatchVectType> matches;
    RDKit::SubstructMatch(*mol->mol, *query->query, matches, true);
    *size = static_cast<int>(query->query->getNumAtoms());
    int i = 0;
    for (const auto &match : matches)
      for (const auto &[queryAtom, molAtom] : match) {
        if (i < capacity) atoms[i] = molAtom;
        ++i;
      }
    *n = static_cast<int>(matches.size());
    return BF_OK;
  });
}

int bf_mol_bonds(const bf_mol *mol, int *begin, int *end, int *type, int *aromatic, int capacity, int *n) {
  return guarded([&] {
    if (int rc = check(mol, n)) return rc;
    if (capacity < 0 || (capacity > 0 && (!begin || !end || !type || !aromatic))) return fail(BF_EARG, "bad buffers");
    int i = 0;
    for (const auto bond : mol->mol->bonds()) {
      if (i < capacity) {
        begin[i] = static_cast<int>(bond->getBeginAtomIdx());
        end[i] = static_cast<int>(bond->getEndAtomIdx());
        type[i] = static_cast<int>(bond->getBondType());
        aromatic[i] = bond->getIsAromatic() ? 1 : 0;
      }
      ++i;
    }
    *n = i;
    return BF_OK;
  });
}

int bf_mol_murcko_scaffold(const bf_mol *mol, int generic, int isomeric, char **out) {
  return guarded([&] {
    if (int rc = check(mol, out)) return rc;
    std::unique_ptr<RDKit::ROMol> core(RDKit::MurckoDecompose(*mol->mol));
    RDKit::RWMol scaffold(*core);
    scaffold.clearComputedProps();
    scaffold.updatePropertyCache(false);
    if (generic) {
      // As RDKit's MurckoScaffold.MakeScaffoldGeneric: every heavy atom a carbon, every bond single, no charges.
      for (auto atom : scaffold.atoms()) {
        if (atom->getAtomicNum() != 1) atom->setAtomicNum(6);
        atom->setIsAromatic(false);
        atom->setFormalCharge(0);
        atom->setChiralTag(RDKit::Atom::CHI_UNSPECIFIED);
        atom->setNoImplicit(false);
        atom->setNumExplicitHs(0);
      }
      for (auto bond : scaffold.bonds()) {
        bond->setBondType(RDKit::Bond::SINGLE);
        bond->setIsAromatic(false);
      }
      scaffold.updatePropertyCache(false);
      // Unsanitized: a hypervalent atom (a sulfur or phosphorus with five or six ring neighbours) becomes a carbon with
      // more than four bonds, which sanitization refuses; the generic scaffold is a grouping key, not a molecule.
      std::unique_ptr<RDKit::ROMol> noHs(
          RDKit::MolOps::removeHs(static_cast<const RDKit::ROMol &>(scaffold), false, false, /*sanitize=*/false));
      RDKit::MolOps::findSSSR(*noHs);
      *out = copy_string(RDKit::MolToSmiles(*noHs, isomeric != 0));
      return BF_OK;
    }
    RDKit::MolOps::findSSSR(scaffold);
    *out = copy_string(RDKit::MolToSmiles(scaffold, isomeric != 0));
    return BF_OK;
  });
}

int bf_mol_brics_fragments(const bf_mol *mol, char **out) {
  return guarded([&] {
    if (int rc = check(mol, out)) return rc;
    std::unique_ptr<RDKit::ROMol> pieces(RDKit::MolFragmenter::fragmentOnBRICSBonds(*mol->mol));
    *out = copy_string(RDKit::MolToSmiles(*pieces));
    return BF_OK;
  });
}

int bf_mol_svg(const bf_mol *mol, int width, int height, const int *highlight, int highlight_count, char **out) {
  return guarded([&] {
    if (int rc = check(mol, out)) return rc;
    if (width < 16 || height < 16 || width > 10000 || height > 10000) return fail(BF_EARG, "image size must be 16..10000 pixels");
    RDKit::MolDraw2DSVG drawer(width, height);
    *out = copy_string(draw(drawer, *mol->mol, highlight, highlight_count));
    return BF_OK;
  });
}

int bf_mol_png(const bf_mol *mol, int width, int height, const int *highlight, int highlight_count, char **out,
               int *length) {
  return guarded([&] {
    if (int rc = check(mol, out) | check(length)) return rc;
    if (width < 16 || height < 16 || width > 10000 || height > 10000) return fail(BF_EARG, "image size must be 16..10000 pixels");
    RDKit::MolDraw2DCairo drawer(width, height);
    std::string png = draw(drawer, *mol->mol, highlight, highlight_count);
    *out = static_cast<char *>(std::malloc(png.size()));
    if (!*out) throw std::bad_alloc();
    std::memcpy(*out, png.data(), png.size());
    *length = static_cast<int>(png.size());
    return BF_OK;
  });
}

int bf_filter_new(int catalogs, bf_filter **out) {
  return guarded([&] {
    if (int rc = check(out)) return rc;
    *out = nullptr;
    using P = RDKit::FilterCatalogParams;
    const std::pair<int, std::pair<const char *, P::FilterCatalogs>> known[] = {
        {1, {"PAINS_A", P::PAINS_A}}, {2, {"PAINS_B", P::PAINS_B}}, {4, {"PAINS_C", P::PAINS_C}},
        {8, {"BRENK", P::BRENK}},     {16, {"NIH", P::NIH}}};
    auto filter = std::make_unique<bf_filter>();
    for (const auto &[bit, entry] : known) {
      if (!(catalogs & bit)) continue;
      P params;
      params.addCatalog(entry.second);
      filter->catalogs.emplace_back(entry.first, std::make_unique<RDKit::FilterCatalog>(params));
    }
    if (filter->catalogs.empty()) return fail(BF_EARG, "no filter catalog selected");
    *out = filter.release();
    return BF_OK;
  });
}

void bf_filter_free(bf_filter *filter) { delete filter; }

int bf_filter_matches(const bf_filter *filter, const bf_mol *mol, char **out) {
  return guarded([&] {
    if (int rc = check(filter, mol) | check(out)) return rc;
    std::string lines;
    for (const auto &[name, catalog] : filter->catalogs) {
      for (const auto &entry : catalog->getMatches(*mol->mol)) {
        if (!lines.empty()) lines += '\n';
        lines += name + ":" + entry->getDescription();
      }
    }
    *out = copy_string(lines);
    return BF_OK;
  });
}

int bf_filter_entries(const bf_filter *filter, char **out) {
  return guarded([&] {
    if (int rc = check(filter) | check(out)) return rc;
    std::string lines;
    for (const auto &[name, catalog] : filter->catalogs) {
      for (unsigned int i = 0; i < catalog->getNumEntries(); ++i) {
        if (!lines.empty()) lines += '\n';
        lines += name + ":" + catalog->getEntryWithIdx(i)->getDescription();
      }
    }
    *out = copy_string(lines);
    return BF_OK;
  });
}

int bf_reaction_from_smarts(const char *smarts, bf_reaction **out) {
  return guarded([&] {
    if (int rc = check(smarts, out)) return rc;
    *out = nullptr;
    std::unique_ptr<RDKit::ChemicalReaction> reaction;
    try {
      reaction.reset(RDKit::RxnSmartsToChemicalReaction(smarts));
    } catch (const RDKit::ChemicalReactionParserException &e) {
      return fail(BF_EPARSE, e.what());
    }
    if (!reaction) return fail(BF_EPARSE, "invalid reaction SMARTS");
    // A template RDKit cannot match ("[C:1]>>", a map number used twice) leaves the reaction uninitialised without a
    // word; running it would then fail as if RDKit had, so it is refused here, as the SMARTS it is.
    reaction->initReactantMatchers();
    if (!reaction->isInitialized())
      return fail(BF_EPARSE, log_messages().empty() ? std::string("reaction SMARTS does not validate (RDKit cannot match its templates)")
                                                    : "reaction SMARTS does not validate: " + log_messages());
    *out = new bf_reaction{std::move(reaction)};
    return BF_OK;
  });
}

void bf_reaction_free(bf_reaction *reaction) { delete reaction; }

int bf_reaction_run(const bf_reaction *reaction, const bf_mol *const *reactants, int count, char **out) {
  return guarded([&] {
    if (int rc = check(reaction, reactants) | check(out)) return rc;
    if (count != static_cast<int>(reaction->reaction->getNumReactantTemplates()))
      return fail(BF_EARG, "the reaction takes " + std::to_string(reaction->reaction->getNumReactantTemplates()) +
                               " reactants, not " + std::to_string(count));
    RDKit::MOL_SPTR_VECT inputs;
    for (int i = 0; i < count; ++i) {
      if (!reactants[i]) return fail(BF_EARG, "null reactant");
      inputs.emplace_back(kekulized(*reactants[i]->mol).release());
    }
    std::vector<std::string> products;
    for (const auto &outcome : reaction->reaction->runReactants(inputs)) {
      if (outcome.empty()) continue;
      RDKit::RWMol product(*outcome.front());
      try {
        RDKit::MolOps::sanitizeMol(product);
      } catch (const RDKit::MolSanitizeException &) {
        continue;  // an edit that breaks valence or aromaticity makes no molecule
      }
      products.push_back(RDKit::MolToSmiles(product));
    }
    *out = copy_string(joined_lines(products));
    return BF_OK;
  });
}

int bf_mol_fragment_on_bonds(const bf_mol *mol, const int *atom_pairs, int pairs, char **out) {
  return guarded([&] {
    if (int rc = check(mol, atom_pairs) | check(out)) return rc;
    if (pairs < 1) return fail(BF_EARG, "no bond to cut");
    auto copy = kekulized(*mol->mol);
    std::vector<unsigned int> bonds;
    for (int i = 0; i < pairs; ++i) {
      const int a = atom_pairs[2 * i], b = atom_pairs[2 * i + 1];
      const int atoms = static_cast<int>(copy->getNumAtoms());
      const RDKit::Bond *bond = a >= 0 && b >= 0 && a < atoms && b < atoms ? copy->getBondBetweenAtoms(a, b) : nullptr;
      if (!bond) return fail(BF_EARG, "atoms " + std::to_string(a) + " and " + std::to_string(b) + " are not bonded");
      // fragmentOnBonds removes the bonds one by one: a bond named twice would be read after it was freed.
      if (std::find(bonds.begin(), bonds.end(), bond->getIdx()) != bonds.end())
        return fail(BF_EARG, "the bond between atoms " + std::to_string(a) + " and " + std::to_string(b) + " is named twice");
      bonds.push_back(bond->getIdx());
    }
    std::vector<std::pair<unsigned int, unsigned int>> labels(bonds.size(), {1, 1});
    std::unique_ptr<RDKit::ROMol> cut(RDKit::MolFragmenter::fragmentOnBonds(*copy, bonds, true, &labels));
    std::vector<std::string> pieces;
    for (const auto &piece : RDKit::MolOps::getMolFrags(*cut, true)) pieces.push_back(RDKit::MolToSmiles(*piece));
    *out = copy_string(joined_lines(pieces));
    return BF_OK;
  });
}

}  // extern "C"
