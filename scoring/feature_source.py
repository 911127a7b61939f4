"""The data the service decides from, loaded once: validated tables, the index series, the
reference tables, and each farmer's rows found by position rather than by search."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from features.build import (
    SERIES_FILE,
    Inputs,
    Reference,
    build_reference,
    field_table,
    latest_event,
)
from features.errors import TableValidationError
from features.history import loan_settlements
from features.satellite.series import build_index_series
from features.satellite.zonal import FieldSet
from features.validation import validate_dir


def _positions(frame: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    return {str(k): v for k, v in frame.groupby(column, sort=False).indices.items()}


@dataclass
class FeatureSource:
    """Inputs of every farmer plus what a decision looks up besides features."""

    inputs: Inputs
    reference: Reference
    suppliers: pd.DataFrame
    settlements: pd.Series  # settled_at by loan_id
    data_as_of: pd.Timestamp  # just after the latest event in the data
    _orders: dict[str, np.ndarray]
    _series: dict[str, np.ndarray]

    @classmethod
    def load(cls, data_dir: Path | str) -> FeatureSource:
        """Validate DATA_DIR and load it; the index series comes from features/ if built.

        Raises:
            TableValidationError: with every problem, when the data are not valid.
        """
        data_dir = Path(data_dir)
        report = validate_dir(data_dir, check_rasters=False)
        if not report.ok:
            raise TableValidationError(report.problems)
        t = report.tables
        fields = t["fields"]
        fieldset = FieldSet(
            fields["field_id"].to_numpy(), fields["geometry"].to_numpy(), fields.attrs["crs"]
        )
        built = data_dir / "features" / SERIES_FILE
        series = (
            pd.read_parquet(built)
            if built.exists()
            else build_index_series(data_dir, t["scenes"], fieldset)
        )
        inputs = Inputs(
            farmers=t["farmers"],
            fields=field_table(fields, t["farmers"], fieldset),
            orders=t["orders"],
            contracts=t["contracts"],
            loans=t["loans"],
            repayments=t["repayments"],
            buyers=t["buyers"],
            market_prices=t["market_prices"],
            series=series,
        )
        settled = loan_settlements(inputs.loans, inputs.repayments)
        return cls(
            inputs=inputs,
            reference=build_reference(inputs),
            suppliers=t["suppliers"],
            settlements=settled.set_index("loan_id")["settled_at"],
            data_as_of=latest_event(inputs) + pd.Timedelta(seconds=1),
            _orders=_positions(inputs.orders, "farmer_id"),
            _series=_positions(inputs.series, "field_id"),
        )

    def farmer(self, farmer_id: str) -> pd.Series | None:
        """The farmer's row, or None if unknown."""
        rows = self.inputs.farmers[self.inputs.farmers["farmer_id"] == farmer_id]
        return None if rows.empty else rows.iloc[0]

    def contract(self, contract_id: str) -> pd.Series | None:
        """The contract's row, or None if unknown."""
        rows = self.inputs.contracts[self.inputs.contracts["contract_id"] == contract_id]
        return None if rows.empty else rows.iloc[0]

    def for_farmers(self, farmer_ids: list[str]) -> Inputs:
        """The inputs restricted to some farmers (their contracts and co-ops' included)."""
        i = self.inputs
        farmers = i.farmers[i.farmers["farmer_id"].isin(farmer_ids)]
        fields = i.fields[i.fields["farmer_id"].isin(farmer_ids)]
        loans = i.loans[i.loans["farmer_id"].isin(farmer_ids)]
        coops = farmers["coop_id"].dropna().unique()
        empty = np.zeros(0, dtype=np.int64)
        order_pos = np.concatenate([self._orders.get(f, empty) for f in farmer_ids] or [empty])
        series_pos = np.concatenate(
            [self._series.get(str(f), empty) for f in fields["field_id"]] or [empty]
        )
        c = i.contracts
        return replace(
            i,
            farmers=farmers,
            fields=fields,
            orders=i.orders.iloc[np.sort(order_pos)],
            contracts=c[c["farmer_id"].isin(farmer_ids) | c["coop_id"].isin(coops)],
            loans=loans,
            repayments=i.repayments[i.repayments["loan_id"].isin(loans["loan_id"])],
            series=i.series.iloc[np.sort(series_pos)],
        )
