#!/usr/bin/python3
"""RDKit Python peer for BioForge's chemistry benchmarks (Debian python3-rdkit; one thread, as RDKit Python runs).

  bench/rdkit_peer.py props FILE.smi        same work as `bioforge chem props`: parse, canonical SMILES, MolWt, logP,
                                            TPSA, HBD, HBA, rotatable bonds, QED, SA score, PAINS matches
  bench/rdkit_peer.py similarity FILE.smi COPIES QUERIES
                                            BulkTanimotoSimilarity of QUERIES molecules against COPIES × the library (no top-k selection)
                                            (Morgan radius 2, 2048 bits), as `bioforge bench similarity`
"""
import json, sys, time
sys.path.append("/usr/share/RDKit/Contrib/SA_Score")
from rdkit import Chem, DataStructs, RDLogger
from rdkit.Chem import AllChem, Crippen, Descriptors, Lipinski, QED, rdMolDescriptors
from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams
import sascorer

RDLogger.DisableLog("rdApp.*")

def smiles(path):
    return [line.split()[0] for line in open(path) if line.strip()]

def props(path):
    params = FilterCatalogParams(); params.AddCatalog(FilterCatalogParams.FilterCatalogs.PAINS)
    pains = FilterCatalog(params)
    sascorer.readFragmentScores()
    items = smiles(path)
    start = time.perf_counter()
    for s in items:
        m = Chem.MolFromSmiles(s)
        if m is None: continue
        Chem.MolToSmiles(m); Descriptors.MolWt(m); Crippen.MolLogP(m); rdMolDescriptors.CalcTPSA(m)
        Lipinski.NumHDonors(m); Lipinski.NumHAcceptors(m); Descriptors.NumRotatableBonds(m)
        QED.qed(m); sascorer.calculateScore(m); [e.GetDescription() for e in pains.GetMatches(m)]
    seconds = time.perf_counter() - start
    print(json.dumps({"benchmark": "props", "peer": "rdkit-python", "molecules": len(items), "threads": 1,
                      "molecules_per_s": round(len(items) / seconds, 1)}))

def similarity(path, copies, queries):
    fps = [AllChem.GetMorganFingerprintAsBitVect(m, 2, nBits=2048) for m in (Chem.MolFromSmiles(s) for s in smiles(path)) if m is not None]
    library = fps * copies
    probes = library[:queries]
    start = time.perf_counter()
    for p in probes:
        DataStructs.BulkTanimotoSimilarity(p, library)  # comparisons only: no top-k selection is timed here
    seconds = time.perf_counter() - start
    print(json.dumps({"benchmark": "similarity", "peer": "rdkit-python", "fingerprints": len(library), "threads": 1,
                      "queries": queries, "comparisons_per_s": round(queries * len(library) / seconds)}))

if __name__ == "__main__":
    if sys.argv[1] == "props": props(sys.argv[2])
    else: similarity(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
