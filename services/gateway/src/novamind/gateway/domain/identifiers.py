"""Patient identifiers at the gateway's edge: pseudonyms pass, anything else is pseudonymised."""

from __future__ import annotations

from novamind.core.errors import ValidationError
from novamind.core.privacy import is_pseudonym, pseudonymise

#: Longest identifier accepted (characters); longer input is refused, not truncated.
MAX_IDENTIFIER_LENGTH = 256


def edge_pseudonym(identifier: str, key: bytes | str, *, field: str = "patientId") -> str:
    """The pseudonym for a caller-supplied patient identifier.

    A value that already is a pseudonym is returned as is; any other identifier (an MRN, say) is
    replaced by its keyed hash, so the raw value goes no further than this call. Raises
    :class:`ValidationError` naming ``field`` for an empty or over-long identifier.
    """
    value = identifier.strip()
    if is_pseudonym(value):
        return value
    if not value:
        raise ValidationError("a patient id is required", field=field)
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise ValidationError(f"a patient id has at most {MAX_IDENTIFIER_LENGTH} characters", field=field)
    return pseudonymise(value, key)
