"""What the counteroffer search costs a decision: batches of applications decided in
process with it and without it (its peer), alternating, on a simulated world and a model
trained on it. Prints the median CPU milliseconds per batch of each, the ratio, and the
search's cost per declined or referred application.

    python benchmarks/bench_counteroffer.py [--farmers 2000] [--batch 32] [--rounds 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from features.feature_store import write_feature_store
from features.simulate.params import WorldParams
from features.simulate.world import simulate_world
from scoring.api.schemas import ScoreRequest
from scoring.decide.data import FeatureSource
from scoring.decide.engine import Application, evaluate_applications
from scoring.decide.policy import load_policy
from scoring.decide.predictor import Predictor
from training.artifact import ModelBundle
from training.pipeline import train_model

REPEATS = 40  # batches per measurement


def _applications(source: FeatureSource, world: Path, n: int, amount: int) -> list[Application]:
    """Farmers with a contract open at the data's as-of, each asking `amount`."""
    snap = pd.read_parquet(world / "features" / "snapshot.parquet")
    snap = snap[snap["contract_id"].notna() & (snap["contract_id"] != "nan")].head(n)
    supplier = next(s for s, approved in source.approved_suppliers.items() if approved)
    return [
        ScoreRequest.model_validate({
            "farmer_id": r.farmer_id, "contract_id": r.contract_id, "requested_minor": amount,
            "inputs": [{"supplier_id": supplier, "item": "seed", "amount_minor": amount}],
        }).to_application()
        for r in snap.itertuples()
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--farmers", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--amount", type=int, default=2_000_000, help="minor units asked")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / "world"
        print(f"simulating {args.farmers} farmers and training ...", flush=True)
        simulate_world(WorldParams(farmers=args.farmers, seed=7), world, progress=False)
        write_feature_store(world)
        source = FeatureSource.load(world)
        trained = train_model(pd.read_parquet(world / "features" / "training.parquet"))
        bundle = ModelBundle(trained.booster, trained.calibrator, trained.scaler,
                             trained.features, trained.population, sha256="-")  # fmt: skip
        model = Predictor(bundle)
        policy = load_policy()
        apps = _applications(source, world, args.batch, args.amount)

        def batch_ms(counteroffers: bool) -> float:
            times = []
            for _ in range(REPEATS):
                start = time.process_time()
                evaluate_applications(apps, source=source, model=model, policy=policy,
                                      as_of=source.data_as_of,
                                      counteroffers=counteroffers)  # fmt: skip
                times.append(time.process_time() - start)
            return statistics.median(times) * 1e3

        outcomes = evaluate_applications(apps, source=source, model=model, policy=policy,
                                         as_of=source.data_as_of)  # fmt: skip
        refused = sum(o.decision.decision != "approve" for o in outcomes)
        offered = sum(o.counteroffer is not None and o.counteroffer.amount_minor is not None
                      for o in outcomes)  # fmt: skip
        print(f"{len(apps)} applications per batch asking {args.amount:,} minor units: "
              f"{refused} declined or referred, {offered} of them offered an amount")  # fmt: skip
        print("| round | with counteroffers: CPU ms per batch | without (peer) | ratio | "
              "search per refusal |")  # fmt: skip
        print("| --- | --- | --- | --- | --- |")
        for n in range(1, args.rounds + 1):
            with_, without = batch_ms(True), batch_ms(False)
            per = (with_ - without) / max(refused, 1) * 1e3
            print(f"| {n} | {with_:.2f} | {without:.2f} | {with_ / without:.2f}x | {per:.0f} us |")


if __name__ == "__main__":
    main()
