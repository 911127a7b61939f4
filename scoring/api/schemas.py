"""Request and response bodies of the API, with examples that work on the demo world."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from scoring import ids
from scoring.decide.engine import Application, InputLine

MAX_AMOUNT = 10**12
MAX_IDEMPOTENCY_KEY = 200  # characters; the ledger's idempotency_key column
Id = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class InputLinePublic(BaseModel):
    """One line of inputs, paid straight to an approved supplier."""

    model_config = ConfigDict(extra="forbid")

    supplier_id: str = Id
    item: str = Field(min_length=1, max_length=200)
    amount_minor: StrictInt = Field(gt=0, le=MAX_AMOUNT, description="minor currency units")


class ScoreRequest(BaseModel):
    """An application for an input loan against a purchase contract."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "application_id": "APP-2026-0001",
                    "farmer_id": "F0000",
                    "contract_id": "K2287",
                    "requested_minor": 1500000,
                    "inputs": [
                        {
                            "supplier_id": "S002",
                            "item": "hybrid maize seed",
                            "amount_minor": 900000,
                        },
                        {"supplier_id": "S003", "item": "NPK fertiliser", "amount_minor": 600000},
                    ],
                }
            ]
        },
    )

    application_id: str | None = Field(default=None, min_length=1, max_length=100)
    farmer_id: str = Id
    contract_id: str = Id
    requested_minor: StrictInt = Field(
        gt=0, le=MAX_AMOUNT, description="amount asked for, minor currency units"
    )
    inputs: list[InputLinePublic] = Field(min_length=1, max_length=50)

    def to_application(self) -> Application:
        """The application as the engine takes it; an id is made when none was sent."""
        return Application(
            application_id=self.application_id or ids.application_id(),
            farmer_id=self.farmer_id,
            contract_id=self.contract_id,
            requested_minor=self.requested_minor,
            lines=tuple(InputLine(i.supplier_id, i.item, i.amount_minor) for i in self.inputs),
        )


class ReasonPublic(BaseModel):
    """Why: a code, the sentence shown to the farmer and, for model reasons, the feature's
    contribution to the log-odds of default."""

    code: str
    text: str
    contribution: float | None = None


class CounterofferPublic(BaseModel):
    """What would be approved instead of a declined or referred request: the largest amount
    at which the same applicant, with the same contract, is approved by the same model and
    policy; `amount_minor` is null when no amount would be (`detail` says why)."""

    amount_minor: int | None = Field(description="largest approvable amount, minor units")
    probability_of_default: float | None = Field(description="PD at that amount, 0..1")
    band: str | None = Field(description="risk band at that amount")
    annual_rate: float | None = Field(description="annual interest rate at that amount")
    detail: str = Field(description="the counteroffer in a sentence")


class DisbursementPublic(BaseModel):
    """A payment to make: to the supplier, never to the farmer."""

    payee_supplier_id: str
    item: str
    amount_minor: int


class ModelPublic(BaseModel):
    """The model version that decided."""

    name: str
    version: str


class ScoreResponse(BaseModel):
    """The decision on an application."""

    decision_id: str
    application_id: str
    decision: Literal["approve", "refer", "decline"]
    probability_of_default: float
    score: int
    band: str
    limit_minor: int
    annual_rate: float | None
    due_at: str | None
    disbursements: list[DisbursementPublic]
    reasons: list[ReasonPublic]
    counteroffer: CounterofferPublic | None = Field(
        description="for a declined or referred application; null for an approval"
    )
    model: ModelPublic
    policy_version: str
    features_as_of: str
    data_quality_flags: list[str]


class ChampionPublic(BaseModel):
    """The model being served."""

    name: str
    version: str
    run_id: str
    sha256: str
    features: list[str]


class Health(BaseModel):
    """The process is alive."""

    status: Literal["alive"]
    worker: int  # the answering process's id


class Readiness(BaseModel):
    """Whether the worker can take traffic (503 when any is false)."""

    model_loaded: bool
    ledger_reachable: bool
    ledger_writable: bool = Field(description="the last commit succeeded, or a probe since")
    detail: str | None = Field(default=None, description="why the ledger cannot commit")


class Problem(BaseModel):
    """An error (RFC 9457 problem details)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None
    request_id: str | None = None


class MemberIn(BaseModel):
    """A member to pre-approve."""

    model_config = ConfigDict(extra="forbid")

    farmer_id: str = Id
    budget_minor: StrictInt | None = Field(
        default=None, gt=0, le=MAX_AMOUNT, description="input budget; default the policy's cap"
    )
    share: float | None = Field(
        default=None, ge=0, le=1, description="share of the contract written in it, if any"
    )


class PreapprovalRequest(BaseModel):
    """Pre-approve a co-op's members under one of its purchase contracts."""

    model_config = ConfigDict(
        extra="forbid",
        # the demo world's largest co-op with a financed buyer: C015, contract K2284
        json_schema_extra={"examples": [{"contract_id": "K2284"}]},
    )

    contract_id: str = Id
    members: list[MemberIn] | None = Field(
        default=None,
        max_length=200_000,
        description="members to pre-approve; default every member of the co-op",
    )


class Progress(BaseModel):
    """Members decided so far."""

    done: int
    total: int


class MemberPreapproval(BaseModel):
    """One member's pre-approval, or why they were not evaluated."""

    farmer_id: str
    status: Literal["evaluated", "not_a_member"]
    detail: str | None = None
    decision_id: str | None = None
    decision: Literal["approve", "refer", "decline"] | None = None
    probability_of_default: float | None = None
    score: int | None = None
    band: str | None = None
    individual_limit_minor: int | None = None
    allocation_minor: int | None = None
    preapproved_limit_minor: int | None = None
    capped_by_coop: bool | None = None
    annual_rate: float | None = None
    due_at: str | None = None
    share: float | None = None
    verified_area_ha: float | None = None
    reasons: list[ReasonPublic] | None = None
    counteroffer: CounterofferPublic | None = None
    data_quality_flags: list[str] | None = None
    model_version: str | None = None


class PreapprovalJob(BaseModel):
    """A pre-approval: its status, progress and, once done, the co-op level summary and
    every member's result."""

    job_id: str
    status: Literal["queued", "running", "done", "failed"]
    coop_id: str
    contract_id: str
    progress: Progress
    summary: dict[str, Any] | None = None
    members: list[MemberPreapproval] | None = None
    error: str | None = None


class MemberDecisionRecord(BaseModel):
    """A co-op member's pre-approval as the ledger recorded it."""

    decision_id: str
    kind: Literal["preapproval"]
    job_id: str
    coop_id: str
    contract_id: str
    member: MemberPreapproval
    model: ModelPublic
    policy_version: str


class CoopBatchRecord(BaseModel):
    """The co-op level summary of a finished pre-approval as the ledger recorded it."""

    decision_id: str
    kind: Literal["coop_batch"]
    job_id: str
    coop_id: str
    contract_id: str
    summary: dict[str, Any]


class NoticePublic(BaseModel):
    """An adverse-action notice: what the lender tells a declined or referred applicant."""

    decision_id: str
    application_id: str
    decision: Literal["refer", "decline"]
    principal_reasons: list[str] = Field(description="the reasons' sentences, most weighty first")
    counteroffer: CounterofferPublic | None
    data_used: list[str] = Field(description="the kinds of data the decision read")
    data_missing: list[str] = Field(description="kinds of data the applicant had none of")
    features_as_of: str
    text: str = Field(description="the whole notice as plain text")
