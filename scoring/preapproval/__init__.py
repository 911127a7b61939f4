"""Co-op pre-approval: the plan (members and the contract's share), the members' decisions,
the job runner, and its chunks on a Dask cluster."""

from scoring.preapproval.members import evaluate_members, results_csv
from scoring.preapproval.plan import MemberRequest, Plan, plan_preapproval, resolve_members
from scoring.preapproval.runner import JobRunner, run_job

__all__ = [
    "JobRunner",
    "MemberRequest",
    "Plan",
    "evaluate_members",
    "plan_preapproval",
    "resolve_members",
    "results_csv",
    "run_job",
]
