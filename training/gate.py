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


def evaluate_gate(
    version: str,
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    bounds: GateBounds | None = None,
) -> GateReport:
    """Check a candidate's logged metrics against the bounds and the current champion."""
    b = bounds or GateBounds()
    auc = candidate.get("test_auc")
    if champion is None:
        quality = GateCheck("test AUC vs champion", auc is not None, "no champion yet")
    else:
        floor = champion["test_auc"] - b.auc_tolerance
        quality = GateCheck(
            "test AUC vs champion",
            auc is not None and auc >= floor,
            f"{auc:.4f} vs champion {champion['test_auc']:.4f} (may be at most "
            f"{b.auc_tolerance} lower)",
        )
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
