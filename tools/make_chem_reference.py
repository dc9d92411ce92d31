#!/usr/bin/python3
"""Reference values for BioForge's chemistry tests, computed by RDKit's own Python (Debian python3-rdkit 2022.09.3,
with Contrib/SA_Score from rdkit-data). Writes tests/BioForge.Tests/data/chem/reference.tsv.

Molecules: the first rows of the project's shared data sets (ChEMBL 31 subset, BBBP, ZINC250k), plus hand-picked
charged, metal-containing, isotopic, stereo, macrocyclic and invalid inputs."""
import csv, gzip, json, math, os, sys
from rdkit import Chem, RDLogger, rdBase
from rdkit.Chem import Crippen, Descriptors, Lipinski, QED, rdMolDescriptors, AllChem
from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams
from rdkit.Chem.Scaffolds import MurckoScaffold
sys.path.append("/usr/share/RDKit/Contrib/SA_Score")
import sascorer

RDLogger.DisableLog("rdApp.*")
shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
out = os.path.join(os.path.dirname(__file__), "..", "tests", "BioForge.Tests", "data", "chem", "reference.tsv")

special = [
    "[Na+].[Cl-]", "CC(=O)[O-].[Na+]", "N.N.Cl[Pt]Cl", "[Fe+2].c1cc[cH-]c1.c1cc[cH-]c1", "C[N+](C)(C)CCO",
    "O=C([O-])c1ccccc1.[K+]", "[2H]C([2H])([2H])O", "[13CH4]", "C[C@H](N)C(=O)O", "C[C@@H](O)[C@H](N)C(=O)O",
    "F/C=C/F", "F/C=C\\F", "C1CC[C@H]2CCCC[C@@H]2C1", "CC(C)(C)c1ccc(cc1)[Si](C)(C)C", "B(O)(O)c1ccccc1",
    "O=[N+]([O-])c1ccccc1", "C[S+](C)C", "[O-][n+]1ccccc1", "c1ccc2c(c1)[nH]c1ccccc12", "C1=CC=CC=C1",
    "CC12CCC3C(CCC4=CC(=O)CCC34C)C1CCC2O",
    "CC[C@H](C)[C@@H]1NC(=O)[C@@H](CC(C)C)N(C)C(=O)[C@H](C)NC(=O)[C@@H](C)NC(=O)CCCCCCCCCCC1=O",
    "C1CCCCCCCCCCC1", "O=C1CCCCCCCCCCCCCCN1", "C12C3C4C1C5C2C3C45", "C1CC2CCC1C2", "C1CCC2(CC1)CCCC2",
    "CCN(CC)CCNC(=O)c1ccc(N)cc1", "O=C(O)c1ccccc1OC(C)=O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "Oc1ccc(cc1)/N=N/c1ccccc1", "S=C=S", "[Cu+2].[O-]S(=O)(=O)[O-]", "[Li]CCCC", "C[Mg]Br", "[Zn]",
    "c1ccccc1N=Nc1ccccc1", "O=C1C=CC(=O)C=C1", "C=CC(=O)Cl", "ClCCl",
    # invalid inputs: syntax, ring closure, valence, kekulization, unknown element, empty-ish
    "C1CC", "c1cccc1", "C(C)(C)(C)(C)C", "[Xx]", "CC)C", "C==C", "N(=O)(=O)(=O)C", "c1ccnc1C(", "abc", "",
]

def take(path, n, column=None, skip_header=False):
    opener = gzip.open if path.endswith(".gz") else open
    rows = []
    with opener(path, "rt") as f:
        if column is not None:
            for row in csv.DictReader(f):
                rows.append(row[column])
                if len(rows) == n: break
        else:
            for i, line in enumerate(f):
                if skip_header and i == 0: continue
                rows.append(line.split()[0] if line.strip() else "")
                if len(rows) == n: break
    return rows

inputs = (take(os.path.join(shared, "chembl31_subset", "test.txt.gz"), 150)
          + take(os.path.join(shared, "moleculenet", "BBBP.csv"), 60, column="smiles")
          + take(os.path.join(shared, "zinc250k", "250k_rndm_zinc_drugs_clean.smi.gz"), 40)
          + special)

def catalog(which):
    params = FilterCatalogParams()
    params.AddCatalog(which)
    return FilterCatalog(params)
catalogs = [("PAINS_A", catalog(FilterCatalogParams.FilterCatalogs.PAINS_A)),
            ("PAINS_B", catalog(FilterCatalogParams.FilterCatalogs.PAINS_B)),
            ("PAINS_C", catalog(FilterCatalogParams.FilterCatalogs.PAINS_C)),
            ("BRENK", catalog(FilterCatalogParams.FilterCatalogs.BRENK)),
            ("NIH", catalog(FilterCatalogParams.FilterCatalogs.NIH))]

columns = ["input", "valid", "canonical", "canonical_flat", "molwt", "exactmw", "heavy", "logp", "mr", "tpsa", "hbd",
           "hba", "rotb", "rotb_strict", "rings", "aromatic_rings", "fsp3", "charge", "stereo_centres", "qed", "sa",
           "filters", "murcko", "murcko_generic", "brics", "morgan2_2048", "morgan2_counts"]
rows = []
for smi in inputs:
    m = Chem.MolFromSmiles(smi) if smi else None
    if m is None or m.GetNumAtoms() == 0:
        rows.append({"input": smi, "valid": 0})
        continue
    scaffold = MurckoScaffold.GetScaffoldForMol(m)
    fp = AllChem.GetMorganFingerprintAsBitVect(m, 2, nBits=2048)
    counts = AllChem.GetMorganFingerprint(m, 2).GetNonzeroElements()
    rows.append({
        "input": smi, "valid": 1,
        "canonical": Chem.MolToSmiles(m), "canonical_flat": Chem.MolToSmiles(m, isomericSmiles=False),
        "molwt": repr(Descriptors.MolWt(m)), "exactmw": repr(Descriptors.ExactMolWt(m)), "heavy": m.GetNumHeavyAtoms(),
        "logp": repr(Crippen.MolLogP(m)), "mr": repr(Crippen.MolMR(m)), "tpsa": repr(rdMolDescriptors.CalcTPSA(m)),
        "hbd": Lipinski.NumHDonors(m), "hba": Lipinski.NumHAcceptors(m), "rotb": Descriptors.NumRotatableBonds(m),
        "rotb_strict": rdMolDescriptors.CalcNumRotatableBonds(m, rdMolDescriptors.NumRotatableBondsOptions.Strict),
        "rings": rdMolDescriptors.CalcNumRings(m), "aromatic_rings": rdMolDescriptors.CalcNumAromaticRings(m),
        "fsp3": repr(rdMolDescriptors.CalcFractionCSP3(m)), "charge": Chem.GetFormalCharge(m),
        "stereo_centres": rdMolDescriptors.CalcNumAtomStereoCenters(m),
        "qed": repr(QED.qed(m)), "sa": repr(sascorer.calculateScore(m)),
        "filters": "|".join(f"{name}:{e.GetDescription()}" for name, c in catalogs for e in c.GetMatches(m)),
        "murcko": Chem.MolToSmiles(scaffold),
        "murcko_generic": Chem.MolToSmiles(MurckoScaffold.MakeScaffoldGeneric(scaffold)),
        "brics": Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(m)),
        "morgan2_2048": " ".join(str(b) for b in fp.GetOnBits()),
        "morgan2_counts": " ".join(f"{k}:{v}" for k, v in sorted(counts.items())),
    })

os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out + ".tmp", "w", newline="") as f:
    f.write(f"# made by tools/make_chem_reference.py with RDKit {rdBase.rdkitVersion}; {len(rows)} molecules\n")
    w = csv.DictWriter(f, columns, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar="\\")
    w.writeheader()
    for r in rows: w.writerow(r)
os.replace(out + ".tmp", out)
print(f"wrote {out}: {len(rows)} molecules, {sum(1 for r in rows if r['valid'] == 0)} invalid")
