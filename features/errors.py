"""Domain errors raised by the features package."""

from features.problems import Problem


class AgricreditError(Exception):
    """Base of every error agricredit raises on purpose."""


class TableValidationError(AgricreditError):
    """An input table, field file or scene breaks its declared contract."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0] if problems else None
        head = f"{len(problems)} problem(s) in the input data"
        super().__init__(f"{head}; first: {first}" if first else head)


class SimulationParameterError(AgricreditError):
    """A simulation parameter is out of its allowed range."""
