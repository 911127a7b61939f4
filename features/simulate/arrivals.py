"""When each simulated fact reached the product: its `recorded_at`, after its event time.

Real feeds are late, and not all equally: a platform posts most orders within minutes but
backfills a few weeks later; a satellite scene is delivered one to three days after it was
acquired; a buyer's or farmer's repayment is posted days after the money moved; a market
price is published the day after the market; a contract's closing is posted days after the
last weighing and the buyer's payment days after it was made, each as a new version.
Training as of a loan's application time must not see what had not arrived by then
(docs/ingestion.md), so the world says when it did.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MINUTE, DAY = pd.Timedelta(minutes=1), pd.Timedelta(days=1)
ORDER_BACKFILL_SHARE = 0.03  # orders a platform sends weeks late, in a backfill
ORDER_BACKFILL_DAYS = (5.0, 60.0)
ORDER_POSTING_MINUTES = (0.0, 10.0)
# table: (its event time, the range of days after it that each row arrives)
LAG_DAYS = {
    "scenes": ("acquired_at", (1.0, 3.0)),  # a provider's delivery
    "repayments": ("paid_at", (0.0, 5.0)),  # posted after the money moved
    "market_prices": ("observed_at", (1.0, 1.0)),  # published the day after the market
    "farmers": ("registered_at", (0.0, 0.0)),  # registering is done in the product itself
    "coops": ("registered_at", (0.0, 0.0)),
    "buyers": ("registered_at", (0.0, 0.0)),
    "contracts": ("signed_at", (0.0, 1.0)),  # known once signed; then its later versions
    "loans": ("applied_at", (0.0, 0.0)),  # the lender's own record of the application
}

CONTRACT_CLOSING_DAYS = (1.0, 10.0)  # the goods-received notes reach the lender late
CONTRACT_PAYMENT_DAYS = (0.0, 5.0)  # as a repayment is posted
CLOSING = ("delivered_kg", "closed_at", "payment_due_at")
PAYMENT = ("paid_at", "paid_minor")


def _days(rng: np.random.Generator, n: int, lo: float, hi: float, unit: pd.Timedelta) -> np.ndarray:
    return pd.to_timedelta(rng.uniform(lo, hi, n) * unit.value, unit="ns").to_numpy()


def recorded_at(table: str, frame: pd.DataFrame, rng: np.random.Generator) -> pd.Series | None:
    """The arrival time of each row of `table`, None for a table with no event time."""
    n = len(frame)
    if n == 0:
        return pd.Series([], index=frame.index, dtype="datetime64[us, UTC]")
    if table == "orders":
        posted = _days(rng, n, *ORDER_POSTING_MINUTES, MINUTE)
        backfilled = rng.random(n) < ORDER_BACKFILL_SHARE
        late = _days(rng, n, *ORDER_BACKFILL_DAYS, DAY)
        return (frame["placed_at"] + np.where(backfilled, late, posted)).dt.floor("us")
    if table not in LAG_DAYS:
        return None
    event, (lo, hi) = LAG_DAYS[table]
    return (frame[event] + _days(rng, n, lo, hi, DAY)).dt.floor("us")  # stored to the us


def _without(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    empty = np.ones(len(frame), dtype=bool)
    return frame.assign(**{c: frame[c].mask(empty) for c in columns if c in frame})


def contract_versions(contracts: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Each contract (drawn to its final state) as the versions that reached the product,
    each with its `recorded_at`: signed (active, nothing delivered), then closed (the
    delivery and the payment's due date) and paid, each posted after the fact."""
    signed = _without(contracts, CLOSING + PAYMENT).assign(status="active")
    signed = signed.assign(recorded_at=recorded_at("contracts", signed, rng))
    closed = _without(contracts[contracts["closed_at"].notna()], PAYMENT)
    closed = closed.assign(
        recorded_at=(
            closed["closed_at"] + _days(rng, len(closed), *CONTRACT_CLOSING_DAYS, DAY)
        ).dt.floor("us")
    )
    paid = contracts[contracts["paid_at"].notna()]
    paid = paid.assign(
        recorded_at=(paid["paid_at"] + _days(rng, len(paid), *CONTRACT_PAYMENT_DAYS, DAY)).dt.floor(
            "us"
        )
    )
    versions = pd.concat([signed, closed, paid], ignore_index=True)
    return versions.sort_values(["recorded_at", "contract_id"], ignore_index=True)
