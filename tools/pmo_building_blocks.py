#!/usr/bin/env python3
"""Prints RDKit's own values for the PMO oracle building blocks that BioForge reproduces in C#
(tests/BioForge.Tests/PmoOracleTests.cs holds them): Bertz CT, the Gobbi 2D pharmacophore fingerprint (number of set
bits and the bits themselves), FCFP4 / atom-pair count Tanimoto. Needs Debian's python3-rdkit (2022.09):
    /usr/bin/python3 tools/pmo_building_blocks.py
"""
from rdkit import Chem, DataStructs
from rdkit.Chem import AllChem, rdMolDescriptors
from rdkit.Chem.GraphDescriptors import BertzCT
from rdkit.Chem.Pharm2D import Gobbi_Pharm2D, Generate

MOLECULES = [
    "CC(C)(C)NCC(O)c1ccc(O)c(CO)c1",
    "CCCOc1cc2ncnc(Nc3ccc4ncsc4c3)c2cc1S(=O)(=O)C(C)(C)C",
    "NC(CC(=O)N1CCn2c(nnc2C(F)(F)F)C1)Cc1cc(F)c(F)cc1F",
    "CC(=O)Oc1ccccc1C(=O)O",
    "C#CCN.[Na+].[Cl-]",
    "CC",
]

for smiles in MOLECULES:
    mol = Chem.MolFromSmiles(smiles)
    bits = sorted(Generate.Gen2DFingerprint(mol, Gobbi_Pharm2D.factory).GetOnBits())
    print(f"{smiles}\tBertzCT={BertzCT(mol)!r}\tGobbi bits={len(bits)}\t{bits}")

a, b = (Chem.MolFromSmiles(s) for s in MOLECULES[:2])
fcfp = [AllChem.GetMorganFingerprint(m, 2, useFeatures=True) for m in (a, b)]
ap = [rdMolDescriptors.GetAtomPairFingerprint(m, maxLength=10) for m in (a, b)]
print("FCFP4 Tanimoto", repr(DataStructs.TanimotoSimilarity(*fcfp)))
print("AP Tanimoto", repr(DataStructs.TanimotoSimilarity(*ap)))
print("Gobbi signature size", Gobbi_Pharm2D.factory.GetSigSize())
