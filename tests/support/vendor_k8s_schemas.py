"""Vendor the Kubernetes JSON schemas deploy/k8s/ needs into tests/k8s_schemas/ (run by hand, then commit).

    pip install kubernetes-validate==1.37.0      # its schemas, generated from Kubernetes' OpenAPI
    python tests/support/vendor_k8s_schemas.py

Writes one self-contained schema per kind (the strict variant: unknown fields
are errors), holding only the definitions that kind reaches, with ``$ref``s
rewritten to ``#/$defs/...``. tests/test_k8s.py validates the manifests against
them offline.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

VERSION = "v1.33.0"
# (file in the schema set, apiVersion, kind) for every kind deploy/k8s/ uses.
KINDS = {
    ("apps/v1", "Deployment"): "deployment-apps-v1.json",
    ("v1", "Service"): "service-v1.json",
    ("v1", "ConfigMap"): "configmap-v1.json",
    ("v1", "Secret"): "secret-v1.json",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudget-policy-v1.json",
}
OUT = Path(__file__).resolve().parents[1] / "k8s_schemas" / VERSION
REF = re.compile(r'"\$ref": "[^"#]*#/\$defs/([^"]+)"')


def main() -> None:
    import kubernetes_validate

    src = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"{VERSION}-local-strict"
    defs = json.loads((src / "_definitions.json").read_text())["$defs"]
    OUT.mkdir(parents=True, exist_ok=True)
    for (api_version, kind), name in KINDS.items():
        text = (src / name).read_text()
        needed, todo = {}, REF.findall(text)
        while todo:
            d = todo.pop()
            if d not in needed:
                needed[d] = defs[d]
                todo.extend(REF.findall(json.dumps(defs[d], indent=2)))
        schema = json.loads(REF.sub(r'"$ref": "#/$defs/\1"', text))
        schema["$defs"] = json.loads(REF.sub(r'"$ref": "#/$defs/\1"', json.dumps(needed, indent=2)))
        schema["x-linesync-source"] = f"kubernetes-validate {VERSION}-local-strict/{name}"
        (OUT / f"{kind.lower()}-{api_version.replace('/', '-')}.json").write_text(
            json.dumps(schema, separators=(",", ":"), sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
