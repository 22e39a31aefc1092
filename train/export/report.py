"""The parity table of a bundle (for the README), from the figures its manifest records.

    python -m train.export.report BUNDLE

Rows: each model file against its reference (float models against torch, int8 against
float of the same format), on the held-out (validation + test) clips: score correlation,
largest relative score difference, mean test AUC over IDs, largest per-ID AUC and pAUC
drop, file size.
"""
from __future__ import annotations

import argparse
from typing import Any

from edge.bundle import load_bundle


def _mean(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return sum(v) / len(v) if v else None


def _f(v: float | None, fmt: str = ".4f") -> str:
    return "n/a" if v is None else format(v, fmt)


def parity_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    models = manifest["models"]
    rows = []
    for name in sorted(models, key=lambda n: (models[n]["backend"], models[n]["precision"] != "float")):
        m = models[name]
        test = m["metrics"]["test"]["per_id"]
        row = {"model": name, "reference": m["reference"], "bytes": m["bytes"],
               "correlation": m["score_correlation_held_out"],
               "max_rel_diff": m["score_max_rel_diff_held_out"],
               "test_auc": _mean([r["auc"] for r in test.values()]),
               "test_pauc": _mean([r["pauc"] for r in test.values()]),
               "max_auc_drop": None, "max_pauc_drop": None, "size_ratio": None}
        if m["precision"] == "int8":
            drops = [d for split in manifest["gate"]["drops"].get(m["backend"], {}).values()
                     for d in split.values()]
            row["max_auc_drop"] = max((d["auc_drop"] for d in drops), default=None)
            row["max_pauc_drop"] = max((d["pauc_drop"] for d in drops), default=None)
            ref = manifest["files"].get(m["reference"])
            if ref:
                row["size_ratio"] = m["bytes"] / ref["bytes"]
        rows.append(row)
    return rows


def markdown(manifest: dict[str, Any]) -> str:
    head = ["model", "against", "held-out score corr.", "max rel. score diff",
            "test AUC (mean of IDs)", "test pAUC (mean)", "max AUC drop", "max pAUC drop",
            "bytes", "int8/float size"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in parity_rows(manifest):
        lines.append("| " + " | ".join([
            r["model"], r["reference"], _f(r["correlation"], ".6f"), _f(r["max_rel_diff"], ".2e"),
            _f(r["test_auc"]), _f(r["test_pauc"]), _f(r["max_auc_drop"]), _f(r["max_pauc_drop"]),
            str(r["bytes"]), _f(r["size_ratio"], ".3f")]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.export.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="bundle folder written by edge-ad export")
    args = p.parse_args(argv)
    print(markdown(load_bundle(args.bundle).manifest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
