"""The terminal table of `genlab disentangle`: each metric's median [min, max] over the seeds."""

from __future__ import annotations

from typing import Any

from rich.table import Table

LABELS = {
    "betavae_score": "BetaVAE score", "factorvae_score": "FactorVAE score", "mig": "MIG", "sap": "SAP",
    "dci.disentanglement": "DCI disentanglement", "dci.completeness": "DCI completeness",
    "dci.informativeness": "DCI informativeness", "modularity": "modularity", "explicitness": "explicitness",
}


def format_result(result: dict[str, Any]) -> Table:
    p = result["protocol"]
    table = Table(title=f"protocol {p['name']}, seeds {p['seeds']}, {result.get('seconds', '?')} s")
    for col in ("metric", "median", "[min, max]"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key, label in LABELS.items():
        s = result["spread"][key]
        table.add_row(label, f"{s['median']:.3f}", f"[{s['min']:.3f}, {s['max']:.3f}]")
    return table
