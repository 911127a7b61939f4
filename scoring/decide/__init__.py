"""From an application to a decision: the service's data, the champion and its predictor,
the engine, the policy, the reasons, and the batcher that records each decision."""

from scoring.decide.batcher import DecisionBatcher
from scoring.decide.data import FeatureSource
from scoring.decide.engine import Application, InputLine, Outcome, evaluate_applications
from scoring.decide.model_store import ModelStore, ServedModel
from scoring.decide.policy import Policy, decide, load_policy
from scoring.decide.predictor import Predictor
from scoring.decide.state import ServiceState

__all__ = [
    "Application",
    "DecisionBatcher",
    "FeatureSource",
    "InputLine",
    "ModelStore",
    "Outcome",
    "Policy",
    "Predictor",
    "ServedModel",
    "ServiceState",
    "decide",
    "evaluate_applications",
    "load_policy",
]
