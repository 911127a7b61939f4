"""Request and response bodies of the API, with examples that work on the demo world."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from scoring import ids
from scoring.decide.engine import Application, InputLine

MAX_AMOUNT = 10**12
MAX_IDEMPOTENCY_KEY = 200  # characters; the ledger's idempotency_key column


def Id(description: str) -> Any:
    """An id field: letters, digits and _.:- only."""
    return Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", description=description
    )


class InputLinePublic(BaseModel):
    """One line of inputs, paid straight to an approved supplier."""

    model_config = ConfigDict(extra="forbid")

    supplier_id: str = Id("the approved input supplier paid for this line")
    item: str = Field(
        min_length=1, max_length=200, description="what is bought, as the supplier names it"
    )
    amount_minor: StrictInt = Field(
        gt=0, le=MAX_AMOUNT, description="price of the line, in minor currency units (cents)"
    )


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

    application_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="your id for the application; one is made when left out",
    )
    farmer_id: str = Id("the farmer applying")
    contract_id: str = Id("the buyer's purchase contract the loan is repaid from")
    requested_minor: StrictInt = Field(
        description="amount asked for, in minor currency units; equals the sum of `inputs`",
        gt=0,
        le=MAX_AMOUNT,
    )
    inputs: list[InputLinePublic] = Field(
        min_length=1,
        max_length=50,
        description="the inputs to buy, each paid straight to its supplier",
    )

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

    code: str = Field(
        description="stable reason code (a model feature family, a knock-out or missing data)"
    )
    text: str = Field(description="the sentence shown to the farmer")
    contribution: float | None = Field(
        default=None,
        description="a model reason's contribution to the log-odds of default (else null)",
    )


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

    payee_supplier_id: str = Field(description="the approved supplier to pay; never the farmer")
    item: str = Field(description="what the payment buys")
    amount_minor: int = Field(description="amount to pay, in minor currency units")


class ModelPublic(BaseModel):
    """The model version that decided."""

    name: str = Field(description="registered model name")
    version: str = Field(description="registered model version")


class ScoreResponse(BaseModel):
    """The decision on an application."""

    decision_id: str = Field(
        description="the id of this decision in the ledger (`GET /v1/decisions/{id}`)"
    )
    application_id: str = Field(description="the application decided")
    decision: Literal["approve", "refer", "decline"] = Field(
        description="approve, refer (to a loan officer) or decline"
    )
    probability_of_default: float = Field(
        description="calibrated probability of default on this loan, 0..1"
    )
    score: int = Field(description="credit score, 300..850 (higher is safer)")
    band: str = Field(description="risk band A (safest) .. E, from the policy")
    limit_minor: int = Field(
        description="the approved amount, in minor currency units; 0 unless approved"
    )
    annual_rate: float | None = Field(
        description="annual interest rate as a fraction (0.18 = 18 %); null unless approved"
    )
    due_at: str | None = Field(
        description="due date (ISO 8601): delivery window end plus grace; null unless approved"
    )
    disbursements: list[DisbursementPublic] = Field(
        description="payments to approved suppliers making up the limit; empty unless approved"
    )
    reasons: list[ReasonPublic] = Field(
        description="up to four principal reasons, weightiest first; only facts true of them"
    )
    counteroffer: CounterofferPublic | None = Field(
        description="for a declined or referred application; null for an approval"
    )
    model: ModelPublic = Field(description="the model version that decided")
    policy_version: str = Field(description="the policy version that decided")
    features_as_of: str = Field(
        description="the instant the features were computed as of (ISO 8601, UTC)"
    )
    data_seen: dict[str, str] = Field(
        default_factory=dict,
        description="the data it saw: each input table's latest arrival (recorded_at, "
        "ISO 8601, UTC) in the data the decision read; tables without recorded times are "
        "left out",
    )
    data_quality_flags: list[str] = Field(
        description="missing or doubtful data the decision noticed (e.g. NO_ORDERS)"
    )


class ChampionPublic(BaseModel):
    """The model being served."""

    name: str = Field(description="registered model name")
    version: str = Field(description="the version served")
    run_id: str = Field(description="the MLflow run that trained it")
    sha256: str = Field(description="the bundle digest: SHA-256 over every file's hash")
    features: list[str] = Field(description="the features the model reads, in order")


class Health(BaseModel):
    """The process is alive."""

    status: Literal["alive"] = Field(description="always alive when the process answers")
    worker: int = Field(description="the answering worker process's id")


class TableFreshness(BaseModel):
    """When an input table last received a row."""

    last_recorded_at: str = Field(description="its latest row's recorded_at (ISO 8601, UTC)")
    age_seconds: float = Field(description="seconds from then to now")


class Readiness(BaseModel):
    """Whether the worker can take traffic (503 when any is false)."""

    model_loaded: bool = Field(description="a gated champion is loaded")
    ledger_reachable: bool = Field(description="the ledger database answers")
    ledger_writable: bool = Field(description="the last commit succeeded, or a probe since")
    data_as_of: str | None = Field(
        default=None, description="the as-of time of the data decisions read (ISO 8601, UTC)"
    )
    data_age_seconds: float | None = Field(
        default=None, description="seconds from the data's as-of time to now"
    )
    data_fresh: bool = Field(
        default=True, description="the data are no older than max_data_age_seconds, if set"
    )
    decisions_as_of: str | None = Field(
        default=None,
        description="the instant decisions are made as of now (ISO 8601, UTC): the data's "
        "as-of time, or under the wall clock the instant the features were last built",
    )
    tables: dict[str, TableFreshness] = Field(
        default_factory=dict,
        description="each input table's latest arrival and its age: how fresh each source is",
    )
    detail: str | None = Field(default=None, description="why the worker is not ready")


class InputProblem(BaseModel):
    """One thing wrong with a data batch."""

    row: int | None = Field(description="1-based row of the batch, if one row is at fault")
    column: str | None = Field(description="the column at fault, if one is")
    message: str = Field(description="what is wrong and what to send instead")


class Problem(BaseModel):
    """An error (RFC 9457 problem details)."""

    type: str = Field(
        default="about:blank",
        description="problem type URI; about:blank (the code says which problem)",
    )
    title: str = Field(description="short summary of the problem")
    status: int = Field(description="the HTTP status")
    detail: str = Field(description="what went wrong and how to fix it")
    code: str = Field(description="stable machine-readable problem code")
    field: str | None = Field(
        default=None,
        description="the request's field at fault, spelt as sent (inputs[0].supplier_id)",
    )
    request_id: str | None = Field(
        default=None,
        description="the request id (also the x-request-id header) to quote to support",
    )
    problems: list[InputProblem] | None = Field(
        default=None, description="a refused data batch's every problem (else absent)"
    )


class MemberIn(BaseModel):
    """A member to pre-approve."""

    model_config = ConfigDict(extra="forbid")

    farmer_id: str = Id("a member of the co-op")
    budget_minor: StrictInt | None = Field(
        default=None,
        gt=0,
        le=MAX_AMOUNT,
        description="input budget, minor currency units; default the policy's cap",
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

    contract_id: str = Id("one of the co-op's purchase contracts")
    members: list[MemberIn] | None = Field(
        default=None,
        max_length=200_000,
        description="members to pre-approve; default every member of the co-op",
    )


class Progress(BaseModel):
    """Members decided so far."""

    done: int = Field(description="members decided so far")
    total: int = Field(description="members to decide")


class MemberPreapproval(BaseModel):
    """One member's pre-approval, or why they were not evaluated."""

    farmer_id: str = Field(description="the member")
    status: Literal["evaluated", "not_a_member"] = Field(
        description="evaluated, or not_a_member of this co-op"
    )
    detail: str | None = Field(default=None, description="why a member was not evaluated")
    decision_id: str | None = Field(default=None, description="the member's decision in the ledger")
    decision: Literal["approve", "refer", "decline"] | None = Field(
        default=None, description="approve, refer or decline, as `/v1/score` would decide"
    )
    probability_of_default: float | None = Field(
        default=None, description="calibrated probability of default, 0..1"
    )
    score: int | None = Field(default=None, description="credit score, 300..850")
    band: str | None = Field(default=None, description="risk band A .. E")
    individual_limit_minor: int | None = Field(
        default=None, description="the member's own limit, in minor currency units"
    )
    allocation_minor: int | None = Field(
        default=None, description="the member's share of the co-op's cap, in minor currency units"
    )
    preapproved_limit_minor: int | None = Field(
        default=None,
        description="the pre-approved amount (the smaller of the two), minor currency units",
    )
    capped_by_coop: bool | None = Field(
        default=None, description="the co-op's cap, not the member's own limit, set the amount"
    )
    annual_rate: float | None = Field(
        default=None, description="annual interest rate as a fraction"
    )
    due_at: str | None = Field(default=None, description="repayment due date (ISO 8601)")
    share: float | None = Field(
        default=None, description="share of the contract the member delivers, 0..1"
    )
    verified_area_ha: float | None = Field(
        default=None, description="cultivated area verified from imagery, hectares"
    )
    reasons: list[ReasonPublic] | None = Field(
        default=None, description="principal reasons, most weighty first"
    )
    counteroffer: CounterofferPublic | None = Field(
        default=None, description="for a declined or referred member: the largest approvable amount"
    )
    data_quality_flags: list[str] | None = Field(
        default=None, description="missing or doubtful data noticed"
    )
    model_version: str | None = Field(default=None, description="the model version that decided")


class PreapprovalJob(BaseModel):
    """A pre-approval: its status, progress and, once done, the co-op level summary and
    every member's result."""

    job_id: str = Field(description="the pre-approval (`GET /v1/preapprovals/{job_id}`)")
    status: Literal["queued", "running", "done", "failed"] = Field(
        description="queued, running, done or failed"
    )
    coop_id: str = Field(description="the co-op")
    contract_id: str = Field(description="the purchase contract")
    progress: Progress = Field(description="members decided so far")
    summary: dict[str, Any] | None = Field(
        default=None,
        description="once done: approvals, totals (minor currency units) and the cap",
    )
    members: list[MemberPreapproval] | None = Field(
        default=None, description="once done: every member's result"
    )
    error: str | None = Field(default=None, description="why a failed job failed")


class MemberDecisionRecord(BaseModel):
    """A co-op member's pre-approval as the ledger recorded it."""

    decision_id: str = Field(description="the decision")
    kind: Literal["preapproval"] = Field(description="preapproval: a co-op member's decision")
    job_id: str = Field(description="the pre-approval it belongs to")
    coop_id: str = Field(description="the co-op")
    contract_id: str = Field(description="the purchase contract")
    member: MemberPreapproval = Field(description="the member's result as recorded")
    model: ModelPublic = Field(description="the model version that decided")
    policy_version: str = Field(description="the policy version that decided")


class CoopBatchRecord(BaseModel):
    """The co-op level summary of a finished pre-approval as the ledger recorded it."""

    decision_id: str = Field(description="the summary row")
    kind: Literal["coop_batch"] = Field(
        description="coop_batch: a pre-approval's co-op level summary"
    )
    job_id: str = Field(description="the pre-approval")
    coop_id: str = Field(description="the co-op")
    contract_id: str = Field(description="the purchase contract")
    summary: dict[str, Any] = Field(
        description="approvals, totals in minor currency units and the cap"
    )


class NoticePublic(BaseModel):
    """An adverse-action notice: what the lender tells a declined or referred applicant."""

    decision_id: str = Field(description="the decision noticed")
    application_id: str = Field(description="the application (or job:farmer for a co-op member)")
    decision: Literal["refer", "decline"] = Field(description="refer or decline")
    principal_reasons: list[str] = Field(description="the reasons' sentences, most weighty first")
    counteroffer: CounterofferPublic | None = Field(
        description="the largest amount that would be approved, or null"
    )
    data_used: list[str] = Field(description="the kinds of data the decision read")
    data_missing: list[str] = Field(description="kinds of data the applicant had none of")
    features_as_of: str = Field(description="the instant the data was read as of (ISO 8601)")
    text: str = Field(description="the whole notice as plain text")


class DataBatch(BaseModel):
    """A batch of rows for one input table: committed whole to the arrival log, or not at
    all. Rows are objects of the table's columns (`agricredit data schema`), values as
    JSON numbers, strings (times as ISO 8601) or null; a field's row carries its polygon
    under `geometry`, a GeoJSON geometry object in WGS 84 (RFC 7946)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "batch_id": "orders-2026-12-02T10:00",
                    "rows": [
                        {
                            "order_id": "O-900001",
                            "farmer_id": "F0000",
                            "customer_id": "U0042",
                            "placed_at": "2026-12-02T09:58:00Z",
                            "category": "maize",
                            "quantity_kg": 120.0,
                            "amount_minor": 540000,
                            "status": "completed",
                            "rating": 5,
                        }
                    ],
                }
            ]
        },
    )

    batch_id: str = Field(
        min_length=1,
        max_length=200,
        description="your id for the batch: a batch id commits once; the same batch again "
        "is answered with its first commit",
    )
    rows: list[dict[str, Any]] = Field(
        min_length=1, max_length=1_000_000, description="the rows, one object each"
    )


class DataFile(BaseModel):
    """A file uploaded for a later batch to name."""

    name: str = Field(description="the file's name: a scenes row's `path` names it")
    bytes: int = Field(description="its size")
    sha256: str = Field(description="its SHA-256, hex")


class DataCommit(BaseModel):
    """A committed batch."""

    table: str = Field(description="the input table")
    batch_id: str = Field(description="the batch")
    version: int = Field(description="the table's version that holds the batch")
    rows: int = Field(description="rows committed")
    recorded_at: str = Field(description="when the rows were recorded (ISO 8601, UTC)")
    written: bool = Field(description="false when the batch had been committed before")
