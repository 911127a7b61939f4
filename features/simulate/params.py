"""Parameters of the simulated world: sizes, crops, counties and the causal coefficients.

Every number the simulator uses lives here, named and explained, so docs/simulation.md
can list them and a test can check the list is complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd

from features.errors import SimulationParameterError
from features.simulate.calendar import (
    FORWARD_SIGNING_DAYS,
    FORWARD_SIGNING_DOY,
    extraction_window,
    first_year_ending,
)


@dataclass(frozen=True)
class Crop:
    """Agronomy and economics of one crop."""

    name: str
    season_days: int  # planting to harvest
    peak_ndvi: float  # NDVI at full canopy for an average field in a normal season
    yield_kg_ha: float  # yield of an average farmer in a normal season
    price_per_kg_minor: int  # long-run wholesale price
    input_cost_per_ha_minor: int  # seed, fertiliser and crop protection for one hectare
    share: float  # share of fields sown to it


CROP_PARAMS: tuple[Crop, ...] = (
    Crop("maize", 125, 0.82, 3_200, 3_800, 2_600_000, 0.45),
    Crop("beans", 95, 0.74, 1_100, 11_000, 1_700_000, 0.25),
    Crop("potato", 110, 0.80, 14_000, 3_200, 5_500_000, 0.15),
    Crop("sorghum", 120, 0.70, 2_300, 4_200, 1_400_000, 0.15),
)
CROPS_BY_NAME = {c.name: c for c in CROP_PARAMS}

COUNTY_NAMES = (
    "Kerengo",
    "Lelmek",
    "Soriba",
    "Olkeri",
    "Tarambe",
    "Nyakoro",
    "Mbesi",
    "Kaptul",
    "Rongai",
    "Ewaso",
    "Siyabei",
    "Chemase",
    "Itumbe",
    "Maragwa",
    "Lomuke",
    "Ndaragu",
    "Kibwezo",
    "Ololua",
    "Muthia",
    "Sagana",
)


@dataclass(frozen=True)
class WorldParams:
    """Everything that shapes one simulated world. The seed fixes every random draw."""

    # --- size and calendar
    farmers: int = 2_000
    seasons: int = 4
    seed: int = 7
    counties: int = 4
    first_year: int = 2022
    # when the data were extracted (ISO 8601, UTC); None: 28 February after the last loan
    # season. Made by `WorldParams.ending`, which also sets first_year to match.
    extracted_on: str | None = None
    imagery_counties: int | None = None  # None: every county; 0: tables only
    # --- imagery
    pixel_size_m: float = 10.0
    revisit_days: int = 5
    imagery_start_doy: int = 32  # first scene each season: 1 February
    imagery_end_doy: int = 201  # last scene each season: 20 July
    cloud_clear_share: float = 0.40  # scenes with almost no cloud
    cloud_heavy_share: float = 0.25  # scenes mostly under cloud
    swath_edge_share: float = 0.15  # scenes with a fill wedge at the swath edge
    sensor_noise: float = 0.004  # reflectance noise per pixel and band
    # --- people and land
    coop_member_share: float = 0.55
    members_per_coop: int = 60
    shop_share_logit: float = 0.55  # logit of owning a shop for average wealth
    mean_extra_fields: float = 0.4  # Poisson mean of fields beyond the first
    median_field_ha: float = 0.7
    over_declaration: float = 0.12  # typical over-statement of area by an average farmer
    new_farmer_share: float = 0.30  # farmers who register during the simulated years
    # --- seasons and weather
    planting_doy: int = 69  # county mean planting date: 10 March
    drought_probability: float = 0.22  # per county and season
    yield_noise: float = 0.30  # sd of the idiosyncratic log-yield shock
    abandon_logit: float = -3.6  # logit of abandoning a field for an average farmer
    # --- markets and contracts
    signing_opens_doy: int = 10  # a season's contracts are signed from 10 January ...
    signing_days: int = 45  # ... over six weeks (a world `ending` at an instant: forward)
    buyers_per_farmer: float = 1 / 120
    shaky_buyer_share: float = 0.20  # buyers that often fail to pay
    harvest_price_sd: float = 0.18  # sd of the log harvest-price shock per crop and season
    individual_contract_share: float = 0.70  # non-members who sign a contract in a season
    contracted_share: tuple[float, float] = (0.55, 0.85)  # of expected production
    # --- loans
    apply_share: float = 0.65  # contracted farmers who apply in a season
    annual_rate: float = 0.18
    grace_days: int = 30  # due date after the delivery window
    risk: RiskCoefficients = field(default_factory=lambda: RiskCoefficients())

    def __post_init__(self) -> None:
        checks = {
            "farmers": self.farmers >= 50,
            "seasons": 3 <= self.seasons <= 12,
            "counties": 1 <= self.counties <= len(COUNTY_NAMES),
            "pixel_size_m": 2.0 <= self.pixel_size_m <= 60.0,
            "revisit_days": 1 <= self.revisit_days <= 30,
            "members_per_coop": self.members_per_coop >= 1,
            "coop_member_share": 0.0 <= self.coop_member_share <= 1.0,
            "signing_opens_doy": -300 <= self.signing_opens_doy <= 60,
            "signing_days": 1 <= self.signing_days <= 200,
        }
        for name, ok in checks.items():
            if not ok:
                raise SimulationParameterError(
                    f"{name} is out of range; got {getattr(self, name)!r} "
                    "(farmers >= 50, 3 <= seasons <= 12, 1 <= counties <= "
                    f"{len(COUNTY_NAMES)}, 2 <= pixel_size_m <= 60, 1 <= revisit_days <= 30, "
                    "members_per_coop >= 1, 0 <= coop_member_share <= 1, "
                    "-300 <= signing_opens_doy <= 60, 1 <= signing_days <= 200)"
                )
        if self.imagery_counties is not None and not 0 <= self.imagery_counties <= self.counties:
            raise SimulationParameterError(
                f"imagery_counties must be between 0 and counties ({self.counties}); "
                f"got {self.imagery_counties}"
            )

        if self.extracted_on is not None:
            when = pd.Timestamp(self.extracted_on)
            if when.tzinfo is None:
                raise SimulationParameterError(
                    f"extracted_on must carry its time zone; got {self.extracted_on!r} "
                    "(e.g. 2026-12-02T09:30:00+00:00)"
                )
            opens, closes = extraction_window(self)
            if not opens <= when < closes:
                raise SimulationParameterError(
                    f"extracted_on {when:%Y-%m-%d} does not fall in the world's calendar: "
                    f"with first_year {self.first_year} and {self.seasons} seasons it must be "
                    f"from {opens:%Y-%m-%d} to before {closes:%Y-%m-%d}. Make the parameters "
                    "with WorldParams.ending(when, ...), which sets first_year to match"
                )

    @classmethod
    def ending(cls, when: pd.Timestamp | str, **params: Any) -> WorldParams:
        """Parameters of a world extracted at `when` (for the demo: now), its seasons the
        ones before: the last loan season may still be maturing, the next being signed.
        Contracts are signed forward, from 1 November, unless `signing_opens_doy` says."""
        at = pd.Timestamp(when)
        at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
        # forward contracts, signed from November: whenever the extraction, a farmer may
        # have a contract to apply against (with January signing none is open in December)
        params = {"signing_opens_doy": FORWARD_SIGNING_DOY,
                  "signing_days": FORWARD_SIGNING_DAYS} | params  # fmt: skip
        seasons = params.get("seasons", cls.seasons)
        year = first_year_ending(at, seasons, params["signing_opens_doy"])
        return cls(**params, first_year=year, extracted_on=at.isoformat())

    @property
    def imaged_counties(self) -> int:
        """How many counties get satellite scenes."""
        return self.counties if self.imagery_counties is None else self.imagery_counties


@dataclass(frozen=True)
class RiskCoefficients:
    """Logit coefficients of default given the realised season (docs/simulation.md §5)."""

    intercept: float = -3.0
    skill: float = -0.40
    diligence: float = -0.50
    wealth: float = -0.40
    log_coverage: float = -1.40  # log of contract revenue over what is owed
    side_selling: float = 2.3
    buyer_failure: float = 2.4
    abandoned: float = 0.6
    side_sell_intercept: float = -2.6
    side_sell_price_gap: float = 9.0  # per unit of (harvest price / contract price - 1)
    side_sell_diligence: float = -1.0


def parameter_names() -> list[str]:
    """Names of every tunable parameter (for docs and the completeness test)."""
    world = [f.name for f in fields(WorldParams) if f.name != "risk"]
    return world + [f"risk.{f.name}" for f in fields(RiskCoefficients)]
