"""What `pipeline tune` prints: the trials, the best one and the seed check's verdict."""

from typing import Any

from pipeline.analysis.markdown import cell, table


def tune_text(found: dict[str, Any]) -> str:
    """summary.json as Markdown: a row per trial, the best trial, and the seed check (when it ran)."""
    keys = list(dict.fromkeys(key for trial in found["trials"] for key in trial["params"]))
    rows = [
        [str(t["number"]), t["state"].lower() + (f" at epoch {t['pruned_at']}" if t["pruned_at"] else ""),
         *(cell(t["params"].get(key, "—")) for key in keys), "" if t["objective"] is None else f"{t['objective']:.4f}"]
        for t in found["trials"]
    ]
    best = found["best"]
    lines = [*table(["trial", "state", *(f"`{key}`" for key in keys), "objective (val)"], rows), ""]
    lines.append(f"best: trial {best['number']}, objective {best['objective']:.4f}, {best['params']}")
    check = found.get("seed_check")
    if check:
        lines.append(_seed_line(check))
    return "\n".join(lines) + "\n"


def _seed_line(check: dict[str, Any]) -> str:
    """The seed check in one line: mean test accuracies over the seeds, Welch's p and the verdict."""
    best, base = check["best"]["test_acc"], check["baseline"]["test_acc"]
    p = "n/a" if check["p_test"] is None else f"{check['p_test']:.3f}"
    verdict = "real" if check["real"] else "within seed noise"
    return (
        f"seed check ({len(check['seeds'])} seeds): test accuracy {sum(best) / len(best):.4f} (best trial) vs "
        f"{sum(base) / len(base):.4f} (baseline), Welch p = {p}: {verdict} (alpha {check['alpha']})"
    )
