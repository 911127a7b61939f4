"""The champion in memory: loaded once per worker, swapped whole on reload, so every request
sees exactly one model version from start to end.

Only a gated version is loaded: its bundle must match its registered digest file by file,
and carry a passing gate record for that digest signed by the signing key
(training/promotion.py). Otherwise loading fails with the reason and the current model
keeps serving."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from scoring.decide.predictor import Predictor
from scoring.errors import NotReadyError
from training.artifact import ModelBundle
from training.config import TrainingSettings, get_training_settings
from training.promotion import verify_gate
from training.registry import MODEL_NAME, get_client, load_version
from training.signing import SigningKey


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
        """Load the version the reference points at now and make it current.

        Raises:
            ModelIntegrityError: a file of the bundle differs from its registered digest.
            UngatedModelError: no passing gate record signed for that digest.
            SigningKeyError: no signing key to check the record with.
        """
        settings = self.settings or get_training_settings()
        with self._lock:  # one reload at a time; readers keep the old one meanwhile
            loaded = load_version(get_client(settings), self.ref)
            verify_gate(
                loaded.version, loaded.bundle.sha256, SigningKey.read(settings.signing_key_path)
            )
            served = ServedModel(
                loaded.bundle,
                Predictor(loaded.bundle),
                MODEL_NAME,
                str(loaded.version.version),
                loaded.version.run_id or "",
            )
            self._current = served
            return served
