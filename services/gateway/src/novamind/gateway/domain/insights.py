"""Which insight sections one GraphQL request needs, merged so a patient costs one twin call.

Each section field of a patient (``actigraphy``, ``forecast``, ``correlations``,
``medicationGuidance``, ``insights``) states an :class:`InsightNeeds`. Needs of one request for
one patient are merged into as few ``GetInsights`` calls as their parameters allow: flags
(explanation, FHIR) combine, but two forecasts with different horizons cannot share a call.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace


class Section(enum.StrEnum):
    """Insight sections, named as the twin's ``SectionError.section`` names them."""

    ACTIGRAPHY = "actigraphy"
    FORECAST = "forecast"
    CORRELATIONS = "correlations"
    MEDICATIONS = "medications"


@dataclass(frozen=True, slots=True)
class InsightNeeds:
    """Sections and parameters wanted from ``GetInsights``.

    ``forecast_days`` (1-30) and ``lookback_days`` are in days, 0 meaning the twin's default;
    ``forecast_targets`` and ``candidate_drugs`` empty mean "all".
    """

    sections: frozenset[Section] = frozenset()
    actigraphy_explanation: bool = False
    actigraphy_fhir: bool = False
    forecast_days: int = 0
    forecast_targets: tuple[str, ...] = ()
    candidate_drugs: tuple[str, ...] = ()
    lookback_days: int = 0
    recommendations: bool = False

    def parameters(self) -> tuple[object, ...]:
        """The parameters that must be equal for two needs to share one call."""
        return (
            self.forecast_days if Section.FORECAST in self.sections else None,
            self.forecast_targets if Section.FORECAST in self.sections else None,
            self.candidate_drugs if Section.MEDICATIONS in self.sections else None,
            self.lookback_days,
        )

    def compatible_with(self, other: InsightNeeds) -> bool:
        """Whether both can be answered by one call (no section parameter conflicts)."""
        mine, theirs = self.parameters(), other.parameters()
        return all(a is None or b is None or a == b for a, b in zip(mine, theirs, strict=True))

    def merge(self, other: InsightNeeds) -> InsightNeeds:
        """The needs of both (call only when :meth:`compatible_with` holds)."""
        sections = self.sections | other.sections
        return replace(
            self,
            sections=sections,
            actigraphy_explanation=self.actigraphy_explanation or other.actigraphy_explanation,
            actigraphy_fhir=self.actigraphy_fhir or other.actigraphy_fhir,
            forecast_days=self.forecast_days if Section.FORECAST in self.sections else other.forecast_days,
            forecast_targets=(
                self.forecast_targets if Section.FORECAST in self.sections else other.forecast_targets
            ),
            candidate_drugs=(
                self.candidate_drugs if Section.MEDICATIONS in self.sections else other.candidate_drugs
            ),
            recommendations=self.recommendations or other.recommendations,
        )

    def covers(self, other: InsightNeeds) -> bool:
        """Whether an answer to these needs also answers ``other``."""
        return (
            other.sections <= self.sections
            and (self.actigraphy_explanation or not other.actigraphy_explanation)
            and (self.actigraphy_fhir or not other.actigraphy_fhir)
            and (self.recommendations or not other.recommendations)
            and self.compatible_with(other)
        )


def plan_calls(needs: Iterable[InsightNeeds]) -> list[InsightNeeds]:
    """Merge ``needs`` (of one patient) into the fewest compatible calls, first fit in order."""
    calls: list[InsightNeeds] = []
    for need in needs:
        for index, call in enumerate(calls):
            if call.compatible_with(need):
                calls[index] = call.merge(need)
                break
        else:
            calls.append(need)
    return calls
