"""The champion in memory: loaded once per worker, swapped whole on reload, so every request
sees exactly one model version from start to end."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from scoring.decide.predictor import Predictor
from scoring.errors import NotReadyError
from training.artifact import ModelBundle
from training.config import TrainingSettings
from training.registry import MODEL_NAME, get_client, load_version


@dataclass(frozen=True)
class ServedModel:
    """A model version as served."""

    bundle: ModelBundle
    predictor: Predictor  # the bundle as the service predicts with it
    name: str
    version: str
    run_id: str


class ModelStore:
    """Holds the current ServedModel; `current` is read without locks (one reference)."""

    def __init__(self, ref: str = "champion", settings: TrainingSettings | None = None) -> None:
        self.ref = ref
        self.settings = settings
        self._current: ServedModel | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether a model has been loaded."""
        return self._current is not None

    @property
    def current(self) -> ServedModel:
        """The model requests should use (one reference: read it once per batch).

        Raises:
            NotReadyError: no model has been loaded yet.
        """
        if self._current is None:
            raise NotReadyError("the model is not loaded yet; retry in a moment")
        return self._current

    def load(self) -> ServedModel:
        """Load the version the reference points at now and make it current."""
        with self._lock:  # one reload at a time; readers keep the old one meanwhile
            loaded = load_version(get_client(self.settings), self.ref)
            served = ServedModel(
                loaded.bundle,
                Predictor(loaded.bundle),
                MODEL_NAME,
                str(loaded.version.version),
                loaded.version.run_id or "",
            )
            self._current = served
            return served
