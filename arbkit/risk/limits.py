"""Risk limits: one frozen, validated model, updated only through validation.

The seed's limits (``max_var``, ``max_leverage``, ``max_concentration``, ``max_drawdown``, ``stop_loss``) plus
per-instrument and per-venue caps. Unknown keys are rejected, every number is range-checked, and limits
that contradict each other are rejected with a message naming both fields, so a typo in a configuration file
can never silently disable a limit.

Units
-----
* ``max_var``, ``var_warning``, ``stop_loss`` and the notional caps are money in the book's quote currency.
* ``max_leverage`` is gross notional / equity; ``max_concentration`` is the largest net exposure to one asset
  as a fraction of equity (0.5 = half the equity in one asset); ``max_drawdown`` is a fraction of the peak.
* ``max_position`` caps the absolute quantity of one instrument on one venue (a position is a venue and a
  symbol); ``max_instrument_notional`` caps its absolute notional; ``max_venue_notional`` caps the gross
  notional held on a venue (counterparty exposure). Instruments or venues without an entry fall back to the
  ``default_*`` cap, and ``None`` means uncapped.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from arbkit.risk._errors import RiskInputError

__all__ = ["RiskLimits"]

PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0, allow_inf_nan=False)]
Label = Annotated[str, Field(min_length=1)]


class RiskLimits(BaseModel):
    """Validated, immutable risk limits.

    Examples
    --------
    >>> limits = RiskLimits(max_var=50_000.0, max_leverage=3.0, max_concentration=0.5,
    ...                     max_drawdown=0.2, stop_loss=25_000.0)
    >>> limits.update(max_leverage=2.0).max_leverage
    2.0
    >>> limits.update(max_concentration=5.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    arbkit.risk._errors.RiskInputError: max_concentration, max_leverage: max_concentration 5.0 exceeds ...
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_var: PositiveFloat
    var_confidence: Annotated[float, Field(ge=0.5, lt=1.0)] = 0.99
    var_horizon: PositiveFloat = 1.0
    var_warning: PositiveFloat | None = None
    max_leverage: PositiveFloat
    max_concentration: PositiveFloat
    max_drawdown: Fraction
    stop_loss: PositiveFloat
    max_position: dict[Label, PositiveFloat] = Field(default_factory=dict)
    max_instrument_notional: dict[Label, PositiveFloat] = Field(default_factory=dict)
    max_venue_notional: dict[Label, PositiveFloat] = Field(default_factory=dict)
    default_max_position: PositiveFloat | None = None
    default_max_instrument_notional: PositiveFloat | None = None
    default_max_venue_notional: PositiveFloat | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RiskLimits:
        if self.var_warning is not None and self.var_warning > self.max_var:
            raise ValueError(
                f"var_warning, max_var: the warning level {self.var_warning} is above the hard limit {self.max_var}"
            )
        if self.max_concentration > self.max_leverage:
            raise ValueError(
                f"max_concentration, max_leverage: max_concentration {self.max_concentration} exceeds "
                f"max_leverage {self.max_leverage}; a per-asset cap above the whole-book cap can never bind "
                "(was a percentage given as a fraction?)"
            )
        return self

    @classmethod
    def parse(cls, data: dict[str, Any]) -> RiskLimits:
        """Validate a mapping (e.g. a configuration section), raising `RiskInputError` naming the fields."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _as_risk_error(exc) from exc

    def update(self, **changes: Any) -> RiskLimits:
        """Return new limits with ``changes`` applied, re-running every validation (the original is kept)."""
        return RiskLimits.parse({**self.model_dump(), **changes})


def _as_risk_error(exc: ValidationError) -> RiskInputError:
    errors = exc.errors()
    fields: list[str] = []
    messages: list[str] = []
    for error in errors:
        location = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if location:
            fields.append(location)
            messages.append(f"{location}: {message}")
        else:
            fields.append(message.split(":", 1)[0])
            messages.append(message.split(":", 1)[-1].strip())
    return RiskInputError(", ".join(fields), "; ".join(messages))
