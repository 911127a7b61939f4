"""Input tables: one declaration per table of DESIGN §4, enforced on load.

A declaration lists columns (kind, unit, nullability, allowed values, range), the key and
the foreign keys. Timestamps are timezone-aware UTC; a naive timestamp is read as UTC.
Money is integer minor currency units (`*_minor`); one currency per deployment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnKind = Literal["str", "int", "float", "datetime", "bool"]

CROPS = ("maize", "beans", "potato", "sorghum")


@dataclass(frozen=True)
class ColumnSpec:
    """One column of an input table."""

    name: str
    kind: ColumnKind
    description: str
    unit: str = ""
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    required: bool = True  # False: the column may be absent (e.g. simulator-only truth)


@dataclass(frozen=True)
class ForeignKey:
    """`column` of this table must match `ref_column` of `ref_table` (nulls allowed)."""

    column: str
    ref_table: str
    ref_column: str


@dataclass(frozen=True)
class TableSpec:
    """The declaration of one input table: columns, key and foreign keys."""

    name: str
    description: str
    key: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]
    foreign_keys: tuple[ForeignKey, ...] = field(default_factory=tuple)
    required: bool = True

    def column(self, name: str) -> ColumnSpec:
        """Return the declaration of column `name`."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"table {self.name} declares no column {name!r}")


def _id(name: str, what: str, nullable: bool = False) -> ColumnSpec:
    return ColumnSpec(name, "str", f"identifier of the {what}", nullable=nullable)


def _at(name: str, what: str, nullable: bool = False) -> ColumnSpec:
    return ColumnSpec(name, "datetime", what, unit="UTC", nullable=nullable)


def _money(name: str, what: str, nullable: bool = False) -> ColumnSpec:
    return ColumnSpec(
        name, "int", what, unit="minor currency units", nullable=nullable, min_value=0
    )


FARMERS = TableSpec(
    "farmers",
    "Registered farmers; gender and birth year serve fairness audits only.",
    key=("farmer_id",),
    columns=(
        _id("farmer_id", "farmer"),
        _id("coop_id", "co-op the farmer belongs to", nullable=True),
        ColumnSpec("county", "str", "county of residence"),
        _at("registered_at", "when the farmer joined the platform"),
        ColumnSpec(
            "gender",
            "str",
            "protected attribute, never a model input",
            nullable=True,
            allowed=("female", "male", "other"),
        ),
        ColumnSpec(
            "birth_year",
            "int",
            "protected attribute, never a model input",
            nullable=True,
            min_value=1900,
            max_value=2015,
        ),
    ),
    foreign_keys=(ForeignKey("coop_id", "coops", "coop_id"),),
)

COOPS = TableSpec(
    "coops",
    "Farmer co-operatives that sign contracts on behalf of their members.",
    key=("coop_id",),
    columns=(
        _id("coop_id", "co-op"),
        ColumnSpec("name", "str", "registered name"),
        ColumnSpec("county", "str", "county of the co-op's office"),
        _at("registered_at", "when the co-op joined the platform"),
    ),
)

FIELDS = TableSpec(
    "fields",
    "Declared field boundaries (GeoJSON properties; geometry checked apart).",
    key=("field_id",),
    columns=(
        _id("field_id", "field"),
        _id("farmer_id", "farmer who farms the field"),
        ColumnSpec("crop", "str", "declared main crop", allowed=CROPS),
        ColumnSpec(
            "declared_area_ha",
            "float",
            "area the farmer declares",
            unit="ha",
            min_value=0.01,
            max_value=500.0,
        ),
    ),
    foreign_keys=(ForeignKey("farmer_id", "farmers", "farmer_id"),),
)

ORDERS = TableSpec(
    "orders",
    "E-commerce orders in which the farmer is the seller.",
    key=("order_id",),
    columns=(
        _id("order_id", "order"),
        _id("farmer_id", "selling farmer"),
        _id("customer_id", "customer who bought"),
        _at("placed_at", "when the order was placed"),
        ColumnSpec("category", "str", "product category"),
        ColumnSpec("quantity_kg", "float", "quantity sold", unit="kg", min_value=0),
        _money("amount_minor", "order value"),
        ColumnSpec(
            "status", "str", "final order status", allowed=("completed", "refunded", "cancelled")
        ),
        ColumnSpec(
            "rating",
            "float",
            "customer rating, when given",
            unit="stars",
            nullable=True,
            min_value=1,
            max_value=5,
        ),
    ),
    foreign_keys=(ForeignKey("farmer_id", "farmers", "farmer_id"),),
)

BUYERS = TableSpec(
    "buyers",
    "Off-takers that sign purchase contracts (processors, retailers' suppliers).",
    key=("buyer_id",),
    columns=(
        _id("buyer_id", "buyer"),
        ColumnSpec("name", "str", "registered name"),
        ColumnSpec("grade", "str", "lender's grade of the buyer", allowed=("A", "B", "C", "D")),
        _at("registered_at", "when the buyer joined the platform"),
    ),
)

CONTRACTS = TableSpec(
    "contracts",
    "Supply-chain purchase contracts: the receivable a loan is repaid from.",
    key=("contract_id",),
    columns=(
        _id("contract_id", "contract"),
        _id("buyer_id", "buyer"),
        ColumnSpec("party_type", "str", "who sells under the contract", allowed=("farmer", "coop")),
        _id("farmer_id", "selling farmer (party_type farmer)", nullable=True),
        _id("coop_id", "selling co-op (party_type coop)", nullable=True),
        ColumnSpec("crop", "str", "contracted crop", allowed=CROPS),
        ColumnSpec("quantity_kg", "float", "contracted quantity", unit="kg", min_value=1),
        ColumnSpec(
            "price_per_kg_minor",
            "int",
            "contracted price",
            unit="minor currency units per kg",
            min_value=1,
        ),
        _at("signed_at", "when the contract was signed"),
        _at("delivery_start", "first day of the delivery window"),
        _at("delivery_end", "last day of the delivery window"),
        ColumnSpec(
            "status", "str", "status at extraction time", allowed=("active", "closed", "cancelled")
        ),
        ColumnSpec(
            "delivered_kg",
            "float",
            "delivered quantity, once closed",
            unit="kg",
            nullable=True,
            min_value=0,
        ),
        _at("closed_at", "when deliveries were closed", nullable=True),
        _at("payment_due_at", "when the buyer owed payment", nullable=True),
        _at("paid_at", "when the buyer paid, if it did", nullable=True),
        _money("paid_minor", "amount the buyer paid", nullable=True),
    ),
    foreign_keys=(
        ForeignKey("buyer_id", "buyers", "buyer_id"),
        ForeignKey("farmer_id", "farmers", "farmer_id"),
        ForeignKey("coop_id", "coops", "coop_id"),
    ),
)

MARKET_PRICES = TableSpec(
    "market_prices",
    "Weekly wholesale market price per crop.",
    key=("crop", "observed_at"),
    columns=(
        ColumnSpec("crop", "str", "crop", allowed=CROPS),
        _at("observed_at", "market day"),
        ColumnSpec(
            "price_per_kg_minor",
            "int",
            "wholesale price",
            unit="minor currency units per kg",
            min_value=1,
        ),
    ),
)

SCENES = TableSpec(
    "scenes",
    "Satellite scenes: GeoTIFF (or VRT) path relative to the data directory.",
    key=("scene_id",),
    columns=(
        _id("scene_id", "scene"),
        _at("acquired_at", "acquisition time"),
        ColumnSpec("path", "str", "raster file, relative to the data directory"),
        ColumnSpec("red_band", "int", "1-based band index of red reflectance", min_value=1),
        ColumnSpec("nir_band", "int", "1-based band index of near-infrared", min_value=1),
        ColumnSpec(
            "blue_band", "int", "1-based band index of blue (for EVI)", nullable=True, min_value=1
        ),
        ColumnSpec(
            "mask_band",
            "int",
            "1-based band index of the cloud/quality mask",
            nullable=True,
            min_value=1,
        ),
        ColumnSpec(
            "mask_clear_values",
            "str",
            "comma-separated mask values meaning clear sky (e.g. '1' or '4,5,6')",
            nullable=True,
        ),
        ColumnSpec("nodata", "float", "fill value when the file declares none", nullable=True),
        ColumnSpec(
            "reflectance_scale",
            "float",
            "digital number to reflectance factor",
            nullable=True,
            min_value=0,
        ),
        ColumnSpec("reflectance_offset", "float", "added after scaling", nullable=True),
    ),
)

SUPPLIERS = TableSpec(
    "suppliers",
    "Input suppliers; only approved ones receive directed disbursements.",
    key=("supplier_id",),
    columns=(
        _id("supplier_id", "supplier"),
        ColumnSpec("name", "str", "trading name"),
        ColumnSpec("county", "str", "county served", nullable=True),
        ColumnSpec(
            "category",
            "str",
            "what it sells",
            allowed=("seed", "fertiliser", "crop_protection", "tools"),
        ),
        ColumnSpec("approved", "bool", "approved for directed disbursement"),
        _at("approved_at", "when it was approved", nullable=True),
    ),
)

LOANS = TableSpec(
    "loans",
    "Input loans granted on the platform: the source of labels.",
    key=("loan_id",),
    columns=(
        _id("loan_id", "loan"),
        _id("farmer_id", "borrowing farmer"),
        _id("contract_id", "contract the loan is repaid from"),
        _at("applied_at", "application time: the as-of time of its features"),
        _at("disbursed_at", "when suppliers were paid"),
        _money("amount_minor", "principal"),
        ColumnSpec(
            "annual_rate",
            "float",
            "nominal annual interest rate",
            unit="fraction",
            min_value=0,
            max_value=1,
        ),
        _at("due_at", "when the loan falls due"),
        ColumnSpec(
            "days_past_due", "int", "worst days past due at extraction", unit="days", min_value=0
        ),
        ColumnSpec("defaulted", "bool", "reached 90 or more days past due"),
        ColumnSpec(
            "true_pd",
            "float",
            "simulator only: probability of default given all that was knowable",
            nullable=True,
            min_value=0,
            max_value=1,
            required=False,
        ),
    ),
    foreign_keys=(
        ForeignKey("farmer_id", "farmers", "farmer_id"),
        ForeignKey("contract_id", "contracts", "contract_id"),
    ),
)

REPAYMENTS = TableSpec(
    "repayments",
    "Repayments received against loans.",
    key=("repayment_id",),
    columns=(
        _id("repayment_id", "repayment"),
        _id("loan_id", "loan repaid"),
        _at("paid_at", "when the money arrived"),
        ColumnSpec(
            "amount_minor", "int", "amount received", unit="minor currency units", min_value=1
        ),
    ),
    foreign_keys=(ForeignKey("loan_id", "loans", "loan_id"),),
)

TABLES: tuple[TableSpec, ...] = (
    COOPS,
    FARMERS,
    FIELDS,
    ORDERS,
    BUYERS,
    CONTRACTS,
    MARKET_PRICES,
    SCENES,
    SUPPLIERS,
    LOANS,
    REPAYMENTS,
)
TABLES_BY_NAME = {t.name: t for t in TABLES}

# Where each table lives in a data directory; tables may be Parquet or CSV.
FIELDS_FILE = "fields.geojson"
TABLE_SUFFIXES = (".parquet", ".csv")


def get_table(name: str) -> TableSpec:
    """Return the declaration of table `name`."""
    try:
        return TABLES_BY_NAME[name]
    except KeyError:
        known = ", ".join(TABLES_BY_NAME)
        raise KeyError(f"no input table {name!r}; known tables: {known}") from None
