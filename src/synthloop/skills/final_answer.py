"""The final answer in a model's reply, however the model marks it, and never one it hedges or negates.

Marked answers (the last one in the reply wins): `#### X`, "the answer is X", "the final answer is: X",
"Answer: X", "**Answer:** X", "X is the answer", `\\boxed{X}` (nested braces too). With no marker at
all, the last line may still state the answer: `**X**` on it, or the whole line a bare value (`966`,
`966.`, `$X$`, `3000 m`, `$5`, `(1, 2, 3)`, `x^2+2x+1`, or up to three words that are not a
sentence), or state it in words ("So the total is 966.", "The result is 966", "I got 966", "Final: 966").
A last line of working such as `3 + 4 = 7` is never an answer. Around the value, markdown
bold, `$...$`, `\\(...\\)`, `\\boxed{}`, `\\text{}`, quotes and a closing full stop are removed; after an
answer phrase the value ends with its sentence ("The answer is 966. Let me check") or clause ("966,
which is even", "966 because ...").

A hedge ("966 or 12", "either 966 or 12", "between 900 and 1000", "966/12?", "I think 966, or 12") and a
negation ("not 966", "the answer is not 966", "isn't 966", "966 is wrong", "I don't think the answer is
966") state no answer: they come back with `value` None and the reason. A value equal to one of
`exempt` (the reference, or a choice's text, such as "not applicable") is taken as it is."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_SCANNED = 100_000  # only the reply's last characters are read: the answer is at its end
MAX_VALUE_CHARS = 2_000  # a stated answer longer than this is not one (and is not worth reading as a hedge)
MAX_UNWRAPS = 12  # layers of marking taken off a value ($\boxed{**x**}$ is three)
NO_ANSWER = "no final answer stated"
NEGATED = "negated"

HASHES = re.compile(r"####\s*(.+)")
PHRASE = re.compile(r"\b(?:final\s+)?answer\b(?:\*\*|__)?(?:\s+is\b|\s*:)[ \t]*:?([^\n]*)", re.IGNORECASE)
IS_THE_ANSWER = re.compile(
    r"^[ \t>*-]*([^\n]{1,100}?)\s+is\s+(?:the|my)\s+(?:final\s+|correct\s+)?answer\b", re.IGNORECASE | re.MULTILINE
)
STATED = re.compile(  # a last line that states the result in words: "So the total is 966.", "I got 966"
    r"^(?:[^,\n\d]{0,40},\s*)?(?:(?:so|thus|therefore|hence|and)\b[,\s]*)?(?:(?:the\s+)?(?:final\s+)?"
    r"(?:total|result|sum|difference|product|quotient|value|solution)\s+(?:is|equals|=)"
    r"|(?:i|we)\s+(?:get|got|obtain|find|found)|final\s*:)\s+(.+)$",
    re.IGNORECASE,
)
CONNECTIVE = re.compile(r"^(?:so|thus|therefore|hence|then|and)\b[,\s]*", re.IGNORECASE)
BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
BRACES = re.compile(r"[{}]")
BOLD = re.compile(r"\*\*([^*\n]+?)\*\*|__([^_\n]+?)__")
SENTENCE_END = re.compile(r"(?<=[^\s.])\.(?=\s|$)")
CLAUSE_END = re.compile(r",\s+(?:which|because|since)\b|\s+because\b", re.IGNORECASE)  # "12, which is even"
NUMBER = r"[-+−]?[$€£]?\s?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?(?:\s*/\s*\d+)?(?:\s\d+/\d+)?"
QUANTITY = re.compile(rf"{NUMBER}(?:\s*%|\s?[A-Za-zµ°][A-Za-z²³]*(?:\s[A-Za-z]+)?)?", re.IGNORECASE)
ONE_NUMBER = re.compile(NUMBER)
PLAIN_NUMBER = re.compile(rf"{NUMBER}(?:\s*%)?")
LIST_SEPARATOR = re.compile(r"\s*[,;<]\s*")
EXPRESSION = re.compile(r"(?:\\[A-Za-z]+|[0-9A-Za-z^_{}()\[\]+\-*/.,|!' ])+")  # single-letter variables
COMMAND = re.compile(r"\\[A-Za-z]+|\b(?:sqrt|sin|cos|tan|log|ln|exp|pi|inf)\b")
OPTION = re.compile(r"\(?[A-Z]\)?[.):]\s+[^\n]{1,100}")  # "B. Paris", "(B) Paris"
WORDS = re.compile(r"[\w'’()\-]+(?:[ ,]+[\w'’()\-]+){0,2}")
SENTENCE_WORDS = frozenset(  # a short line with one of these is a sentence, not a value
    {"i", "we", "you", "it", "is", "are", "was", "were", "be", "so", "thus", "hence", "then", "therefore"}
    | {"get", "gets", "got", "gives", "think", "answer", "let", "lets", "let's", "me", "my", "this", "that", "step"}
)
OR = re.compile(r"\s*,?\s*\bor\b\s*(?:maybe\s+|perhaps\s+|possibly\s+|else\s+)?", re.IGNORECASE)
EITHER = re.compile(r"\beither\b", re.IGNORECASE)
BETWEEN = re.compile(r"\bbetween\s+(.+?)\s+and\s+(.+)", re.IGNORECASE)
CONDITION = re.compile(r"[<>≤≥]|\\[lg]eq?\b|\\lor\b")  # "x < 0 or x > 2" is one answer, not two
LEADING_DOUBT = re.compile(r"^(?:i\s+think|i\s+guess|maybe|perhaps|probably|possibly)\b[\s,:]*", re.IGNORECASE)
NEGATION = re.compile(
    r"^(?:it\s+is\s+|it's\s+)?not\b|\b(?:is|was|are|were)\s+not\b|\b(?:isn't|wasn't|aren't|can't|cannot)\b"
    r"|\b(?:is|was)\s+(?:wrong|incorrect)\b",
    re.IGNORECASE,
)
DOUBTED = re.compile(r"\bnot\b|n't\b|\bnever\b", re.IGNORECASE)  # in the words before a marker
CONTRAST = re.compile(r"^(.+?),?\s+(?:and\s+)?not\s+(.+)$", re.IGNORECASE)  # "966, not 12" states 966
WRAPS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("`", "`"), ('"', '"'), ("“", "”"), ("'", "'"))
COMMANDS = re.compile(r"^\\(?:boxed|fbox|text|textbf|mathrm)\s*\{")


def normalize_text(text: str) -> str:
    """Case-folded, trimmed, inner whitespace collapsed, trailing full stop removed."""
    return " ".join(text.strip().rstrip(".").casefold().split())


@dataclass(frozen=True)
class FinalAnswer:
    value: str | None  # the stated answer without its marking; None: none stated, a hedge or a negation
    problem: str | None = None  # why there is none: NO_ANSWER, NEGATED, "hedged between 966 and 12"
    marker: str = ""  # how it was found: ####, phrase, boxed, bold, line


def find_final_answer(text: str, exempt: Iterable[str] = ()) -> FinalAnswer:
    """The final answer of `text` (see the module's docstring), with the reason when there is none."""
    # Whitespace runs collapsed first (linear): a reply padded with thousands of spaces is then no harder
    # to read than any other, whatever the patterns below do with `\s*`.
    text = "\n".join(" ".join(line.split()) for line in text[-MAX_SCANNED:].splitlines())
    exempted = {normalize_text(e) for e in exempt if e}
    marked = last_marked(text)
    for _ in range(2):  # "Final Answer: The final answer is $\boxed{42}$": the inner marker states it
        if marked is None or marked[0] != "phrase":
            break
        inner = last_marked(marked[1])
        if inner is None or inner[1] == marked[1]:
            break
        marked = (inner[0], inner[1], marked[2] + inner[2])
    if marked is not None:
        kind, raw, prefix = marked
        if DOUBTED.search(sentence_tail(prefix)):
            return FinalAnswer(None, NEGATED, kind)
        return checked(unwrap(raw), kind, exempted)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return FinalAnswer(None, NO_ANSWER)
    last = lines[-1].strip()
    bold = [m.group(1) or m.group(2) for m in BOLD.finditer(last)]
    if bold and is_value(unwrap(bold[-1]), formatted=True):
        outside = BOLD.sub(" ", last)
        if normalize_text(unwrap(last)) not in exempted and NEGATION.search(outside):
            return FinalAnswer(None, NEGATED, "bold")
        if len({normalize_text(unwrap(b)) for b in bold}) > 1:
            return FinalAnswer(None, hedged([unwrap(b) for b in bold]), "bold")
        return checked(unwrap(bold[-1]), "bold", exempted)
    stated = STATED.match(last)
    if stated:  # in words, only a plain value is taken: "I got 966 wrong" and "the sum is unknown" are not
        raw = first_clause(stated.group(1)).strip()
        value = unwrap(raw)
        found = checked(value, "stated", exempted)
        if found.value is None or states_a_value(found.value, formatted=value != raw.rstrip(".")):
            return found
    value = unwrap(last)
    problem = None if normalize_text(value) in exempted else doubt(value)
    if problem is not None:
        return FinalAnswer(None, problem, "line")
    if is_value(value, formatted=value != last.rstrip(".").strip()):
        return FinalAnswer(value, None, "line")
    return FinalAnswer(None, NO_ANSWER)


def extract_final_answer(text: str, exempt: Iterable[str] = ()) -> str | None:
    """The final answer in `text`, or None when it states none (a hedge and a negation state none)."""
    return find_final_answer(text, exempt).value


def last_marked(text: str) -> tuple[str, str, str] | None:
    """(kind, raw value, the words before the marker on its line) of the last explicit marker."""
    found: list[tuple[int, int, str, str]] = []  # start, end, kind, raw
    for m in HASHES.finditer(text):
        found.append((m.start(), m.end(), "####", m.group(1)))
    for m in PHRASE.finditer(text):
        raw = m.group(1)
        end = m.end()
        if not unwrap(raw):  # "Final answer:" and the answer on the next line
            rest = text[m.end() :].lstrip("\n")
            next_line = rest.split("\n", 1)[0]
            raw, end = next_line, m.end() + len(text[m.end() :]) - len(rest) + len(next_line)
        found.append((m.start(), end, "phrase", first_clause(raw)))
    for m in IS_THE_ANSWER.finditer(text):
        value = CONNECTIVE.sub("", re.split(r"[:;]\s+", m.group(1))[-1])  # "So, 966 is the answer"
        found.append((m.start(1), m.end(), "phrase", value))
    for start, end, inner in boxed_spans(text):
        if not any(s <= start and end <= e for s, e, kind, _ in found if kind == "phrase"):
            found.append((start, end, "boxed", inner))
    if not found:
        return None
    start, _, kind, raw = max(found, key=lambda f: f[0])
    line_start = text.rfind("\n", 0, start) + 1
    if kind == "boxed":
        line_end = text.find("\n", start)
        line = text[line_start : None if line_end < 0 else line_end]
        outermost = outer_spans(boxed_spans(line))  # \boxed{\boxed{7}} is one answer
        values = {normalize_text(inner) for _, _, inner in outermost}
        if len(values) > 1:  # two boxed answers on the final line
            return kind, " or ".join(inner for _, _, inner in outermost), ""
    return kind, raw, text[line_start:start]


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """Every `\\boxed{...}` with balanced braces: (start, end, inside). One pass over the braces."""
    found = list(BOXED.finditer(text))
    if not found:
        return []
    closing, opened = {}, []
    for brace in BRACES.finditer(text):
        if brace.group() == "{":
            opened.append(brace.start())
        elif opened:
            closing[opened.pop()] = brace.start()
    spans = []
    for m in found:
        close = closing.get(m.end() - 1)
        if close is not None:
            spans.append((m.start(), close + 1, text[m.end() : close]))
    return spans


def first_clause(text: str) -> str:
    """What a phrase states ends with its sentence ("966. Let me check") or clause ("966, which is even")."""
    return CLAUSE_END.split(SENTENCE_END.split(text, 1)[0], 1)[0]


def outer_spans(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The spans not inside another (spans come sorted by start)."""
    outer: list[tuple[int, int, str]] = []
    for span in spans:
        if not outer or span[0] >= outer[-1][1]:
            outer.append(span)
    return outer


def sentence_tail(prefix: str) -> str:
    """The words of the clause that leads into a marker ("I don't think the answer is ..."), not those of
    an earlier one ("It is not hard: the answer is ...")."""
    return re.split(r"[.!?:;]\s|,\s*(?:but|so)\s", prefix)[-1]


def checked(value: str, kind: str, exempted: set[str]) -> FinalAnswer:
    if not value or len(value) > MAX_VALUE_CHARS:
        return FinalAnswer(None, NO_ANSWER, kind)
    if normalize_text(value) in exempted:
        return FinalAnswer(value, None, kind)
    contrast = CONTRAST.match(value)
    if contrast and not NEGATION.search(contrast.group(1)):
        value = unwrap(contrast.group(1))
    problem = doubt(value)
    return FinalAnswer(None, problem, kind) if problem else FinalAnswer(value, None, kind)


def doubt(value: str) -> str | None:
    """Why `value` states no single answer (a hedge, a negation), or None."""
    if NEGATION.search(value):
        return NEGATED
    body = LEADING_DOUBT.sub("", value).strip()
    between = BETWEEN.search(body)
    if between:
        return hedged([between.group(1), between.group(2)])
    if body.endswith("?"):
        parts = body.rstrip("?").split("/")
        return hedged(parts) if len(parts) > 1 else "hedged: the answer ends in a question mark"
    if EITHER.search(body) or (OR.search(body) and not CONDITION.search(body)):
        return hedged(OR.split(EITHER.sub("", body)))
    return None


def hedged(parts: list[str]) -> str:
    named = []
    for part in parts:
        numbers = re.findall(r"[-+]?\d[\d,]*(?:\.\d+)?", part)
        name = numbers[-1] if numbers else unwrap(part)
        if name and name not in named:
            named.append(name)
    return "hedged between " + " and ".join(named) if len(named) > 1 else "hedged"


def unwrap(value: str) -> str:
    """`value` without the marking around it: whitespace, colons, bold, `$...$`, `\\boxed{}`, quotes, a
    closing full stop (repeated until nothing changes)."""
    for _ in range(MAX_UNWRAPS):  # deeper nesting than this is no answer a model meant
        before = value
        value = value.strip().lstrip(":").strip()
        value = value.strip("*_").strip()
        if value.endswith((".", "!")) and not value.endswith(".."):
            value = value[:-1].rstrip()
        for left, right in WRAPS:
            if len(value) > len(left) + len(right) and value.startswith(left) and value.endswith(right):
                value = value[len(left) : -len(right)]
                break
        command = COMMANDS.match(value)
        if command and value.endswith("}"):
            spans = boxed_spans("\\boxed{" + value[command.end() :])
            if spans and spans[0][1] == len(value) - command.end() + len("\\boxed{"):
                value = spans[0][2]
        if value == before:
            return value
    return value


def is_value(value: str, formatted: bool = False) -> bool:
    """Whether a line is nothing but a value: a number (with a unit, a currency, a percent), a list or
    tuple of numbers, an expression (`x^2+2x+1`), an option (`B. Paris`), or up to three words that are
    not a sentence; with `formatted` (it was inside `$...$` or bold), any short expression without `=`
    or `:`."""
    if not value or "=" in value or len(value) > 200:
        return False
    if QUANTITY.fullmatch(value) or is_number_list(value) or OPTION.fullmatch(value):
        return True
    if formatted:
        return ":" not in value and len(value.split()) <= 6
    if is_expression(value):
        return True
    words = re.findall(r"[\w'’]+", value.casefold())
    return bool(WORDS.fullmatch(value)) and not (set(words) & SENTENCE_WORDS)


def states_a_value(value: str, formatted: bool) -> bool:
    """A value stated in words must be a plain one: a number, a list of numbers, an expression (or, marked
    with bold or `$...$`, any short value)."""
    if formatted:
        return is_value(value, formatted=True)
    return bool(PLAIN_NUMBER.fullmatch(value)) or is_number_list(value) or is_expression(value)


def is_number_list(value: str) -> bool:
    """`1, 2, 3`, `(1, 2, 3)`, `[1; 2]`, `1 < 2 < 3`. Split first, then each item matched alone: one pattern
    for the whole list backtracks exponentially on a long list that ends in something else."""
    body = value.strip()
    body = body[1:] if body[:1] in "[(" else body
    body = body[:-1] if body[-1:] in "])" else body
    items = LIST_SEPARATOR.split(body.strip())
    return len(items) > 1 and all(ONE_NUMBER.fullmatch(item) for item in items)


def is_expression(value: str) -> bool:
    """`x^2+2x+1`, `\\sqrt{8}`, `2\\pi`: operators, numbers, LaTeX commands and one-letter variables only."""
    if not EXPRESSION.fullmatch(value) or not re.search(r"[\\^+\-*/{}]", value):
        return False
    return not re.search(r"[A-Za-z]{2}", COMMAND.sub(" ", value))
