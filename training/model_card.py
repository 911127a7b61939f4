"""The model card: what a reviewer reads before a model lends money (Markdown)."""

from __future__ import annotations

from typing import Any

from training.pipeline import TrainedModel


def _table(rows: list[tuple[Any, ...]], header: tuple[Any, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_model_card(model: TrainedModel, *, run_id: str = "", version: str = "") -> str:
    """Markdown: data and split, test metrics against baseline and oracle, checks,
    fairness audit by county and gender, strongest features."""
    m = model.metrics
    seasons = model.split.seasons
    metric_rows = [
        (
            name,
            f"{m.get(f'test_{name}', float('nan')):.4f}",
            f"{m.get(f'baseline_{name}', float('nan')):.4f}",
        )
        for name in ("auc", "gini", "ks", "brier", "ece")
    ]
    oracle = (
        f"Oracle AUC (true probability of default, simulated data) {m['oracle_auc']:.4f}; "
        f"model / oracle {m['auc_over_oracle']:.3f}."
        if "oracle_auc" in m
        else "No oracle (real data)."
    )
    fairness = model.fairness
    fair_rows = [
        (
            r.attribute,
            r.group,
            r.loans,
            f"{r.approval_rate:.1%}",
            f"{r.default_rate:.1%}",
            f"{r.auc:.3f}",
        )
        for r in fairness.itertuples()
    ]
    top = sorted(
        zip(model.mean_abs_contribution, model.features, strict=True),
        key=lambda t: t[0],
        reverse=True,
    )[:10]
    return (
        "\n\n".join(
            [
                f"# Model card: agricredit-pd {('version ' + version) if version else ''}".strip(),
                f"Run `{run_id}`. Sources: {', '.join(model.sources)}. "
                f"{len(model.features)} features with monotone constraints from the registry. "
                f"Data fingerprint `{model.data_fingerprint[:16]}`.",
                "## Data and split\n\n"
                + _table(
                    [
                        (
                            part,
                            ", ".join(map(str, seasons[part])),
                            len(getattr(model.split, part)),
                            f"{getattr(model.split, part)['defaulted'].mean():.1%}",
                        )
                        for part in ("train", "valid", "test")
                    ],
                    ("part", "seasons", "loans", "default rate"),
                ),
                "## Test season\n\n"
                + _table(metric_rows, ("metric", "LightGBM (calibrated)", "logistic baseline"))
                + f"\n\n{oracle} Score PSI train vs test {m['score_psi_train_test']:.3f}.",
                "## Checks\n\n"
                + _table(
                    [(c.name, "pass" if c.passed else "FAIL", c.detail) for c in model.checks],
                    ("check", "result", "detail"),
                ),
                "## Fairness audit (test season)\n\nApproval = probability of default below "
                "10 %. Protected attributes are read for this audit only; they are never model "
                "inputs.\n\n"
                + (
                    _table(
                        fair_rows,
                        ("attribute", "group", "loans", "approval", "default rate", "AUC"),
                    )
                    if fair_rows
                    else "No audit attributes given."
                ),
                "## Strongest features (mean |contribution| to log-odds)\n\n"
                + _table(
                    [(f.name, f.source, f"{v:.3f}") for v, f in top],
                    ("feature", "source", "contribution"),
                ),
            ]
        )
        + "\n"
    )
