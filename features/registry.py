"""The feature catalogue: every model input declared once, with what it means to a farmer.

`direction` is how the feature should move the risk of default as it grows (+1 riskier,
-1 safer, 0 no constraint); training turns it into LightGBM monotone constraints. `reason`
is the plain-language text a declined farmer is shown when the feature drives a decision;
`adverse_side` is the side of the training population's median on which that text is true
(high values: +1, low: -1), the direction unless one is declared for unconstrained features.
Data-quality flags (`dq_*`) travel with every row but are not model inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["orders", "contracts", "satellite", "history"]
SOURCES: tuple[Source, ...] = ("orders", "contracts", "satellite", "history")


@dataclass(frozen=True)
class FeatureSpec:
    """One model input."""

    name: str
    source: Source
    unit: str
    direction: Literal[-1, 0, 1]
    description: str
    reason: str
    adverse: Literal[-1, 0, 1] = 0  # declared only where direction is 0

    @property
    def adverse_side(self) -> int:
        """+1 when the reason text is true of high values, -1 of low, 0 of none."""
        return self.adverse or self.direction


@dataclass(frozen=True)
class QualityFlag:
    """A boolean data-quality flag carried next to the features of a row.

    `reason` is what an applicant is told when the data it marks missing weighs against
    them; a `whole_source` flag means none of the source's data exists, so every feature of
    that source is a stand-in (zero counts, not measurements)."""

    name: str
    source: Source
    description: str
    reason: str = ""
    whole_source: bool = False
    explains: tuple[str, ...] = ()  # features it leaves without a value (whole source: all)


def _f(
    name: str,
    source: Source,
    unit: str,
    direction: Literal[-1, 0, 1],
    description: str,
    reason: str,
    adverse: Literal[-1, 0, 1] = 0,
) -> FeatureSpec:
    return FeatureSpec(name, source, unit, direction, description, reason, adverse)


FEATURES: tuple[FeatureSpec, ...] = (
    # --- order history on the e-commerce platform -------------------------------------------
    _f("orders_amount_30d", "orders", "minor", -1,
       "Value of completed orders in the 30 days before the application.",
       "Your recent sales on the platform are low."),
    _f("orders_amount_90d", "orders", "minor", -1,
       "Value of completed orders in the 90 days before the application.",
       "Your sales over the last three months are low."),
    _f("orders_amount_365d", "orders", "minor", -1,
       "Value of completed orders in the 365 days before the application.",
       "Your sales over the last year are low."),
    _f("orders_count_90d", "orders", "orders", -1,
       "Number of orders (any status) in the 90 days before the application.",
       "You received few orders in the last three months."),
    _f("orders_count_365d", "orders", "orders", -1,
       "Number of orders (any status) in the 365 days before the application.",
       "You received few orders in the last year."),
    _f("orders_growth_90d", "orders", "ratio", -1,
       "Completed value of the last 90 days over that of the 90 days before them.",
       "Your sales have fallen compared with the previous three months."),
    _f("orders_growth_365d", "orders", "ratio", -1,
       "Completed value of the last 365 days over that of the 365 days before them.",
       "Your sales have fallen compared with the year before."),
    _f("orders_monthly_volatility", "orders", "ratio", 1,
       "Coefficient of variation of completed value over the last twelve 30-day months.",
       "Your monthly sales vary a lot from month to month."),
    _f("orders_peak_quarter_share", "orders", "share", 0,
       "Share of the last twelve 30-day months' completed value earned in the busiest three "
       "consecutive months.",
       "Your sales are concentrated in a short part of the year.", adverse=1),
    _f("orders_refund_rate_365d", "orders", "share", 1,
       "Share of the last year's orders that were refunded.",
       "Many of your orders were refunded."),
    _f("orders_cancel_rate_365d", "orders", "share", 1,
       "Share of the last year's orders that were cancelled.",
       "Many of your orders were cancelled."),
    _f("orders_distinct_customers", "orders", "customers", -1,
       "Distinct customers with a completed order before the application.",
       "You sell to few different customers."),
    _f("orders_repeat_customer_share", "orders", "share", -1,
       "Share of those customers who bought at least twice.",
       "Few of your customers come back to buy again."),
    _f("orders_rating_mean_365d", "orders", "stars", -1,
       "Mean customer rating (1-5) of the last year's rated orders.",
       "Your customer ratings are low."),
    _f("orders_tenure_days", "orders", "days", -1,
       "Days since the first order on the platform.",
       "You have been selling on the platform for a short time."),
    _f("orders_days_since_last", "orders", "days", 1,
       "Days since the most recent order.",
       "You have not received an order for a long time."),
    # --- the supply-chain purchase contract behind the loan ---------------------------------
    _f("contract_receivable_minor", "contracts", "minor", -1,
       "The applicant's share of the contract value not yet delivered at the application.",
       "The value of the crop you have contracted to sell is small."),
    _f("contract_requested_over_receivable", "contracts", "ratio", 1,
       "Requested amount over the applicant's receivable under the contract.",
       "The amount requested is large compared with your contract's value."),
    _f("contract_share", "contracts", "share", 0,
       "Applicant's share of the contract: 1 for own contracts, the share of the co-op's "
       "declared area of the crop for co-op contracts.",
       "Your share of your co-op's contract is small.", adverse=-1),
    _f("contract_buyer_grade", "contracts", "grade 0=A..3=D", 1,
       "The buyer's grade (A best) as an ordinal.",
       "The buyer on your contract has a weak grade."),
    _f("contract_buyer_late_rate", "contracts", "share", 1,
       "Share of the buyer's payments falling due before the application that were late "
       "or are still unpaid.",
       "The buyer on your contract has often paid late."),
    _f("contract_buyer_mean_days_late", "contracts", "days", 1,
       "Mean days late of the buyer's payments due before the application.",
       "The buyer on your contract pays late on average."),
    _f("contract_party_delivery_ratio", "contracts", "share", -1,
       "Delivered over contracted quantity on the party's contracts closed before the "
       "application (the farmer's own and their co-op's).",
       "Past contracts were not delivered in full."),
    _f("contract_party_closed_contracts", "contracts", "contracts", -1,
       "Contracts of the party closed before the application.",
       "You have little history of delivering on contracts."),
    _f("contract_days_to_delivery", "contracts", "days", 0,
       "Days from the application to the start of the delivery window.",
       "The delivery window of your contract is far away.", adverse=1),
    _f("contract_price_over_market", "contracts", "ratio", -1,
       "Contract price over the crop's mean market price in the 28 days before the "
       "application.",
       "Your contract price is low compared with the market, which tempts side-selling."),
    # --- satellite crop indices of the applicant's fields -----------------------------------
    _f("sat_last_peak_ndvi", "satellite", "NDVI", -1,
       "Peak field NDVI in the last completed season (area-weighted over the fields).",
       "Your fields looked weak from space last season."),
    _f("sat_last_integral_ndvi", "satellite", "NDVI-days", -1,
       "NDVI above the season's baseline integrated over the last completed season.",
       "Your crop's growth last season was below normal."),
    _f("sat_last_greenup_doy", "satellite", "day of year", 1,
       "Day of year the fields reached half their peak greenness last season.",
       "Your fields greened up late last season."),
    _f("sat_last_anomaly_own", "satellite", "NDVI", -1,
       "Last season's peak NDVI minus the mean peak of the same fields' earlier seasons.",
       "Your fields did worse last season than in earlier seasons."),
    _f("sat_last_anomaly_county", "satellite", "NDVI", -1,
       "Last season's peak NDVI minus the median peak of same-crop fields in the county.",
       "Your fields did worse last season than similar fields nearby."),
    _f("sat_last_cultivated_ratio", "satellite", "share", -1,
       "Cultivated area seen at peak over the declared area, last season.",
       "Less of your declared area was cultivated than stated."),
    _f("sat_last_yield_kg_ha", "satellite", "kg/ha", -1,
       "Yield estimated from last season's peak NDVI for the declared crop.",
       "Your estimated yield last season was low."),
    _f("sat_clear_obs_60d", "satellite", "scenes", 0,
       "Clear observations per field in the 60 days before the application.",
       "Recent satellite images of your fields are few.", adverse=-1),
    _f("sat_recent_anomaly_own", "satellite", "NDVI", 0,
       "Mean NDVI of the last 30 days minus the same fields' mean at the same time of year "
       "in earlier seasons.",
       "Your fields look less green now than at this time in earlier years.", adverse=-1),
    _f("sat_production_over_contracted", "satellite", "ratio", -1,
       "Expected production of the contracted crop (last season's yield estimate times "
       "cultivated area) over the contracted quantity.",
       "Your fields may not produce enough to fill your contract."),
    # --- loan history on the platform -------------------------------------------------------
    _f("history_prior_loans", "history", "loans", 0,
       "Loans applied for before this application.",
       "You have little borrowing history with us.", adverse=-1),
    _f("history_repaid_loans", "history", "loans", -1,
       "Earlier loans fully repaid before the application.",
       "You have repaid few loans with us."),
    _f("history_worst_dpd", "history", "days", 1,
       "Worst days past due of any earlier loan, as of the application.",
       "An earlier loan was repaid late."),
    _f("history_defaults", "history", "loans", 1,
       "Earlier loans 90 or more days past due as of the application.",
       "An earlier loan went unpaid."),
    _f("history_outstanding_minor", "history", "minor", 1,
       "Principal of earlier loans disbursed and not yet repaid at the application.",
       "You already owe on other loans."),
)  # fmt: skip

QUALITY_FLAGS: tuple[QualityFlag, ...] = (
    QualityFlag("dq_no_orders", "orders", "No order on the platform before the as-of time.",
                "No sales history on the platform yet.", whole_source=True),
    QualityFlag("dq_no_contract", "contracts",
                "The application names no contract, or one not found in the party's contracts.",
                "No purchase contract of yours is on file.", whole_source=True),
    QualityFlag("dq_contract_not_open", "contracts",
                "The contract was not signed, or already closed or cancelled, at the as-of time."),
    QualityFlag("dq_no_buyer_record", "contracts",
                "No payment of the buyer had fallen due before the as-of time.",
                "The buyer on your contract has no payment record with us yet.",
                explains=("contract_buyer_late_rate", "contract_buyer_mean_days_late")),
    QualityFlag("dq_no_market_price", "contracts",
                "No market price of the crop in the 28 days before the as-of time.",
                "No recent market price of your crop is known.",
                explains=("contract_price_over_market",)),
    QualityFlag("dq_no_fields", "satellite", "The farmer has no field boundary.",
                "No boundary of your fields is on file yet.", whole_source=True),
    QualityFlag("dq_no_last_season", "satellite",
                "No clear observation of the fields in the last completed season.",
                "Satellite images have not yet seen your fields through a whole season.",
                explains=("sat_last_peak_ndvi", "sat_last_integral_ndvi", "sat_last_greenup_doy",
                          "sat_last_anomaly_own", "sat_last_anomaly_county",
                          "sat_last_cultivated_ratio", "sat_last_yield_kg_ha",
                          "sat_production_over_contracted")),
    QualityFlag("dq_no_recent_scene", "satellite",
                "No clear observation of the fields in the 60 days before the as-of time.",
                "No recent clear satellite image of your fields yet.",
                explains=("sat_clear_obs_60d", "sat_recent_anomaly_own")),
    QualityFlag("dq_no_loan_history", "history", "No earlier loan on the platform.",
                "You have no earlier loan with us yet.", whole_source=True),
)  # fmt: skip

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FLAG_NAMES: tuple[str, ...] = tuple(f.name for f in QUALITY_FLAGS)
# one application as numbers: every feature, then every flag (1.0 when raised)
ROW_COLUMNS: tuple[str, ...] = FEATURE_NAMES + FLAG_NAMES
_BY_NAME = {f.name: f for f in FEATURES}


def features_of(source: Source) -> tuple[FeatureSpec, ...]:
    """The declared features of one source, in catalogue order."""
    if source not in SOURCES:
        raise ValueError(f"unknown feature source {source!r}; choose one of {', '.join(SOURCES)}")
    return tuple(f for f in FEATURES if f.source == source)


def flags_of(source: Source) -> tuple[QualityFlag, ...]:
    """The data-quality flags of one source, in catalogue order."""
    return tuple(f for f in QUALITY_FLAGS if f.source == source)


def output_columns(source: Source) -> list[str]:
    """Columns a source's pipeline returns after `application_id`: features, then flags."""
    return [f.name for f in features_of(source)] + [f.name for f in flags_of(source)]


def get_feature(name: str) -> FeatureSpec:
    """The declaration of feature `name`."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    raise KeyError(f"no feature named {name!r}; `agricredit features list` shows the catalogue")
