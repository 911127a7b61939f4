"""Supply-chain contract features: the receivable behind the loan and who stands behind it.

A contract's status column describes it at extraction time, so it is never read: what was
known at as-of comes from its timestamps (signed_at, closed_at, payment_due_at, paid_at).
Buyers' payment records and co-ops' areas span every farmer, so they arrive as reference
tables built once over all data (`buyer_payment_events`, `coop_crop_areas`); the pipeline
itself only needs the applicants' own rows. Market prices and co-ops' areas are read as of
by arrival too: a row recorded at or after as-of is not seen, whatever its date, so one
table read for a build serves loans applied for long before it
(features/training_matrix.py). So are contracts' closings and buyers' payments: the tables
hold each contract's latest version, which keeps when each of its dated facts first
arrived (features/versions.py); a fact counts from the later of its date and its arrival.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

from features.asof import (
    DAY_NS,
    EventIndex,
    before,
    check_applications,
    prefix_sums,
    recorded_ns,
    to_ns,
    visible,
)
from features.registry import output_columns
from features.versions import CONTRACT_FACTS

GRADES = ("A", "B", "C", "D")
GRADE_CODE = {g: i for i, g in enumerate(GRADES)}  # the feature `contract_buyer_grade`
MARKET_WINDOW_DAYS = 28
_S = 10**9  # ns per second: payment records are summed in whole seconds
_NAT = np.iinfo(np.int64).min


def coop_crop_areas(fields: pd.DataFrame, farmers: pd.DataFrame) -> pd.DataFrame:
    """Each member's field by co-op and crop, and from when it counts in the co-op's area:
    coop_id, crop, declared_area_ha, known_at (ns: the later of the member's registration
    and, of a store, the farmer's and the field's recorded times)."""
    known = recorded_ns(farmers)
    if "registered_at" in farmers:
        known = np.maximum(known, to_ns(farmers["registered_at"]))
    who = farmers[["farmer_id", "coop_id"]].assign(farmer_known=known)
    members = fields.assign(field_recorded=recorded_ns(fields)).merge(who, on="farmer_id")
    members = members[members["coop_id"].notna()]
    known = np.maximum(members["farmer_known"].to_numpy(), members["field_recorded"].to_numpy())
    return pd.DataFrame(
        {
            "coop_id": members["coop_id"].astype(str).to_numpy(),
            "crop": members["crop"].astype(str).to_numpy(),
            "declared_area_ha": members["declared_area_ha"].to_numpy(dtype=float),
            "known_at": known,
        }
    )


@numba.njit(cache=True, nogil=True)
def _running_sums(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Within each entity's rows in order, the sum of its values up to each row (added in
    that order, so a total depends on the entity's own rows only)."""
    out = np.empty_like(values)
    for c in range(len(starts) - 1):
        total = 0.0
        for k in range(starts[c], starts[c + 1]):
            total += values[k]
            out[k] = total
    return out


def _coop_area(
    coop_areas: pd.DataFrame, coops: pd.Series, crops: pd.Series, as_of: np.ndarray
) -> np.ndarray:
    """The declared area of a crop over a co-op's members known before as_of (NaN: none)."""
    keys = coop_areas["coop_id"] + "|" + coop_areas["crop"]
    index = EventIndex.build(keys.to_numpy(), coop_areas["known_at"].to_numpy(dtype=np.int64))
    running = _running_sums(
        coop_areas["declared_area_ha"].to_numpy(dtype=float)[index.order], index.starts
    )
    asked = coops.astype("string").fillna("") + "|" + crops.astype("string").fillna("")
    codes = index.code_of(asked.to_numpy(dtype=object))
    end = index.count_before(codes, as_of)
    seen = (codes >= 0) & (end > index.first_of(codes))
    return np.where(seen, running[np.maximum(end - 1, 0)] if len(running) else 0.0, np.nan)


def buyer_payment_events(contracts: pd.DataFrame) -> pd.DataFrame:
    """Every contract payment that falls due: buyer_id, contract_id, payment_due_at, paid_at,
    and of a store when each arrived (due_recorded_at, paid_recorded_at; NaT: by its date)."""
    due = contracts[contracts["payment_due_at"].notna()]
    out = due[["buyer_id", "contract_id", "payment_due_at", "paid_at"]].reset_index(drop=True)
    for fact in ("payment_due_at", "paid_at"):
        arrived = CONTRACT_FACTS[fact]
        if arrived in due:
            out[arrived] = due[arrived].to_numpy()
    return out


def _fact_known(table: pd.DataFrame, fact: str) -> np.ndarray:
    """When each row's dated fact was known (ns): the later of its date and the recording
    of the version that first carried it (the int64 minimum: no date)."""
    at = to_ns(table[fact])
    arrived = CONTRACT_FACTS[fact]
    if arrived not in table:
        return at
    return np.where(at == _NAT, _NAT, np.maximum(at, to_ns(table[arrived])))


def _buyer_record(payments: pd.DataFrame, buyer_ids: pd.Series, as_of: np.ndarray) -> pd.DataFrame:
    """Late share and mean days late of each buyer's payments known due before as_of.

    A payment known due before as_of is on time if known paid by then, paid by its due date;
    otherwise it counts late by paid - due if known paid by then, else by as_of - due. A due
    date or a payment counts from the later of its date and its arrival, so the totals are
    those of the contracts as recorded before as_of. Totals come from prefix sums over those
    times, in whole seconds.
    """
    due_s = to_ns(payments["payment_due_at"]) // _S
    paid_s = to_ns(payments["paid_at"]) // _S
    due_known = _fact_known(payments, "payment_due_at")
    paid_known = _fact_known(payments, "paid_at")
    paid = paid_known != _NAT
    paid_known = np.where(paid, np.maximum(due_known, paid_known), _NAT)
    on_time = paid & (paid_s <= due_s)
    buyers = payments["buyer_id"].to_numpy()

    def totals(rows: np.ndarray, known: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per application: the count and the sum of `values` of the buyer's `rows` known
        before its as_of."""
        index = EventIndex.build(buyers[rows], known[rows])
        sums = prefix_sums(np.column_stack([np.ones(int(rows.sum())), values[rows]])[index.order])
        codes = index.code_of(buyer_ids)
        return sums[index.count_before(codes, as_of)] - sums[index.first_of(codes)]

    due = totals(np.ones(len(payments), dtype=bool), due_known, due_s)
    kept = totals(on_time, paid_known, due_s)
    settled = totals(paid & ~on_time, paid_known, paid_s)
    n_due, n_late = due[:, 0], due[:, 0] - kept[:, 0]
    t = as_of // _S
    # the late ones still unpaid at as_of: as_of - due; the late ones paid: paid - due
    late_seconds = t * (n_late - settled[:, 0]) - (due[:, 1] - kept[:, 1]) + settled[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame(
            {
                "contract_buyer_late_rate": np.where(n_due > 0, n_late / n_due, np.nan),
                "contract_buyer_mean_days_late": np.where(
                    n_due > 0, late_seconds / 86_400 / n_due, np.nan
                ),
                "dq_no_buyer_record": n_due == 0,
            }
        )


@numba.njit(cache=True, nogil=True)
def _known_window_sums(
    lo: np.ndarray, hi: np.ndarray, recorded: np.ndarray, values: np.ndarray, cut: np.ndarray
) -> np.ndarray:
    """Per query, the totals of sorted rows lo..hi recorded before its cut."""
    out = np.zeros((len(lo), values.shape[1]), dtype=np.int64)
    for q in range(len(lo)):
        for k in range(lo[q], hi[q]):
            if recorded[k] < cut[q]:
                out[q] += values[k]
    return out


def _market_price(prices: pd.DataFrame, crops: pd.Series, as_of: np.ndarray) -> np.ndarray:
    """Mean market price of each crop over the 28 days before as_of (NaN if none), of the
    prices recorded before it (a week's price is published the day after its market)."""
    idx = EventIndex.build(prices["crop"], to_ns(prices["observed_at"]))
    values = np.column_stack(
        [np.ones(len(prices), dtype=np.int64), prices["price_per_kg_minor"].to_numpy(np.int64)]
    )[idx.order]
    codes = idx.code_of(crops)
    hi = idx.count_before(codes, as_of)
    lo = idx.count_before(codes, as_of - MARKET_WINDOW_DAYS * DAY_NS)
    cut = np.ascontiguousarray(np.broadcast_to(as_of, hi.shape), dtype=np.int64)
    window = _known_window_sums(lo, hi, recorded_ns(prices)[idx.order], values, cut)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(window[:, 0] > 0, window[:, 1] / window[:, 0], np.nan)


def _party_delivery(contracts: pd.DataFrame, apps: pd.DataFrame) -> pd.DataFrame:
    """Delivered over contracted kg of the party's contracts closed before as_of."""
    closed = contracts[contracts["closed_at"].notna() & contracts["delivered_kg"].notna()]
    cols = ["closed_at", "delivered_kg", "quantity_kg"]
    if CONTRACT_FACTS["closed_at"] in closed:  # a closing counts once its version arrived
        closed = closed.assign(recorded_at=closed[CONTRACT_FACTS["closed_at"]])
        cols.append("recorded_at")
    own = visible(
        closed[closed["farmer_id"].notna()][["farmer_id", *cols]], apps, time_col="closed_at"
    )
    coop = visible(
        closed[closed["coop_id"].notna()][["coop_id", *cols]],
        apps[apps["coop_id"].notna()],
        time_col="closed_at",
        key="coop_id",
    )
    both = pd.concat([own, coop], ignore_index=True)
    agg = both.groupby("application_id").agg(
        delivered=("delivered_kg", "sum"),
        contracted=("quantity_kg", "sum"),
        n=("quantity_kg", "size"),
    )
    agg = agg.reindex(apps["application_id"])
    ratio = (agg["delivered"] / agg["contracted"]).where(agg["contracted"] > 0)
    return pd.DataFrame(
        {
            "contract_party_delivery_ratio": ratio.to_numpy(dtype=float),
            "contract_party_closed_contracts": agg["n"].fillna(0).to_numpy(dtype=float),
        }
    )


def applicant_contracts(
    contracts: pd.DataFrame,
    applications: pd.DataFrame,
    *,
    farmers: pd.DataFrame,
    fields: pd.DataFrame,
    coop_areas: pd.DataFrame,
) -> pd.DataFrame:
    """The contract named by each application and the applicant's part in it, as of.

    Returns one row per application (input order) with the contract's columns and:
    application_id, farmer_id, as_of, requested_minor, coop_id (the applicant's co-op),
    party_ok (the contract is the farmer's or their co-op's), signed and open at as_of,
    share (1 for own contracts; the farmer's part of the co-op's declared area of the
    crop) and contracted_kg (quantity times share).
    """
    n = len(applications)
    none = pd.Series([None] * n, index=applications.index)
    coop_of = farmers.set_index("farmer_id")["coop_id"]
    apps = applications[["application_id", "farmer_id", "as_of"]].assign(
        contract_id=applications.get("contract_id", none).to_numpy(),
        requested_minor=pd.to_numeric(applications.get("requested_minor", np.nan)),
        coop_id=applications["farmer_id"].map(coop_of).astype("string").to_numpy(),
    )
    apps = apps.reset_index(drop=True)
    as_of = to_ns(apps["as_of"])
    by_id = contracts.set_index("contract_id").reindex(apps["contract_id"])

    def same(a: pd.Series, b: pd.Series) -> np.ndarray:
        left = a.astype("string").reset_index(drop=True)
        right = b.astype("string").reset_index(drop=True)
        return left.eq(right).fillna(False).to_numpy(dtype=bool)

    kind = by_id["party_type"].astype("string").fillna("").to_numpy()
    is_coop = kind == "coop"
    party_ok = ((kind == "farmer") & same(by_id["farmer_id"], apps["farmer_id"])) | (
        is_coop & same(by_id["coop_id"], apps["coop_id"])
    )
    c = by_id.drop(columns=["farmer_id", "coop_id"]).reset_index(drop=True)
    signed = party_ok & before(c["signed_at"], as_of)
    closed = before(_fact_known(c, "closed_at"), as_of)
    own_area = fields.groupby(["farmer_id", "crop"])["declared_area_ha"].sum()
    farmer_area = own_area.reindex(pd.MultiIndex.from_arrays([apps["farmer_id"], c["crop"]]))
    coop_area = _coop_area(coop_areas, apps["coop_id"], c["crop"], as_of)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(is_coop, farmer_area.to_numpy(dtype=float) / coop_area, 1.0)
    share = np.where(party_ok, share, np.nan)
    return pd.concat([apps, c], axis=1).assign(
        party_ok=party_ok,
        signed=signed,
        open=signed & ~closed,
        share=share,
        contracted_kg=c["quantity_kg"].to_numpy(dtype=float) * share,
    )


def build_contract_features(
    contracts: pd.DataFrame,
    applications: pd.DataFrame,
    *,
    farmers: pd.DataFrame,
    fields: pd.DataFrame,
    buyers: pd.DataFrame,
    market_prices: pd.DataFrame,
    buyer_payments: pd.DataFrame,
    coop_areas: pd.DataFrame,
) -> pd.DataFrame:
    """Contract features of each application.

    Requires:
        contracts: the applicants' contracts (own, and their co-ops'), contracts table columns.
        applications: application_id, farmer_id, as_of, contract_id (may be missing),
            requested_minor (may be missing).
        farmers (farmer_id, coop_id) and fields (farmer_id, crop, declared_area_ha) of the
        applicants; buyers (buyer_id, grade); market_prices; and the all-farmer reference
        tables `buyer_payment_events(...)` and `coop_crop_areas(...)`.
    Returns:
        One row per application, in input order: application_id, the `contracts` features of
        the registry, then its dq_* flags.
    As of:
        A contract counts only if signed before as_of; it is open unless closed before
        as_of; deliveries, payments and market prices count only if dated before as_of.
    """
    check_applications(applications)
    c = applicant_contracts(
        contracts, applications, farmers=farmers, fields=fields, coop_areas=coop_areas
    )
    as_of = to_ns(c["as_of"])
    party_ok, signed, open_ = (c[k].to_numpy(dtype=bool) for k in ("party_ok", "signed", "open"))
    share = c["share"].to_numpy(dtype=float)
    apps = c[["application_id", "farmer_id", "as_of", "coop_id", "requested_minor"]]
    # an open contract's version may report what is delivered so far; a closed row's final
    # delivery is not known before its closing (nor, read once for training, the progress a
    # version before it reported: such loans are built again, features/training_matrix.py)
    so_far = c["delivered_kg"].where(c["closed_at"].isna()).fillna(0.0).to_numpy(dtype=float)
    undelivered = np.maximum(c["quantity_kg"].to_numpy(dtype=float) - so_far, 0.0)
    unpaid = undelivered * c["price_per_kg_minor"].to_numpy(dtype=float)
    receivable = np.where(open_, unpaid * share, 0.0)
    grade = c["buyer_id"].map(buyers.set_index("buyer_id")["grade"]).map(GRADE_CODE)
    record = _buyer_record(buyer_payments, c["buyer_id"], as_of)
    market = _market_price(market_prices, c["crop"], as_of)
    delivery = _party_delivery(contracts, apps)
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = {
            "contract_receivable_minor": receivable,
            "contract_requested_over_receivable": np.where(
                receivable > 0, apps["requested_minor"].to_numpy(dtype=float) / receivable, np.nan
            ),
            "contract_share": share,
            "contract_buyer_grade": grade.to_numpy(dtype=float),
            "contract_buyer_late_rate": record["contract_buyer_late_rate"].to_numpy(),
            "contract_buyer_mean_days_late": record["contract_buyer_mean_days_late"].to_numpy(),
            "contract_party_delivery_ratio": delivery["contract_party_delivery_ratio"].to_numpy(),
            "contract_party_closed_contracts": delivery[
                "contract_party_closed_contracts"
            ].to_numpy(),
            "contract_days_to_delivery": (to_ns(c["delivery_start"]) - as_of) / DAY_NS,
            "contract_price_over_market": c["price_per_kg_minor"].to_numpy(dtype=float) / market,
        }
    flags = {
        "dq_no_contract": ~party_ok,
        "dq_contract_not_open": party_ok & ~open_,
        "dq_no_buyer_record": record["dq_no_buyer_record"].to_numpy() | ~signed,
        "dq_no_market_price": np.isnan(market) | ~signed,
    }
    # the party's delivery record stands without a contract; the rest needs a signed one
    keep_without_contract = {"contract_party_delivery_ratio", "contract_party_closed_contracts"}
    out = pd.DataFrame({"application_id": apps["application_id"].to_numpy()})
    for name in output_columns("contracts"):
        if name in flags:
            out[name] = flags[name]
        elif name in keep_without_contract:
            out[name] = np.asarray(columns[name], dtype=float)
        else:
            out[name] = np.where(signed, np.asarray(columns[name], dtype=float), np.nan)
    return out
