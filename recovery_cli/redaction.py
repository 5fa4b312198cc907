"""Secret values never leave the process: every text the tool writes or prints passes here.

A secret is looked for in every form it can take on the way out: as it is, JSON-escaped
(ASCII-only and not), as Python ``repr``/``ascii`` would show it, URL-encoded, and base64.
Callers redact values before encoding them and the encoded text again after."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

REDACTED = "***"
MIN_SECRET_LENGTH = 3  # shorter values would blank out ordinary words


def representations(secret: str) -> set[str]:
    """The forms ``secret`` can take in output the tool produces."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        base64.b64encode(secret.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="),
    }
    forms |= {form.replace("%", "%25") for form in forms if "%" in form}  # quoted twice
    forms |= {_lower_percent(form) for form in forms}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _lower_percent(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


class Redactor:
    """Callable: ``redactor(text)`` replaces every form of every secret with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET_LENGTH:
                forms |= representations(secret)
        ordered = sorted(forms, key=len, reverse=True)  # longest first: no partial leftovers
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)
