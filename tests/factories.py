"""Builders of test inputs and helpers shared by test modules (no test module imports
another): rasters, worlds, applications, keys, databases and a real server."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import typing
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import rasterio
import sqlalchemy as sa
from affine import Affine
from fastapi.testclient import TestClient
from pydantic import BaseModel

from features.simulate.params import WorldParams
from features.versions import ARRIVAL_COLUMNS, latest_versions
from scoring.decide.data import FeatureSource
from scoring.decide.policy import load_policy
from scoring.decide.state import ServiceState
from scoring.ledger.jobs import JobStore
from scoring.ledger.keys import create_key
from scoring.ledger.repo import Ledger
from training.config import TrainingSettings

TINY = WorldParams(farmers=240, seasons=3, counties=2, seed=11)  # the tiny world's parameters


def copy_store(src: Path, dst: Path) -> Path:
    """A private copy of a store to append to (copied, not linked: Delta rewrites files
    such as `_last_checkpoint` in place)."""
    shutil.copytree(src, dst)
    return dst


def copy_world(src: Path, dst: Path) -> Path:
    """Copy a data directory (scenes hard-linked where possible) for a test to break."""
    shutil.copytree(src, dst, copy_function=_link_or_copy)
    return dst


def _link_or_copy(src: str, dst: str) -> None:
    try:
        Path(dst).hardlink_to(src)
    except OSError:
        shutil.copy2(src, dst)


def make_scene(
    path: Path,
    array: np.ndarray,
    *,
    crs: str | None = "EPSG:32736",
    nodata: float | None = 0,
    transform: Affine | None = None,
    descriptions: tuple[str, ...] = (),
) -> Path:
    """Write `array` (bands, rows, cols) as a GeoTIFF; crs=None writes one without a CRS."""
    bands = array if array.ndim == 3 else array[None]
    profile = {
        "driver": "GTiff",
        "width": bands.shape[2],
        "height": bands.shape[1],
        "count": bands.shape[0],
        "dtype": bands.dtype.name,
        "transform": transform or Affine(10, 0, 500_000, 0, -10, 9_900_000),
        "nodata": nodata,
    }
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(bands)
        for i, name in enumerate(descriptions, start=1):
            ds.set_band_description(i, name)
    return path


def make_vrt(path: Path, *bands: Path) -> Path:
    """A VRT stacking single-band files into one multi-band scene (what gdalbuildvrt does)."""
    with rasterio.open(bands[0]) as ds:
        width, height, crs, t = ds.width, ds.height, ds.crs.to_wkt(), ds.transform
    xml = "".join(
        f'<VRTRasterBand dataType="UInt16" band="{i}"><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">{src}</SourceFilename>'
        f"<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand>"
        for i, src in enumerate(bands, start=1)
    )
    path.write_text(
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}"><SRS>{crs}</SRS>'
        f"<GeoTransform>{t.c}, {t.a}, {t.b}, {t.f}, {t.d}, {t.e}</GeoTransform>{xml}</VRTDataset>"
    )
    return path


async def decide_request(batcher, body, key, idempotency_key: str | None) -> dict:
    """A ScoreRequest through the batcher as the score route sends it."""
    return await batcher.decide(
        body.to_application(), request=body.model_dump(), key=key, idempotency_key=idempotency_key
    )


POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_or_skip() -> str:
    """The CI PostgreSQL, or a skip with the reason (a failure where it is required)."""
    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        if os.environ.get("AGRICREDIT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here but not reachable at {POSTGRES_URL}: {exc}")
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL} (CI runs these against it)")
    finally:
        engine.dispose()
    return POSTGRES_URL


def fresh_postgres_url() -> str:
    """A new schema of the test database, as a URL whose connections use it."""
    base = postgres_or_skip()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    return f"{base}?options=-csearch_path%3D{schema}"


def bearer(state: ServiceState, role: str = "lender", coop_id: str | None = None) -> dict:
    """Authorization header of a new key."""
    _, secret = create_key(state.ledger.keys, role=role, name=f"test {role}", coop_id=coop_id)
    return {"Authorization": f"Bearer {secret}"}


def coop_contracts(source, *, financed_only: bool = True) -> list[tuple[str, str]]:
    """(coop_id, contract_id) of co-op contracts open at the data's as-of (with a buyer the
    lender still finances, unless `financed_only` is False), largest co-op first."""
    c = source.inputs.contracts
    t = source.data_as_of
    suspended = load_policy().knockouts.suspended_buyer_grades if financed_only else []
    open_ = c[
        (c["party_type"] == "coop")
        & (c["signed_at"] < t)
        & (c["closed_at"].isna() | (c["closed_at"] >= t))
        & ~c["buyer_id"].map(source.buyer_grades).isin(suspended)
    ]
    latest = open_.sort_values("signed_at").groupby("coop_id")["contract_id"].last()
    pairs = [(str(k), str(v)) for k, v in latest.items()]
    return sorted(pairs, key=lambda p: -len(source.coop_members[p[0]]))


def every_member_job(store: JobStore, source, coop: tuple[str, str], *, key_id: str,
                     org_id: str | None = None, idempotency_key: str | None = None,
                     chunk_members: int | None = None):  # fmt: skip
    """A new job, held by the caller, pre-approving every member of the co-op (in chunks of
    `chunk_members`, as the route stores it, if given)."""
    coop_id, contract_id = coop
    request = {"contract_id": contract_id, "members": None, "as_of": source.data_as_of.isoformat()}
    if chunk_members is not None:
        request["chunk_members"] = chunk_members
    job, _ = store.create(key_id=key_id, org_id=org_id or key_id,
                          idempotency_key=idempotency_key, coop_id=coop_id,
                          contract_id=contract_id, request=request,
                          total=len(source.coop_members[coop_id]), run_now=True)  # fmt: skip
    return job


def applications(source: FeatureSource, served_world, n: int = 20) -> list[dict]:
    """Bodies for farmers with a contract open at the data's as-of time."""
    snap = pd.read_parquet(served_world / "features" / "snapshot.parquet")
    snap = snap[snap["contract_id"].notna() & (snap["contract_id"] != "nan")]
    supplier = next(s for s, approved in source.approved_suppliers.items() if approved)
    return [
        {
            "farmer_id": r.farmer_id,
            "contract_id": r.contract_id,
            "requested_minor": 800_000,
            "inputs": [{"supplier_id": supplier, "item": "seed", "amount_minor": 800_000}],
        }
        for r in snap.head(n).itertuples()
    ]


def json_rows(frame: pd.DataFrame) -> list[dict]:
    """A frame's rows as a JSON body sends them: missing values null, instants ISO 8601."""
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [{k: v.isoformat() if isinstance(v, pd.Timestamp) else v for k, v in r.items()}
            for r in rows]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(
    world: Path,
    training,
    ledger_url: str,
    logs: Path,
    workers: int = 1,
    extra_env=None,
    serve_args: tuple[str, ...] = (),
):
    """`agricredit serve` on a free loopback port, with a lender and a scientist key."""
    port = free_port()
    book = Ledger(ledger_url)
    book.migrate()
    _, lender = create_key(book.keys, role="lender", name="e2e")
    _, scientist = create_key(book.keys, role="scientist", name="e2e")
    book.close()
    env = (
        os.environ
        | {
            "AGRICREDIT_DATA_DIR": str(world),
            "AGRICREDIT_DATABASE_URL": ledger_url,
            "AGRICREDIT_TRACKING_URI": training.tracking_uri,
            "AGRICREDIT_ARTIFACT_ROOT": str(training.artifact_root),
        }
        | (extra_env or {})
    )
    cli = str(Path(sys.executable).parent / "agricredit")
    # a file, not a pipe: nobody reads a pipe here, and a full one would stall the server
    log = open(logs / "serve.log", "wb")
    proc = subprocess.Popen(
        [cli, "serve", "--port", str(port), "--workers", str(workers), *serve_args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail(f"server not ready: {(logs / 'serve.log').read_text()[-2000:]}")
        yield base, {"lender": lender, "scientist": scientist}, ledger_url, env
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@dataclass(frozen=True)
class Served:
    """A world ready to serve: data with features, and a store with a champion."""

    world: Path
    training: TrainingSettings
    root: Path


def unexpected_keys(model: type[BaseModel], data: object, where: str = "") -> list[str]:
    """Keys of `data` (nested too) that the model does not declare: an answer with one has
    drifted from its declared shape even though it validates."""
    if not isinstance(data, dict):
        return []
    out = [f"{where}{k}" for k in data if k not in model.model_fields]
    for name, field in model.model_fields.items():
        if name in data:
            out += _nested_unexpected(field.annotation, data[name], f"{where}{name}.")
    return out


def _nested_unexpected(annotation: object, value: object, where: str) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return unexpected_keys(annotation, value, where)
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is list and isinstance(value, list):
        return [
            k for i, v in enumerate(value) for k in _nested_unexpected(args[0], v, f"{where}{i}.")
        ]
    if typing.get_origin(annotation) is dict and isinstance(value, dict):
        return [
            k for key, v in value.items() for k in _nested_unexpected(args[1], v, f"{where}{key}.")
        ]
    return [k for arg in args for k in _nested_unexpected(arg, value, where)]


def declared_route(app, method: str, path: str) -> str | None:
    """The OpenAPI path template that answers this method and path."""
    for template, operations in app.openapi()["paths"].items():
        if method.lower() in operations and re.fullmatch(
            re.sub(r"\{[^}]+\}", "[^/]+", template), path
        ):
            return template
    return None


def declared_models(app, method: str, template: str, status: int) -> list[type[BaseModel]]:
    """The response models the app's OpenAPI document names for this status (a 2xx falls
    back to the route's 200; several for a union), none when it names no JSON model."""
    from scoring.api import schemas

    responses = app.openapi()["paths"][template][method.lower()]["responses"]
    entry = responses.get(str(status)) or (responses.get("200") if status < 300 else None)
    content = (entry or {}).get("content", {})
    schema = content.get("application/json") or content.get("application/problem+json") or {}
    schema = schema.get("schema", {})
    refs = [schema, *schema.get("anyOf", [])]
    names = [r["$ref"].rsplit("/", 1)[-1] for r in refs if "$ref" in r]
    return [getattr(schemas, n) for n in names if hasattr(schemas, n)]


def _fits(model: type[BaseModel], body) -> bool:
    try:
        model.model_validate(body)
    except ValueError:
        return False
    return not unexpected_keys(model, body)


def needs_idempotency_key(method: str, path: str) -> bool:
    """The routes that refuse a request without an Idempotency-Key."""
    return method.upper() == "POST" and (path == "/v1/score" or path.endswith("/preapprovals"))


def fill_idempotency_key(request: httpx.Request) -> None:
    """An httpx request hook: a fresh Idempotency-Key on a new application or run that was
    sent without one, as a lender's system sends it (tests of retries send their own)."""
    if needs_idempotency_key(request.method, request.url.path):
        request.headers.setdefault("Idempotency-Key", f"test-{uuid.uuid4()}")


def api_client(base: str, **kwargs) -> httpx.Client:
    """An HTTP client of a running server that sends a fresh Idempotency-Key where the
    caller gave none (`fill_idempotency_key`)."""
    return httpx.Client(base_url=base, event_hooks={"request": [fill_idempotency_key]}, **kwargs)


class ValidatingClient(TestClient):
    """A TestClient that checks every answer against what the app declares: a 2xx body
    against the route's response model (no undeclared keys either), every error body
    against the problem document. `answered` collects the (method, route) pairs seen.

    Like `api_client` it sends a fresh Idempotency-Key where a request needs one and has
    none, unless `fills_idempotency_keys` is turned off (the tests of a missing key)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.answered: set[tuple[str, str]] = set()
        self.fills_idempotency_keys = True

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        from scoring.api import schemas

        path = httpx.URL(str(url)).path
        if self.fills_idempotency_keys and needs_idempotency_key(method, path):
            headers = dict(kwargs.get("headers") or {})
            if not any(k.lower() == "idempotency-key" for k in headers):
                headers["Idempotency-Key"] = f"test-{uuid.uuid4()}"
            kwargs["headers"] = headers
        response = super().request(method, url, *args, **kwargs)
        template = declared_route(self.app, method, path)
        if template is None:
            return response  # the docs pages, an unknown path (404 problem from Starlette)
        self.answered.add((method.upper(), template))
        kind = response.headers.get("content-type", "")
        status = response.status_code
        statuses = self.app.openapi()["paths"][template][method.lower()]["responses"]
        assert str(status) in statuses or (status < 300 and "200" in statuses), (
            f"{method} {template} answered {status}, which its OpenAPI entry does not declare "
            f"(it declares {sorted(statuses)})"
        )
        declared = declared_models(self.app, method, template, status)
        if status >= 400 and declared != [schemas.Readiness]:
            assert kind.startswith("application/problem+json"), (
                f"{method} {path} answered {status} without a problem body: {response.text}"
            )
            models = [schemas.Problem]
        elif kind.startswith("application/json"):
            models = declared
            assert models, (
                f"{method} {path} answers JSON ({response.status_code}) but declares no model"
            )
        else:
            return response
        body = response.json()
        if len(models) == 1:
            models[0].model_validate(body)
            extra = unexpected_keys(models[0], body)
            assert not extra, f"{method} {path}: keys {extra} are not in {models[0].__name__}"
        else:
            assert any(_fits(m, body) for m in models), (
                f"{method} {path}: the body fits none of {[m.__name__ for m in models]}"
            )
        return response


# The stub champions: real model files whose probability of default is written down, not
# learned, so the API, policy, pre-approval and end-to-end tests do not depend on what
# training happens to learn. The scripted one gives STUB_PD_FEW_ORDERS to a farmer with
# fewer than STUB_ORDERS orders in the last year (or no shop: missing reads as none) and
# STUB_PD_MANY_ORDERS to the others; the constant one gives every farmer the same PD.
STUB_FEATURE = "orders_count_365d"
STUB_ORDERS = 40.0
STUB_PD_FEW_ORDERS = 0.40  # declined by the policy's cut-offs
STUB_PD_MANY_ORDERS = 0.02  # approved unless a knock-out or missing data says otherwise


def write_stub_bundle(directory: Path, *, pd_few: float, pd_many: float) -> str:
    """A model bundle (model.txt and the rest, as training writes one) with a PD of `pd_few`
    below STUB_ORDERS orders and `pd_many` from there on; returns the model file's SHA-256.

    LightGBM learns it from a matrix with every other feature constant: each tree can split
    only on STUB_FEATURE, and Newton steps on exact group frequencies converge to their
    log-odds (to within 1e-6 of the PD written down); the calibrator is the identity.
    """
    import lightgbm as lgb

    from features.registry import FEATURES
    from training.artifact import write_bundle
    from training.calibration import Calibrator
    from training.population import Population
    from training.scaling import ScoreScaler

    names = [f.name for f in FEATURES]
    rows = 4000
    x = np.zeros((rows, len(names)))
    many = np.arange(rows) % 2 == 1
    x[:, names.index(STUB_FEATURE)] = np.where(many, STUB_ORDERS + 10, STUB_ORDERS - 10)
    y = np.zeros(rows)
    for group, rate in ((~many, pd_few), (many, pd_many)):
        members = np.flatnonzero(group)
        y[members[: round(rate * len(members))]] = 1
    params = {"objective": "binary", "num_leaves": 2, "learning_rate": 1.0,
              "min_data_in_leaf": 1, "min_sum_hessian_in_leaf": 0.0, "lambda_l2": 0.0,
              "num_threads": 1, "verbose": -1, "seed": 1}  # fmt: skip
    booster = lgb.train(params, lgb.Dataset(x, y, feature_name=names), num_boost_round=30)
    return write_bundle(
        directory,
        booster=booster,
        calibrator=Calibrator.from_dict({"method": "platt", "a": 1.0, "b": 0.0}),
        scaler=ScoreScaler(),
        features=list(FEATURES),
        population=Population.describe(pd.DataFrame(x, columns=names)),
    )


def register_champion(directory: Path, sha256: str, settings: TrainingSettings) -> str:
    """Record a bundle directory as a run, register it and make it the champion."""
    import mlflow

    from training.promotion import record_review
    from training.registry import BUNDLE_PATH, get_client, register_version
    from training.tracking import use_experiment

    client = get_client(settings)
    use_experiment("stub-champions", settings)
    with mlflow.start_run(run_name=directory.name) as run:
        mlflow.log_artifacts(str(directory), artifact_path=BUNDLE_PATH)
    version = register_version(client, run.info.run_id, sha256)
    record_review(client, version, settings, why=f"stub champion {directory.name} of the tests")
    return version


def world_contracts(world: Path) -> pd.DataFrame:
    """A world's contracts as they stand at its extraction: the latest version of each
    (the file holds every version, each with its recorded_at)."""
    versions = pd.read_parquet(world / "contracts.parquet")
    return latest_versions("contracts", ("contract_id",), versions).drop(
        columns=list(ARRIVAL_COLUMNS)
    )


def as_sent(contracts: pd.DataFrame) -> pd.DataFrame:
    """Contract rows as a feed sends them: without what the product records on commit."""
    return contracts.drop(columns=["recorded_at", *ARRIVAL_COLUMNS], errors="ignore")
