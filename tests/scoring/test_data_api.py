"""POST /v1/data/{table}: a platform feed's batches, committed whole to the arrival log of
the store the service reads, under a `data` key."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import shapely
import shapely.geometry

from features.arrival_log import ArrivalLog
from features.ingest import load_data_dir
from scoring.api.app import create_app
from tests.factories import ValidatingClient, bearer, copy_store


@pytest.fixture(scope="module")
def loaded_store(served, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("data-api") / "store"
    load_data_dir(served.world, store)
    return store


@pytest.fixture
def feed(state, loaded_store: Path, tmp_path: Path):
    store = copy_store(loaded_store, tmp_path / "store")
    state.settings = state.settings.model_copy(update={"data_dir": store})
    with ValidatingClient(create_app(state.settings, state=state)) as client:
        yield client, store


def _orders(served, ids: list[str]) -> list[dict]:
    orders = pd.read_parquet(served.world / "orders.parquet").head(len(ids)).copy()
    orders = orders.drop(columns=["recorded_at"])  # the product sets it when it commits
    orders["order_id"] = ids
    orders["placed_at"] = orders["placed_at"].map(lambda t: t.isoformat())
    return orders.astype(object).where(orders.notna(), None).to_dict("records")


def test_a_feed_batch_is_committed_once_and_readable_from_the_log(feed, state, served):
    client, store = feed
    key = bearer(state, "data")
    batch = {"batch_id": "feed-1", "rows": _orders(served, ["API-1", "API-2"])}

    first = client.post("/v1/data/orders", json=batch, headers=key)
    again = client.post("/v1/data/orders", json=batch, headers=key)

    assert first.status_code == 201, first.text
    assert first.json()["rows"] == 2 and first.json()["written"] is True
    assert again.status_code == 200 and again.json()["written"] is False
    assert again.json()["version"] == first.json()["version"]
    ids = ArrivalLog(store).read("orders")["order_id"]
    assert (ids.isin(["API-1", "API-2"])).sum() == 2


def test_a_bad_feed_batch_gets_every_problem_and_writes_nothing(feed, state, served):
    client, store = feed
    rows = _orders(served, ["API-3", "API-4"])
    rows[0]["status"] = "lost"
    rows[1]["farmer_id"] = "F-NOBODY"
    before = ArrivalLog(store).version("orders")

    refused = client.post("/v1/data/orders", json={"batch_id": "bad", "rows": rows},
                          headers=bearer(state, "data"))  # fmt: skip

    assert refused.status_code == 422 and refused.json()["code"] == "invalid_batch"
    found = {(p["row"], p["column"]) for p in refused.json()["problems"]}
    assert {(1, "status"), (2, "farmer_id")} <= found
    assert ArrivalLog(store).version("orders") == before


def test_a_feed_cannot_say_when_its_rows_were_recorded(feed, state, served):
    client, _ = feed
    rows = [r | {"recorded_at": "2020-01-01T00:00:00Z"} for r in _orders(served, ["API-7"])]

    refused = client.post("/v1/data/orders", json={"batch_id": "r", "rows": rows},
                          headers=bearer(state, "data"))  # fmt: skip

    assert refused.status_code == 422
    assert [p["column"] for p in refused.json()["problems"]] == ["recorded_at"]


def test_only_a_data_key_appends_and_only_to_input_tables(feed, state, served):
    client, _ = feed
    batch = {"batch_id": "x", "rows": _orders(served, ["API-5"])}

    assert client.post("/v1/data/orders", json=batch, headers=bearer(state)).status_code == 403
    assert client.post("/v1/data/orders", json=batch).status_code == 401
    assert (
        client.put("/v1/data/files/a.tif", content=b"x", headers=bearer(state)).status_code == 403
    )
    unknown = client.post("/v1/data/ordres", json=batch, headers=bearer(state, "data"))
    assert unknown.status_code == 404 and "no input table 'ordres'" in unknown.json()["detail"]


def _scene_rows(served, store: Path, names: list[str]) -> tuple[list[dict], bytes]:
    """New scene rows named `names`, each a copy of the world's first scene, and its bytes."""
    scenes = pd.read_parquet(served.world / "scenes.parquet").drop(columns=["recorded_at"])
    first = scenes.iloc[[0] * len(names)].copy()
    first["scene_id"] = [f"FEED-{i}" for i in range(len(names))]
    first["path"] = names
    first["acquired_at"] = first["acquired_at"].map(lambda t: t.isoformat())
    rows = first.astype(object).where(first.notna(), None).to_dict("records")
    return rows, (store / scenes["path"].iloc[0]).read_bytes()


def test_a_feed_uploads_a_scenes_rasters_then_commits_its_rows(feed, state, served):
    client, store = feed
    key = bearer(state, "data")
    rows, raster = _scene_rows(served, store, ["scenes/feed/day-1.tif"])

    uploaded = client.put("/v1/data/files/scenes/feed/day-1.tif", content=raster, headers=key)
    sent = client.post("/v1/data/scenes", json={"batch_id": "scenes-1", "rows": rows},
                       headers=key)  # fmt: skip
    again = client.post("/v1/data/scenes", json={"batch_id": "scenes-1", "rows": rows},
                        headers=key)  # fmt: skip

    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["bytes"] == len(raster)
    assert sent.status_code == 201, sent.text
    assert (store / "scenes/feed/day-1.tif").read_bytes() == raster  # in the store, whole
    assert not list((store / "incoming").rglob("*.tif"))  # taken from the uploads
    assert again.status_code == 200 and again.json()["version"] == sent.json()["version"]
    assert "FEED-0" in set(ArrivalLog(store).tables()["scenes"]["scene_id"])


def test_a_scenes_batch_whose_rasters_are_missing_or_broken_writes_nothing(feed, state, served):
    client, store = feed
    key = bearer(state, "data")
    rows, raster = _scene_rows(served, store, ["scenes/feed/cut.tif", "scenes/feed/never.tif"])
    client.put("/v1/data/files/scenes/feed/cut.tif", content=raster[: len(raster) // 2],
               headers=key)  # fmt: skip
    before = ArrivalLog(store).version("scenes")

    refused = client.post("/v1/data/scenes", json={"batch_id": "bad-scenes", "rows": rows},
                          headers=key)  # fmt: skip
    escaping = client.put("/v1/data/files/scenes/%2E%2E/%2E%2E/escape.tif", content=raster,
                          headers=key)  # fmt: skip
    hidden = client.put("/v1/data/files/scenes/.hidden.tif", content=raster, headers=key)
    streamed = client.put("/v1/data/files/scenes/s.tif", content=iter([raster]), headers=key)

    assert refused.status_code == 422, refused.text
    assert {p["row"] for p in refused.json()["problems"]} == {1, 2}
    assert ArrivalLog(store).version("scenes") == before
    assert not (store / "scenes/feed").exists()
    assert escaping.status_code == hidden.status_code == 422
    assert escaping.json()["code"] == hidden.json()["code"] == "invalid_file_name"
    assert not list(store.parent.glob("*.tif"))
    assert streamed.status_code == 411 and streamed.json()["code"] == "length_required"


def test_a_service_reading_files_not_a_store_says_so(client, state, served):
    batch = {"batch_id": "x", "rows": _orders(served, ["API-6"])}

    answer = client.post("/v1/data/orders", json=batch, headers=bearer(state, "data"))

    assert answer.status_code == 409 and answer.json()["code"] == "no_arrival_log"


def _real_field_rows(real_data: Path, farmer_id: str, n: int) -> list[dict]:
    """Real Rwandan parcels (RFC 7946 GeoJSON, WGS 84) as a feed's field rows."""
    parcels = json.loads((real_data / "fields" / "rw_rwanda_2021.geojson").read_text())
    return [
        {"field_id": f"FEED-F{i}", "farmer_id": farmer_id, "crop": "beans",
         "declared_area_ha": 0.5, "geometry": feature["geometry"]}
        for i, feature in enumerate(parcels["features"][:n])
    ]  # fmt: skip


def test_a_feed_sends_fields_with_their_polygons_as_geojson(feed, state, served, real_data):
    client, store = feed
    farmer = str(ArrivalLog(store).read("farmers")["farmer_id"].iloc[0])
    rows = _real_field_rows(real_data, farmer, 3)

    sent = client.post("/v1/data/fields", json={"batch_id": "fields-1", "rows": rows},
                       headers=bearer(state, "data"))  # fmt: skip

    assert sent.status_code == 201, sent.text
    fields = ArrivalLog(store).tables()["fields"].set_index("field_id")
    for row in rows:
        stored = fields.loc[row["field_id"], "geometry"]
        assert stored.equals_exact(shapely.geometry.shape(row["geometry"]), 0)
        assert fields.loc[row["field_id"], "farmer_id"] == farmer


def test_a_bad_fields_batch_gets_every_problem_by_row_and_writes_nothing(
    feed, state, served, real_data
):
    client, store = feed
    farmer = str(ArrivalLog(store).read("farmers")["farmer_id"].iloc[0])
    rows = _real_field_rows(real_data, farmer, 5)
    rows[0]["geometry"] = "POLYGON((0 0, 1 0, 1 1, 0 0))"  # WKT, not GeoJSON
    rows[1]["geometry"] = {"type": "Point", "coordinates": [30.0, -2.0]}
    rows[2]["geometry"] = None
    rows[3]["crop"] = "tobacco"
    before = ArrivalLog(store).version("fields")

    refused = client.post("/v1/data/fields", json={"batch_id": "bad-fields", "rows": rows},
                          headers=bearer(state, "data"))  # fmt: skip

    assert refused.status_code == 422, refused.text
    found = {(p["row"], p["column"]) for p in refused.json()["problems"]}
    assert {(1, "geometry"), (2, "geometry"), (3, "geometry")} <= found
    assert "GeoJSON geometry object" in refused.json()["problems"][0]["message"]
    assert ArrivalLog(store).version("fields") == before
    # with the polygons mended, the same batch id still refuses the crop, by row
    rows[:3] = _real_field_rows(real_data, farmer, 3)
    again = client.post("/v1/data/fields", json={"batch_id": "bad-fields", "rows": rows},
                        headers=bearer(state, "data"))  # fmt: skip
    assert again.status_code == 422
    assert {(p["row"], p["column"]) for p in again.json()["problems"]} == {(4, "crop")}


def test_a_scene_row_whose_path_climbs_out_of_the_store_is_refused_unread(
    feed, state, served, tmp_path
):
    client, store = feed
    key = bearer(state, "data")
    rows, raster = _scene_rows(served, store, ["x.tif"])
    outside = store.parent / "outside.tif"  # a valid raster beside the store, not in it
    outside.write_bytes(raster)
    rows[0]["path"] = "../../../outside.tif"
    client.put("/v1/data/files/x.tif", content=raster, headers=key)  # the key's uploads exist
    before = ArrivalLog(store).version("scenes")

    refused = client.post("/v1/data/scenes", json={"batch_id": "climb", "rows": rows},
                          headers=key)  # fmt: skip

    assert refused.status_code == 422, refused.text
    problem = refused.json()["problems"][0]
    assert (problem["row"], problem["column"]) == (1, "path") and "'..'" in problem["message"]
    assert ArrivalLog(store).version("scenes") == before
    assert not list(store.rglob("outside.tif"))
