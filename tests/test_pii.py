"""PII detection and redaction: every kind found in realistic text, and arithmetic left alone."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synthloop.curation.pii import RedactPII, luhn_ok, redact
from synthloop.records import Record


@pytest.mark.parametrize(
    ("text", "kind", "shown"),
    [
        ("write to jane.doe+news@example.co.uk today", "email", "write to [EMAIL] today"),
        ("call +1 415 555 0132 now", "phone", "call [PHONE] now"),
        ("call (415) 555-0132 now", "phone", "call [PHONE] now"),
        ("call 415-555-0132 now", "phone", "call [PHONE] now"),
        ("call +44 20 7946 0958.", "phone", "call [PHONE]."),
        ("server 192.168.10.254 is down", "ip", "server [IP] is down"),
        ("server 2001:db8::8a2e:370:7334 is down", "ip", "server [IP] is down"),
        ("card 4111 1111 1111 1111 exp", "card", "card [CARD] exp"),
        ("card 4111-1111-1111-1111 exp", "card", "card [CARD] exp"),
        ("card 378282246310005 exp", "card", "card [CARD] exp"),
        ("ssn 123-45-6789 on file", "national_id", "ssn [NATIONAL_ID] on file"),
        ("NI number AB 12 34 56 C here", "national_id", "NI number [NATIONAL_ID] here"),
    ],
)
def test_each_kind_is_found_and_redacted(text, kind, shown):
    redacted, found = redact(text)
    assert redacted == shown and found == {kind: 1}


@pytest.mark.parametrize(
    "text",
    [
        "What is 4111 + 1111? 4111 + 1111 = 5222 #### 5222",
        "12 + 7 = 19, so 415 * 555 = 230325",
        "version 3.11.7 and ratio 1.5.2",  # not an IP: only three dots with a trailing part
        "card 4111 1111 1111 1112 fails Luhn",
        "ssn 000-12-3456 is not valid",
        "at 10:30:00 the train left",
        "the sequence 2, 4, 8, 16, 32",
        "1234567890123456 without an issuer prefix",
    ],
)
def test_arithmetic_and_near_misses_are_left_alone(text):
    assert redact(text) == (text, {})


def test_luhn():
    assert luhn_ok("4111111111111111") and luhn_ok("378282246310005") and not luhn_ok("4111111111111112")


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=10**12))
def test_no_sum_of_plain_numbers_is_taken_for_pii(a, b):
    text = f"What is {a} + {b}? {a} + {b} = {a + b} #### {a + b}"
    assert redact(text)[1] == {}


def test_stage_redacts_or_drops_and_counts():
    def row():
        return Record("textbook", "s", "mail me at a@b.io", "synthetic", 1, reasoning="or 415-555-0132", answer="ok")

    stage = RedactPII()
    [kept] = stage.run([row()])
    assert kept.kept and kept.question == "mail me at [EMAIL]" and kept.reasoning == "or [PHONE]"
    assert kept.verdicts[-1].detail == "email=1, phone=1" and stage.counts == {"email": 1, "phone": 1}
    [dropped] = RedactPII(drop=True).run([row()])
    assert not dropped.kept and dropped.reject_reason == "pii" and dropped.question == "mail me at a@b.io"
    clean = Record("solution", "addition", "What is 2 + 2?", "synthetic", 1, answer="4")
    [untouched] = RedactPII().run([clean])
    assert untouched.question == "What is 2 + 2?" and [(v.stage, v.keep, v.reason) for v in untouched.verdicts] == [
        ("pii", True, None)
    ]
