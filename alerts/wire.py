"""Wire models of the canonical input events and the alert output event (RULES.md sections 1, 6)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from alerts.events import LabStatus, MedAction
from alerts.timestamps import TimestampError, parse_timestamp


def _to_micros(text: str) -> int:
    try:
        return parse_timestamp(text)
    except TimestampError as exc:
        raise PydanticCustomError(exc.reason, "{reason}", {"reason": exc.reason}) from None


Timestamp = Annotated[StrictStr, AfterValidator(_to_micros)]
"""An RFC 3339 string on the wire, integer UTC microseconds once validated."""

EventId = Annotated[StrictStr, Field(min_length=1, max_length=128)]
PatientId = Annotated[StrictStr, Field(min_length=1, max_length=64)]
Number = StrictInt | StrictFloat


class LabResultIn(BaseModel):
    """A lab result as sent; fields are declared in the order defects are reported.

    Checks across fields (value and unit unless a removal, plausibility, resulted >= collected)
    follow in the decoder, after the analyte is known.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["lab_result"]
    event_id: EventId
    patient_id: PatientId
    code: StrictStr
    status: LabStatus = LabStatus.FINAL
    value: Number | None = None
    unit: StrictStr | None = None
    collected_at: Timestamp
    resulted_at: Timestamp
    result_id: StrictStr | None = None
    flags: list[StrictStr] | None = None
    encounter_id: StrictStr | None = None
    location: StrictStr | None = None


class MedicationIn(BaseModel):
    """A medication order, administration or cancellation as sent."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["medication"]
    event_id: EventId
    patient_id: PatientId
    action: MedAction
    code: StrictStr | None = None
    name: StrictStr | None = None
    at: Timestamp
    order_id: StrictStr | None = None
    route: StrictStr | None = None
    dose: Number | StrictStr | None = None
    dose_unit: StrictStr | None = None
    encounter_id: StrictStr | None = None
    location: StrictStr | None = None


class LabEvidence(BaseModel):
    value: float
    collected_at: str
    event_id: str


class MgEvidence(BaseModel):
    value_mg_dl: float
    collected_at: str
    event_id: str
    hemolyzed: bool


class Evidence(BaseModel):
    latest_k: LabEvidence | None
    latest_mg: MgEvidence | None
    k_episodes_in_refractory_window: int
    diuretic_in_lookback: bool
    episode_t0: str | None


class AlertEvent(BaseModel):
    """The alert output event of RULES.md section 6."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["alert"] = "alert"
    alert_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    rule: Literal["MG_NOT_CHECKED", "MG_LOW_UNCORRECTED", "REFRACTORY_HYPOKALEMIA"]
    status: Literal["firing", "resolved"]
    severity: Literal["warning", "high", "critical"]
    patient_id: str
    encounter_id: str | None
    location: str | None
    at: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z$")]
    trigger_event_id: str
    resolution: str | None
    evidence: Evidence
    message: str
    rule_version: str

    @model_validator(mode="after")
    def _resolution_matches_status(self) -> AlertEvent:
        if (self.status == "firing") != (self.resolution is None):
            raise ValueError("resolution is null exactly when status is firing")
        return self


def model_for(kind: Any) -> type[LabResultIn] | type[MedicationIn] | None:
    """Return the wire model of an event kind, or None when the kind is unknown."""
    if kind == "lab_result":
        return LabResultIn
    if kind == "medication":
        return MedicationIn
    return None
