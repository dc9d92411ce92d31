#!/usr/bin/python3
"""Writes src/BioForge/Chem/Data/qed.json: the data tables of RDKit's rdkit.Chem.QED (acceptor and structural-alert
SMARTS, the aliphatic-ring pattern, asymmetric double sigmoid parameters and weights), read from the installed RDKit
(Debian python3-rdkit 2022.09; RDKit is BSD-3-Clause). Only data is taken; BioForge computes QED in C#."""
import json, os, sys
from rdkit import Chem, rdBase
from rdkit.Chem import QED

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src", "BioForge", "Chem", "Data", "qed.json")
data = {
    "source": f"rdkit.Chem.QED, RDKit {rdBase.rdkitVersion} (BSD-3-Clause); Bickerton et al., Nat. Chem. 4, 90 (2012)",
    "aliphatic_rings": Chem.MolToSmarts(QED.AliphaticRings),
    "acceptors": list(QED.AcceptorSmarts),
    "structural_alerts": list(QED.StructuralAlertSmarts),
    "properties": list(QED.QEDproperties._fields),
    "ads": {name: dict(p._asdict()) for name, p in QED.adsParameters.items()},
    "weights_mean": list(QED.WEIGHT_MEAN),
}
with open(out + ".tmp", "w") as f:
    json.dump(data, f, indent=1)
    f.write("\n")
os.replace(out + ".tmp", out)
print(f"wrote {out}: {len(data['acceptors'])} acceptor and {len(data['structural_alerts'])} alert patterns")
