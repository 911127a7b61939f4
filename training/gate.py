"""The promotion gate: named checks a candidate must pass before it becomes champion."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GateBounds:
    """Limits a candidate must respect. Protected-attribute gaps are gated; county gaps
    are reported in the model card (counties differ in real risk)."""

    auc_tolerance: float = 0.01
    max_ece: float = 0.03
    max_score_psi: float = 0.25
    max_gender_approval_gap: float = 0.10
    max_gender_auc_gap: float = 0.10


@dataclass(frozen=True)
class GateCheck:
    """One named check and what it found."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class ChampionComparison:
    """Challenger and champion scored on the same test rows (the challenger's test season),
    or why they could not be (`problem`)."""

    champion_version: str
    candidate_auc: float | None
    champion_auc: float | None
    rows: int
    problem: str | None = None


@dataclass
class GateReport:
    """Every check of one candidate."""

    version: str
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)


def _at_most(name: str, value: float | None, bound: float) -> GateCheck:
    if value is None:
        return GateCheck(name, False, "not measured for this version")
    return GateCheck(name, value <= bound, f"{value:.4f} (bound {bound})")


def _quality(c: ChampionComparison | None, tolerance: float, logged: float | None) -> GateCheck:
    name = "test AUC vs champion"
    if c is None:  # the first champion: its own test AUC must at least have been measured
        return GateCheck(name, logged is not None, "no champion yet")
    if c.problem is not None or c.candidate_auc is None or c.champion_auc is None:
        return GateCheck(name, False, c.problem or "not measured")
    return GateCheck(
        name,
        c.candidate_auc >= c.champion_auc - tolerance,
        f"{c.candidate_auc:.4f} vs champion version {c.champion_version} {c.champion_auc:.4f} "
        f"on the same {c.rows} test loans (may be at most {tolerance} lower)",
    )


def evaluate_gate(
    version: str,
    candidate: dict[str, float],
    comparison: ChampionComparison | None,
    bounds: GateBounds | None = None,
) -> GateReport:
    """Check a candidate's logged metrics against the bounds, and its AUC against the
    current champion's on the same rows (`comparison`; None when there is no champion)."""
    b = bounds or GateBounds()
    quality = _quality(comparison, b.auc_tolerance, candidate.get("test_auc"))
    checks = [
        GateCheck(
            "split and leakage checks",
            candidate.get("checks_passed", 0.0) == 1.0,
            "out-of-time order, matured outcomes, no feature separating the outcome alone",
        ),
        quality,
        _at_most("expected calibration error", candidate.get("test_ece"), b.max_ece),
        _at_most(
            "score stability (PSI train vs test)",
            candidate.get("score_psi_train_test"),
            b.max_score_psi,
        ),
        _at_most(
            "approval-rate gap by gender",
            candidate.get("gender_approval_gap"),
            b.max_gender_approval_gap,
        ),
        _at_most("AUC gap by gender", candidate.get("gender_auc_gap"), b.max_gender_auc_gap),
    ]
    return GateReport(version, checks)
