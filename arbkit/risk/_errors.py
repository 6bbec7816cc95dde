"""The one exception type of the risk engine."""

from __future__ import annotations

__all__ = ["RiskInputError"]


class RiskInputError(ValueError):
    """Bad input to a risk computation, naming the offending field.

    The risk engine never lets a NaN or an impossible value flow silently into a limit check: a check
    that compares NaN with a limit is always false, so a broken price would *pass*. Every public
    function validates its inputs and raises this error instead.

    Parameters
    ----------
    field
        Name of the argument (or model field) that is wrong, e.g. ``"pnl"`` or ``"covariance"``.
    message
        What is wrong with it.

    Examples
    --------
    >>> err = RiskInputError("pnl", "contains NaN")
    >>> err.field, str(err)
    ('pnl', 'pnl: contains NaN')
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
