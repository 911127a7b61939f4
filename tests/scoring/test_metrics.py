"""The service's Prometheus metrics: what a scrape reads after a model swap."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from scoring.metrics import ServiceMetrics


def _versions(text: str) -> dict[str, float]:
    return {
        sample.labels["version"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "agricredit_model_version"
    }


def test_after_a_swap_only_the_new_version_reads_as_served():
    metrics = ServiceMetrics()
    metrics.serve_model("agricredit-pd", "1")
    assert _versions(metrics.exposition().decode()) == {"1": 1.0}

    metrics.serve_model("agricredit-pd", "2")
    metrics.serve_model("agricredit-pd", "2")  # a reload to the version already served

    assert _versions(metrics.exposition().decode()) == {"1": 0.0, "2": 1.0}
