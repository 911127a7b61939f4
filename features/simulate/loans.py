"""Input loans: who applies, the true probability of default, outcomes and repayments.

Default follows a logistic model of the realised season (docs/simulation.md §5). `true_pd`
is its expectation over what was still unknown at application — the harvest-price shock,
the yield shock, a drought not yet visible, side-selling and buyer failure — given all that
was knowable then, latent traits included. It is the best any model could do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.simulate.calendar import extracted_at
from features.simulate.contracts import ContractBook
from features.simulate.ids import id_width, make_ids
from features.simulate.params import CROPS_BY_NAME, WorldParams
from features.simulate.population import Population, sigmoid
from features.simulate.seasons import DROUGHT_ONSET_DAYS

MC_SAMPLES = 128
MC_CHUNK = 4_000
APPLICATION_DAYS = (-35, 45)  # around the county's planting date
DPD_DEFAULT = 90


@dataclass
class LoanBook:
    """Loans (public columns, true_pd and the realised channels) and repayments."""

    loans: pd.DataFrame
    repayments: pd.DataFrame


@dataclass
class _Knowns:
    """What is fixed at application, one entry per loan."""

    base_logit: np.ndarray  # latent traits, abandonment and intercept
    obligation: np.ndarray  # what is owed at due date, minor units
    capacity: np.ndarray  # kg expected from cultivated fields before weather shocks
    share_kg: np.ndarray
    price: np.ndarray
    price_ratio_base: np.ndarray
    shock_ramp: np.ndarray
    diligence: np.ndarray
    buyer_fail: np.ndarray  # probability the buyer does not pay
    drought_known: np.ndarray  # bool: drought visible at application
    drought_loss_known: np.ndarray  # realised mean drought loss where visible
    drought_posterior: np.ndarray  # P(drought) where not yet visible


def _logit(
    params: WorldParams, k: _Knowns, sl: slice, production: np.ndarray, side: float, fail: float
) -> np.ndarray:
    risk = params.risk
    revenue = np.minimum(production, k.share_kg[sl, None]) * k.price[sl, None]
    coverage = np.clip(revenue / k.obligation[sl, None], 0.2, 5.0)
    return (
        k.base_logit[sl, None]
        + risk.log_coverage * np.log(coverage)
        + risk.side_selling * side
        + risk.buyer_failure * fail
    )


def _p_side(params: WorldParams, k: _Knowns, sl: slice, shock: np.ndarray) -> np.ndarray:
    risk = params.risk
    ratio = k.price_ratio_base[sl, None] * np.exp(shock * k.shock_ramp[sl, None])
    return sigmoid(
        risk.side_sell_intercept
        + risk.side_sell_price_gap * (ratio - 1)
        + risk.side_sell_diligence * k.diligence[sl, None]
    )


def true_pd(params: WorldParams, k: _Knowns, rng: np.random.Generator) -> np.ndarray:
    """Monte Carlo expectation of the default probability over the unknown future."""
    n = len(k.base_logit)
    out = np.empty(n)
    for start in range(0, n, MC_CHUNK):
        sl = slice(start, min(start + MC_CHUNK, n))
        m = sl.stop - sl.start
        shock = params.harvest_price_sd * rng.standard_normal((m, MC_SAMPLES))
        eps = params.yield_noise * rng.standard_normal((m, MC_SAMPLES))
        drought = rng.random((m, MC_SAMPLES)) < k.drought_posterior[sl, None]
        loss_unknown = np.where(
            drought,
            rng.uniform(0.3, 0.8, (m, MC_SAMPLES)) * rng.uniform(0.7, 1.0, (m, MC_SAMPLES)),
            0.0,
        )
        loss = np.where(k.drought_known[sl, None], k.drought_loss_known[sl, None], loss_unknown)
        production = k.capacity[sl, None] * (1 - loss) * np.exp(eps - params.yield_noise**2 / 2)
        p_side = _p_side(params, k, sl, shock)
        fail = k.buyer_fail[sl, None]
        p = 0.0
        for side, w_side in ((1.0, p_side), (0.0, 1 - p_side)):
            for f, w_fail in ((1.0, fail), (0.0, 1 - fail)):
                p = p + w_side * w_fail * sigmoid(_logit(params, k, sl, production, side, f))
        out[sl] = np.mean(p, axis=1)
    return out


def _applications(
    params: WorldParams,
    book: ContractBook,
    population: Population,
    county_seasons: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    parties = book.parties[book.parties.season < params.seasons]
    contracts = book.contracts.set_index("contract_id")
    planting = county_seasons.set_index(["county", "season"]).planting_at
    n = len(parties)
    applied = pd.DatetimeIndex(
        planting.reindex(pd.MultiIndex.from_frame(parties[["county", "season"]]))
    ) + pd.to_timedelta(rng.uniform(*APPLICATION_DAYS, n), unit="D")
    earliest = pd.DatetimeIndex(parties.contract_id.map(contracts.signed_at)) + pd.Timedelta(days=1)
    applied = applied.where(applied > earliest, earliest).floor("min")
    registered = parties.farmer_id.map(population.farmers.set_index("farmer_id").registered_at)
    applies = (rng.random(n) < params.apply_share) & (pd.DatetimeIndex(registered) < applied)
    apps = parties[applies].assign(applied_at=applied[applies])
    cost = apps.crop.map({k: c.input_cost_per_ha_minor for k, c in CROPS_BY_NAME.items()})
    # adverse selection: the less wealthy and less diligent ask for more per hectare
    farmers = population.farmers.set_index("farmer_id").reindex(apps.farmer_id)
    appetite = np.exp(-0.15 * farmers.wealth.to_numpy() - 0.10 * farmers.diligence.to_numpy())
    amount = cost * apps.declared_ha * rng.uniform(0.5, 1.2, len(apps)) * appetite
    apps["amount_minor"] = np.maximum(np.round(amount, -5), 500_000).astype("int64")
    apps["due_at"] = apps.contract_id.map(contracts.delivery_end) + pd.Timedelta(
        days=params.grace_days
    )
    apps["disbursed_at"] = apps.applied_at + pd.to_timedelta(
        rng.uniform(0, 3, len(apps)), unit="D"
    ).floor("min")
    return apps.reset_index(drop=True)


def _knowns(
    params: WorldParams,
    apps: pd.DataFrame,
    population: Population,
    field_seasons: pd.DataFrame,
    county_seasons: pd.DataFrame,
) -> _Knowns:
    farmers = population.farmers.set_index("farmer_id")
    f = farmers.reindex(apps.farmer_id)
    fs = field_seasons.merge(population.fields[["field_id", "farmer_id", "crop"]], on="field_id")
    crop_yield = fs.crop.map({k: c.yield_kg_ha for k, c in CROPS_BY_NAME.items()})
    fs = fs.assign(
        capacity=fs.cultivated_ha * crop_yield * fs.productivity, all_abandoned=fs.abandoned
    )
    per_party = fs.groupby(["farmer_id", "crop", "season"]).agg(
        capacity=("capacity", "sum"),
        all_abandoned=("all_abandoned", "all"),
        drought_loss=("drought_loss", "mean"),
    )
    key = pd.MultiIndex.from_frame(apps[["farmer_id", "crop", "season"]])
    party = per_party.reindex(key)
    cs = county_seasons.set_index(["county", "season"]).reindex(
        pd.MultiIndex.from_frame(apps[["county", "season"]])
    )
    drought = cs.drought_severity.to_numpy() > 0
    applied = pd.DatetimeIndex(apps.applied_at)
    known = drought & (pd.DatetimeIndex(cs.drought_onset_at) <= applied)
    days_since_planting = (applied - pd.DatetimeIndex(cs.planting_at)) / pd.Timedelta(days=1)
    lo, hi = DROUGHT_ONSET_DAYS
    not_yet = np.clip((hi - days_since_planting) / (hi - lo), 0, 1)  # P(onset later | drought)
    q = params.drought_probability
    posterior = q * not_yet / (1 - q + q * not_yet)
    risk = params.risk
    term_years = (apps.due_at - apps.disbursed_at).dt.days.to_numpy() / 365
    return _Knowns(
        base_logit=(
            risk.intercept
            + risk.skill * f.skill.to_numpy()
            + risk.diligence * f.diligence.to_numpy()
            + risk.wealth * f.wealth.to_numpy()
            + risk.abandoned * party.all_abandoned.fillna(True).to_numpy(dtype=float)
        ),
        obligation=apps.amount_minor.to_numpy() * (1 + params.annual_rate * term_years),
        capacity=party.capacity.fillna(0.0).to_numpy(),
        share_kg=apps.share_kg.to_numpy(),
        price=apps.price_per_kg_minor.to_numpy(dtype=float),
        price_ratio_base=apps.price_ratio_base.to_numpy(),
        shock_ramp=apps.shock_ramp.to_numpy(),
        diligence=f.diligence.to_numpy(),
        buyer_fail=1 - apps.buyer_reliability.to_numpy(),
        drought_known=known,
        drought_loss_known=np.where(known, party.drought_loss.fillna(0.0).to_numpy(), 0.0),
        drought_posterior=np.where(known, 0.0, posterior),
    )


def _outcomes(
    params: WorldParams,
    apps: pd.DataFrame,
    k: _Knowns,
    contracts: pd.DataFrame,
    rng: np.random.Generator,
) -> np.ndarray:
    """Realised default probability given what actually happened, then the draw."""
    paid = apps.contract_id.map(contracts.set_index("contract_id").buyer_paid)
    fail = (~paid.astype(bool)).to_numpy(dtype=float)
    side = apps.side_sold.to_numpy(dtype=float)
    logit = (
        _logit(params, k, slice(None), apps.production_kg.to_numpy()[:, None], 0.0, 0.0)[:, 0]
        + params.risk.side_selling * side
        + params.risk.buyer_failure * fail
    )
    return rng.random(len(apps)) < sigmoid(logit)


def _repayments(
    params: WorldParams,
    loans: pd.DataFrame,
    contracts: pd.DataFrame,
    population: Population,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Repayment rows and each loan's worst days past due at extraction."""
    n = len(loans)
    c = contracts.set_index("contract_id")
    buyer_paid_at = loans.contract_id.map(c.paid_at)
    diligence = loans.farmer_id.map(population.farmers.set_index("farmer_id").diligence)
    slack = np.where(
        rng.random(n) < sigmoid(-1.5 - 0.8 * diligence.to_numpy()),
        np.minimum(rng.geometric(1 / 15, n), 80),
        0,
    )
    from_buyer = buyer_paid_at + pd.to_timedelta(rng.uniform(0, 3, n), unit="D")
    on_time = loans.due_at - pd.to_timedelta(rng.uniform(0, 5, n), unit="D")
    good_paid_at = from_buyer.fillna(on_time).where(lambda s: s < loans.due_at, on_time)
    good_paid_at = good_paid_at + pd.to_timedelta(slack, unit="D")
    extracted = extracted_at(params)
    defaulted = loans.defaulted.to_numpy()
    days = (good_paid_at - loans.disbursed_at).dt.days.to_numpy()
    owed = np.round(loans.amount_minor * (1 + params.annual_rate * days / 365)).astype("int64")
    partial = defaulted & (rng.random(n) < 0.6)
    partial_at = loans.due_at + pd.to_timedelta(rng.uniform(-10, 60, n), unit="D")
    partial_amount = np.round(loans.amount_minor * rng.uniform(0.05, 0.5, n)).astype("int64")
    rows = pd.DataFrame(
        {
            "loan_id": np.r_[loans.loan_id[~defaulted], loans.loan_id[partial]],
            "paid_at": np.r_[good_paid_at[~defaulted].to_numpy(), partial_at[partial].to_numpy()],
            "amount_minor": np.r_[owed[~defaulted], partial_amount[partial]],
        }
    ).sort_values(["paid_at", "loan_id"], ignore_index=True)
    rows["paid_at"] = pd.DatetimeIndex(rows.paid_at).floor("min")
    rows = rows[rows.paid_at < extracted].reset_index(drop=True)  # not yet paid: not here
    rows.insert(0, "repayment_id", make_ids("R", np.arange(len(rows)), id_width(len(rows))))
    late = np.maximum((good_paid_at - loans.due_at).dt.days.to_numpy(), 0)
    unpaid = np.maximum((extracted - loans.due_at).dt.days.to_numpy(), 0)
    settled = ~defaulted & (good_paid_at < extracted).to_numpy()
    dpd = np.where(settled, late, unpaid)  # as of the extraction: a loan may still mature
    return rows, dpd


def build_loans(
    params: WorldParams,
    population: Population,
    book: ContractBook,
    field_seasons: pd.DataFrame,
    county_seasons: pd.DataFrame,
    rng: np.random.Generator,
) -> LoanBook:
    """Applications, true_pd, realised defaults and repayments for every loan season."""
    apps = _applications(params, book, population, county_seasons, rng)
    apps = apps.sort_values(["applied_at", "farmer_id"], ignore_index=True)
    knowns = _knowns(params, apps, population, field_seasons, county_seasons)
    apps["true_pd"] = true_pd(params, knowns, rng)
    apps["defaulted"] = _outcomes(params, apps, knowns, book.contracts, rng)
    apps.insert(0, "loan_id", make_ids("L", np.arange(len(apps)), id_width(len(apps))))
    apps["annual_rate"] = params.annual_rate
    repayments, dpd = _repayments(params, apps, book.contracts, population, rng)
    apps["days_past_due"] = dpd.astype("int64")
    # `defaulted` is the outcome the loan reaches; by the extraction it may not have yet
    matured = apps.due_at + pd.Timedelta(days=DPD_DEFAULT) < extracted_at(params)
    reached = apps.days_past_due >= DPD_DEFAULT
    assert (~reached | apps.defaulted).all() and (reached == apps.defaulted)[matured].all()
    return LoanBook(apps, repayments)
