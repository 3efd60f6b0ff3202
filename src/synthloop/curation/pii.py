"""PII: find and redact personal data in generated text, counting each kind.

Detected (offline, by pattern and checksum):
- e-mail addresses;
- phone numbers written as phone numbers: a leading `+` and country code, or grouped with
  separators like `(555) 123-4567` / `555-123-4567` (a bare run of digits is not taken for a phone,
  so arithmetic is left alone);
- IPv4 and IPv6 addresses (validated with `ipaddress`);
- payment card numbers of 13-19 digits that pass the Luhn check (grouped, or bare with a known
  issuer prefix);
- national id patterns: US social security numbers (`AAA-GG-SSSS`, invalid ranges excluded) and UK
  national insurance numbers.

Not detected: person names, postal addresses, dates of birth, and ids of other countries. No offline
detector for names ships with the project, so names need a model-based stage.

`RedactPII` replaces each match with `[EMAIL]`, `[PHONE]`, `[IP]`, `[CARD]` or `[NATIONAL_ID]` in the
question, reasoning and answer, records a kept verdict naming what it redacted, and keeps counts per
kind for the report. With `drop=True` a row with PII is rejected (reason `pii`) instead."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable

from synthloop.curation.base import RowStage
from synthloop.records import Record

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]\d{2,4}){1,4}"
    r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w-])"
)
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
CARD = re.compile(r"(?<![\w-])(?:\d{4}[ -]){2,4}\d{1,4}(?![\w-])|(?<![\w-])\d{13,19}(?![\w-])")
SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])")
NINO = re.compile(r"\b(?![DFIQUV])[A-Z](?![DFIOQUV])[A-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
CARD_PREFIXES = ("4", "34", "37", "51", "52", "53", "54", "55", "2221", "2720", "6011", "65", "35")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_card(match: str) -> bool:
    digits = re.sub(r"[ -]", "", match)
    if not 13 <= len(digits) <= 19 or not luhn_ok(digits):
        return False
    grouped = len(digits) != len(match)
    return grouped or digits.startswith(CARD_PREFIXES)


def _is_ip(match: str) -> bool:
    try:
        ipaddress.ip_address(match)
    except ValueError:
        return False
    return True


# Order matters: card numbers and ids before phones, which could otherwise claim their digits.
DETECTORS: list[tuple[str, re.Pattern[str], Callable[[str], bool] | None]] = [
    ("email", EMAIL, None),
    ("card", CARD, _is_card),
    ("national_id", SSN, None),
    ("national_id", NINO, None),
    ("ip", IPV4, _is_ip),
    ("ip", IPV6, lambda m: m.count(":") >= 2 and _is_ip(m)),
    ("phone", PHONE, lambda m: sum(c.isdigit() for c in m) >= 8),
]
PLACEHOLDER = {"email": "[EMAIL]", "phone": "[PHONE]", "ip": "[IP]", "card": "[CARD]", "national_id": "[NATIONAL_ID]"}


def redact(text: str) -> tuple[str, Counter[str]]:
    """`text` with every detected item replaced by its placeholder, and the counts per kind."""
    found: Counter[str] = Counter()
    for kind, pattern, valid in DETECTORS:

        def replace(match: re.Match[str], kind: str = kind, valid=valid) -> str:
            if valid is not None and not valid(match.group()):
                return match.group()
            found[kind] += 1
            return PLACEHOLDER[kind]

        text = pattern.sub(replace, text)
    return text, found


class RedactPII(RowStage):
    name = "pii"

    def __init__(self, drop: bool = False):
        self.drop = drop
        self.counts: Counter[str] = Counter()  # per kind, over every row seen

    def judge(self, record: Record) -> None:
        found: Counter[str] = Counter()
        question, q = redact(record.question)
        reasoning, r = redact(record.reasoning)
        answer, a = redact(record.answer) if record.answer is not None else (None, Counter())
        found = q + r + a
        if not found:
            record.add_verdict(self.name, True)  # checked, nothing found
            return
        self.counts += found
        summary = ", ".join(f"{kind}={n}" for kind, n in sorted(found.items()))
        if self.drop:
            record.add_verdict(self.name, False, "pii", float(sum(found.values())), summary)
            return
        record.question, record.reasoning, record.answer = question, reasoning, answer
        record.add_verdict(self.name, True, "pii_redacted", float(sum(found.values())), summary)
