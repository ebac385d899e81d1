"""Rule parameters and code sets: validated once at load, plain attributes in the hot path."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from alerts.events import MICROS_PER_HOUR, MICROS_PER_MINUTE, MedClass

RULESET_VERSION = "kmg-rules/1"

LIST_KEYS = ("k_codes", "mg_codes", "k_sparing_keywords", "k_plausible", "mg_plausible")
PER_CLASS_KEYS = ("med_codes", "med_keywords")


class ConfigError(ValueError):
    """A configuration key or value that cannot be used; the message names both."""


# Ten years: beyond any clinical window, and far enough inside the calendar that every timer
# of an event in years 1..9999 less its windows is a date.
_LONGEST_HOURS = 87_660
_LONGEST_MINUTES = _LONGEST_HOURS * 60


def _not_blank(text: str) -> str:
    if not text.strip():
        # A blank keyword would match every drug name (keywords are substrings).
        raise ValueError("a code or keyword must not be blank")
    return text


Entry = Annotated[str, AfterValidator(_not_blank)]
# A file says what it means: "30" or "yes" is a mistake, not a number or a flag (an integer is
# a number still).
Number = Annotated[float, Strict()]
Count = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]


class RuleConfig(BaseModel):
    """Every parameter of RULES.md sections 3-5 and 7; times in the units of their names."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    k_low: Number = Field(3.5, gt=0)
    k_moderate: Number = Field(3.0, gt=0)
    k_severe: Number = Field(2.5, gt=0)
    mg_low: Number = Field(1.7, gt=0)
    mg_severe: Number = Field(1.2, gt=0)

    hold_minutes: Number = Field(30, ge=0, le=_LONGEST_MINUTES)
    mg_lookback_hours: Number = Field(24, ge=0, le=_LONGEST_HOURS)
    k_recent_hours: Number = Field(24, ge=0, le=_LONGEST_HOURS)
    refractory_window_hours: Number = Field(24, ge=0, le=_LONGEST_HOURS)
    refractory_min_episodes: Count = Field(3, ge=1)
    diuretic_lookback_hours: Number = Field(168, ge=0, le=_LONGEST_HOURS)
    alert_ttl_hours: Number = Field(48, gt=0, le=_LONGEST_HOURS)
    episode_gap_hours: Number = Field(12, ge=0, le=_LONGEST_HOURS)
    history_hours: Number = Field(168, gt=0, le=_LONGEST_HOURS)

    allowed_lateness_minutes: Number = Field(10, ge=0, le=_LONGEST_MINUTES)
    idle_advance: Flag = False

    k_plausible: tuple[Number, Number] = (0.5, 15.0)
    mg_plausible: tuple[Number, Number] = (0.1, 20.0)

    k_codes: tuple[Entry, ...] = ()
    mg_codes: tuple[Entry, ...] = ()
    k_sparing_keywords: tuple[Entry, ...] = ()
    med_codes: dict[MedClass, tuple[Entry, ...]] = Field(default_factory=dict)
    med_keywords: dict[MedClass, tuple[Entry, ...]] = Field(default_factory=dict)

    @field_validator("k_codes", "mg_codes")
    @classmethod
    def _some_codes(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        if not codes:
            raise ValueError("no code given: no result of the analyte would be recognised")
        return codes

    @model_validator(mode="after")
    def _coherent(self) -> RuleConfig:
        for key in ("k_plausible", "mg_plausible"):
            low, high = getattr(self, key)
            if not 0 <= low < high:
                raise ValueError(f"{key}: [{low}, {high}] must satisfy 0 <= low < high")
        if not self.k_severe <= self.k_moderate <= self.k_low:
            raise ValueError(
                f"k_severe <= k_moderate <= k_low does not hold: "
                f"{self.k_severe}, {self.k_moderate}, {self.k_low}"
            )
        if self.mg_severe > self.mg_low:
            raise ValueError(f"mg_severe {self.mg_severe} is above mg_low {self.mg_low}")
        if set(self.k_codes) & set(self.mg_codes):
            raise ValueError("k_codes and mg_codes overlap")
        # Pruning keeps history_hours behind the watermark; every window must fit inside it,
        # or pruning would change the output.
        hold_hours = self.hold_minutes / 60
        longest = max(
            # a low-Mg evaluation reads episodes back to collection - lookback, and its
            # evidence counts the refractory window before the newest of them
            self.mg_lookback_hours + self.refractory_window_hours + hold_hours,
            self.k_recent_hours + hold_hours,
            self.diuretic_lookback_hours,
            self.episode_gap_hours,
        )
        if self.history_hours < longest:
            raise ValueError(
                f"history_hours {self.history_hours} is shorter than the longest window {longest}"
            )
        return self

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RuleConfig:
        """Validate a mapping, raising ConfigError that names the bad key and value."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            err = exc.errors()[0]
            if not err["loc"]:  # a rule across keys: its message names them and their values
                raise ConfigError(f"config: {err['msg'].removeprefix('Value error, ')}") from None
            key = ".".join(str(p) for p in err["loc"])
            given = err.get("input")
            shown = json.dumps(given, default=str) if not isinstance(given, dict) else "{...}"
            raise ConfigError(f"config key {key!r}: {err['msg']} (value: {shown})") from None

    def digest(self) -> str:
        """Return a short stable hash of the parameters, stamped on every alert."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def rule_version(self) -> str:
        return f"{RULESET_VERSION}+{self.digest()}"


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Overlay override on base; lists replace lists, per-class tables replace per class."""
    merged = dict(base)
    for key, value in override.items():
        if (
            key in PER_CLASS_KEYS
            and isinstance(value, Mapping)
            and isinstance(base.get(key), Mapping)
        ):
            merged[key] = {**base[key], **value}
        else:
            merged[key] = value
    return merged


class Windows:
    """Rule windows in integer microseconds, resolved once from a RuleConfig."""

    __slots__ = (
        "hold",
        "mg_lookback",
        "k_recent",
        "refractory_window",
        "diuretic_lookback",
        "alert_ttl",
        "episode_gap",
        "history",
        "allowed_lateness",
    )

    def __init__(self, cfg: RuleConfig) -> None:
        self.hold = round(cfg.hold_minutes * MICROS_PER_MINUTE)
        self.mg_lookback = round(cfg.mg_lookback_hours * MICROS_PER_HOUR)
        self.k_recent = round(cfg.k_recent_hours * MICROS_PER_HOUR)
        self.refractory_window = round(cfg.refractory_window_hours * MICROS_PER_HOUR)
        self.diuretic_lookback = round(cfg.diuretic_lookback_hours * MICROS_PER_HOUR)
        self.alert_ttl = round(cfg.alert_ttl_hours * MICROS_PER_HOUR)
        self.episode_gap = round(cfg.episode_gap_hours * MICROS_PER_HOUR)
        self.history = round(cfg.history_hours * MICROS_PER_HOUR)
        self.allowed_lateness = round(cfg.allowed_lateness_minutes * MICROS_PER_MINUTE)

    @property
    def reach(self) -> int:
        """Return a bound on how far after an event any timer it sets can fall: every window."""
        return sum(getattr(self, name) for name in self.__slots__)
