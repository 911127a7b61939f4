"""Feature assembly, pure: the input tables of some farmers -> one feature row per application.

`build_features` is the one entry for training (every loan) and scoring (one application):
it runs the four source pipelines on the same applications and joins them. Tables keyed
by farmer may be restricted to any group of farmers (`restrict_to_farmers`); the
reference tables that span all farmers are built once (`build_reference`) and shared.
Nothing here reads files or the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from features.asof import before, instant_ns
from features.contracts import build_contract_features, buyer_payment_events, coop_crop_areas
from features.history import build_history_features
from features.orders import build_order_features
from features.registry import FEATURE_NAMES, QUALITY_FLAGS, SOURCES
from features.satellite.pipeline import build_satellite_features
from features.satellite.seasons import GrowingSeason, county_crop_peaks, field_season_metrics
from features.satellite.series import polygon_areas_ha
from features.satellite.zonal import FieldSet

KEY_COLUMNS = ("application_id", "farmer_id", "as_of", "contract_id")
FLAG_NAMES = tuple(f.name for f in QUALITY_FLAGS)


@dataclass(frozen=True)
class Inputs:
    """The typed input tables features are built from.

    `fields` carries field_id, farmer_id, crop, declared_area_ha, polygon_ha and county;
    `series` is the per-field index time series (`build_index_series`).
    """

    farmers: pd.DataFrame
    fields: pd.DataFrame
    orders: pd.DataFrame
    contracts: pd.DataFrame
    loans: pd.DataFrame
    repayments: pd.DataFrame
    buyers: pd.DataFrame
    market_prices: pd.DataFrame
    series: pd.DataFrame


@dataclass(frozen=True)
class Reference:
    """Tables spanning all farmers, built once and shared by every partition."""

    buyer_payments: pd.DataFrame
    coop_areas: pd.DataFrame
    county_peaks: pd.DataFrame
    # every field's season metrics: a field's depend on its own observations only, so a
    # partition's applications read theirs here instead of computing them again
    field_seasons: pd.DataFrame | None = None


def field_table(
    fields: pd.DataFrame,
    farmers: pd.DataFrame,
    fieldset: FieldSet,
    *,
    measured: pd.Series | None = None,
) -> pd.DataFrame:
    """Fields with their measured polygon area and their farmer's county. `measured`: the
    areas already measured of some fields, by field_id (a feature store's); only the
    others are measured here (about 16 us a polygon, with the reprojection)."""
    if measured is None:
        areas = polygon_areas_ha(fieldset).reset_index()
    else:
        ids = pd.Index(fieldset.field_ids)
        missing = ~ids.isin(measured.index)
        parts = [measured[measured.index.isin(ids)].astype(float)]
        if missing.any():
            subset = FieldSet(fieldset.field_ids[missing], fieldset.geometry[missing], fieldset.crs)
            parts.append(polygon_areas_ha(subset))
        areas = (
            pd.concat(parts).reindex(ids).rename("polygon_ha").rename_axis("field_id")
        ).reset_index()
    return (
        fields.drop(columns=["geometry"], errors="ignore")
        .merge(areas, on="field_id", how="left")
        .merge(farmers[["farmer_id", "county"]], on="farmer_id", how="left")
    )


def build_reference(
    inputs: Inputs,
    *,
    season: GrowingSeason | None = None,
    field_seasons: pd.DataFrame | None = None,
) -> Reference:
    """Reference tables over all farmers: buyers' payments, co-op areas, county peaks and
    every field's season metrics (`field_seasons`, if already computed for these inputs)."""
    if field_seasons is None:
        field_seasons = field_season_metrics(inputs.series, inputs.fields, season=season)
    return Reference(
        buyer_payments=buyer_payment_events(inputs.contracts),
        coop_areas=coop_crop_areas(inputs.fields, inputs.farmers),
        county_peaks=county_crop_peaks(field_seasons, inputs.fields),
        field_seasons=field_seasons,
    )


def restrict_to_farmers(inputs: Inputs, farmer_ids: pd.Series | np.ndarray) -> Inputs:
    """The inputs of some farmers: their rows, their contracts and their co-ops' contracts."""
    ids = pd.Index(pd.unique(np.asarray(farmer_ids)))
    farmers = inputs.farmers[inputs.farmers["farmer_id"].isin(ids)]
    fields = inputs.fields[inputs.fields["farmer_id"].isin(ids)]
    loans = inputs.loans[inputs.loans["farmer_id"].isin(ids)]
    coops = farmers["coop_id"].dropna().unique()
    c = inputs.contracts
    return replace(
        inputs,
        farmers=farmers,
        fields=fields,
        orders=inputs.orders[inputs.orders["farmer_id"].isin(ids)],
        contracts=c[c["farmer_id"].isin(ids) | c["coop_id"].isin(coops)],
        loans=loans,
        repayments=inputs.repayments[inputs.repayments["loan_id"].isin(loans["loan_id"])],
        series=inputs.series[inputs.series["field_id"].isin(fields["field_id"])],
    )


def satellite_features(
    inputs: Inputs,
    applications: pd.DataFrame,
    *,
    reference: Reference,
    season: GrowingSeason | None = None,
) -> pd.DataFrame:
    """The satellite part of `build_features` alone (application_id, then its columns)."""
    return build_satellite_features(
        inputs.series,
        applications,
        fields=inputs.fields,
        contracts=inputs.contracts,
        farmers=inputs.farmers,
        coop_areas=reference.coop_areas,
        county_peaks=reference.county_peaks,
        season=season,
        field_seasons=reference.field_seasons,
    )


def build_features(
    inputs: Inputs,
    applications: pd.DataFrame,
    *,
    reference: Reference,
    season: GrowingSeason | None = None,
    kept: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Every source's features for each application, joined into one row per application.

    Requires applications with application_id, farmer_id, as_of and, optionally,
    contract_id and requested_minor. Returns the key columns, the registry's features in
    catalogue order, then the dq_* flags; rows in input order. `kept`: some sources'
    parts already computed for exactly these applications (application_id, then the
    source's columns, rows in input order), taken as they are (a follower keeps a farmer's
    satellite features while `satellite_unchanged_until` says they stand).
    """
    makers: dict[str, Callable[[], pd.DataFrame]] = {
        "orders": lambda: build_order_features(inputs.orders, applications),
        "contracts": lambda: build_contract_features(
            inputs.contracts,
            applications,
            farmers=inputs.farmers,
            fields=inputs.fields,
            buyers=inputs.buyers,
            market_prices=inputs.market_prices,
            buyer_payments=reference.buyer_payments,
            coop_areas=reference.coop_areas,
        ),
        "satellite": lambda: satellite_features(
            inputs, applications, reference=reference, season=season
        ),
        "history": lambda: build_history_features(
            inputs.loans, applications, repayments=inputs.repayments
        ),
    }
    kept = kept or {}
    parts = {s: kept[s] if s in kept else make() for s, make in makers.items()}
    none = pd.Series([None] * len(applications), index=applications.index)
    keys = pd.DataFrame(
        {
            "application_id": applications["application_id"].astype("str").reset_index(drop=True),
            "farmer_id": applications["farmer_id"].astype("str").reset_index(drop=True),
            "as_of": applications["as_of"].reset_index(drop=True),
            "contract_id": applications.get("contract_id", none)
            .astype("str")
            .reset_index(drop=True),
        }
    )
    joined = pd.concat([keys] + [parts[s].drop(columns="application_id") for s in SOURCES], axis=1)
    return joined[[*KEY_COLUMNS, *FEATURE_NAMES, *FLAG_NAMES]]


def loan_applications(loans: pd.DataFrame) -> pd.DataFrame:
    """Each loan as the application it was, at its application time."""
    return pd.DataFrame(
        {
            "application_id": loans["loan_id"].reset_index(drop=True),
            "farmer_id": loans["farmer_id"].reset_index(drop=True),
            "as_of": loans["applied_at"]
            .dt.tz_convert("UTC")
            .dt.as_unit("ns")
            .reset_index(drop=True),
            "contract_id": loans["contract_id"].reset_index(drop=True),
            "requested_minor": loans["amount_minor"].astype(float).reset_index(drop=True),
        }
    )


def snapshot_applications(
    farmers: pd.DataFrame, contracts: pd.DataFrame, as_of: pd.Timestamp
) -> pd.DataFrame:
    """One application per farmer at `as_of`, naming the latest contract open then.

    A farmer's own contracts and their co-op's both count; without one the contract is
    missing and the row says so in its flags.
    """
    t = instant_ns(as_of)
    open_ = contracts[
        before(contracts["signed_at"], t) & ~before(contracts["closed_at"], t)
    ].sort_values(["signed_at", "contract_id"])
    own = open_[open_["farmer_id"].notna()].groupby("farmer_id")["contract_id"].last()
    coop = open_[open_["coop_id"].notna()].groupby("coop_id")["contract_id"].last()
    contract = farmers["farmer_id"].map(own).fillna(farmers["coop_id"].map(coop))
    return pd.DataFrame(
        {
            "application_id": "snapshot-" + farmers["farmer_id"].astype(str).to_numpy(),
            "farmer_id": farmers["farmer_id"].to_numpy(),
            "as_of": pd.array([pd.Timestamp(as_of)] * len(farmers), dtype="datetime64[ns, UTC]"),
            "contract_id": contract.to_numpy(),
            "requested_minor": np.nan,
        }
    )
