"""PromQL gate templates: where a placeholder may stand, and how a value is rendered there.

A team's argument is a typed value placed into the platform's query by structure, never text
spliced into it. A template is scanned once (`slots`) and every `{{placeholder}}` must stand in
one of four places, which give its type:

- inside a double-quoted label matcher value after `=` or `!=`: a label value, rendered as the
  content of a PromQL string (backslash, quote and control characters escaped);
- the same after `=~` or `!~`: a regex, the value regex-escaped (so it matches itself only)
  unless the gate declares the argument `regex: true`, then string-escaped only;
- a whole range or subquery duration (`[{{x}}]`, `[{{x}}:{{y}}]`) or after `offset`: a PromQL
  duration (`5m`, `1h30m`), nothing else;
- a whole operand where a number literal may stand (`> {{x}}`, `topk({{x}}, ...)`): a finite
  number, rendered as one.

Anywhere else (a metric or label name, a function's string argument, a comment, a grouping
list, glued to other text) the template is refused: `TemplateError` says where.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from rollwise.api.gates import MetricGateSpec

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")
# Prometheus' model.ParseDuration: units in descending order, each at most once.
_DURATION = re.compile(
    r"^(?:[0-9]+y)?(?:[0-9]+w)?(?:[0-9]+d)?(?:[0-9]+h)?(?:[0-9]+m)?(?:[0-9]+s)?(?:[0-9]+ms)?$"
)
_NUMBER = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")
# Longest first, so `=~` is not read as `=` then `~`.
_OPERATORS = (
    "=~", "!~", "!=", "==", ">=", "<=", "=", ">", "<", "+", "-", "*", "/", "%", "^", ",", ":", "@",
)  # fmt: skip
_MATCHER_OPS = {"=", "!=", "=~", "!~"}
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_WORD = re.compile(r"[A-Za-z0-9_.:]+")
_MAX_VALUE = 253
# RE2's metacharacters outside a class; every other character stands for itself.
_REGEX_META = set("\\.+*?()|[]{}^$")


class TemplateError(ValueError):
    """The template puts a placeholder where a value could change the query's shape."""


class ArgumentError(ValueError):
    """A value does not fit the place its placeholder stands in; says which and why."""


class SlotKind(StrEnum):
    LABEL = "label value"
    REGEX = "regex"
    DURATION = "duration"
    NUMBER = "number"


@dataclass(frozen=True)
class Slot:
    """One placeholder of a template: where it stands (`start`, `end`), its name and type."""

    start: int
    end: int
    name: str
    kind: SlotKind


@dataclass(frozen=True)
class _Open:
    char: str
    before: str  # the token before the bracket, e.g. `by` for a grouping list


def _refuse(template: str, at: int, name: str, where: str) -> TemplateError:
    line = template.count("\n", 0, at) + 1
    return TemplateError(
        f"placeholder {{{{{name}}}}} (line {line}) stands {where}; a placeholder may only be a "
        "whole double-quoted label matcher value or part of it, a whole range/offset duration, "
        "or a whole number operand"
    )


def slots(template: str) -> list[Slot]:
    """Every placeholder of `template` with its type; TemplateError when one stands anywhere
    an argument could change the query's shape."""
    out: list[Slot] = []
    stack: list[_Open] = []
    tokens: list[str] = []  # significant tokens so far (strings as '"', placeholders as '{{}}')
    i, n = 0, len(template)

    def prev() -> str:
        return tokens[-1] if tokens else ""

    while i < n:
        ph = PLACEHOLDER.match(template, i)
        if ph:
            out.append(_bare(template, ph, stack, tokens))
            tokens.append("{{}}")
            i = ph.end()
            continue
        c = template[i]
        if c.isspace():
            i += 1
        elif c == "#":
            end = template.find("\n", i)
            end = n if end < 0 else end
            inside = PLACEHOLDER.search(template, i, end)
            if inside:
                raise _refuse(template, inside.start(), inside.group(1), "in a comment")
            i = end
        elif c in "\"'`":
            in_matcher = bool(stack) and stack[-1].char == "{" and prev() in _MATCHER_OPS
            i = _string(template, i, in_matcher and c == '"', prev(), out)
            tokens.append('"')
        elif c in "({[":
            stack.append(_Open(c, prev()))
            tokens.append(c)
            i += 1
        elif c in ")}]":
            if stack:
                stack.pop()
            tokens.append(c)
            i += 1
        else:
            op = next((o for o in _OPERATORS if template.startswith(o, i)), None)
            if op is not None:
                tokens.append(op)
                i += len(op)
                continue
            word = _WORD.match(template, i)
            if word is None:  # a character PromQL does not know: the parser will say so
                tokens.append(c)
                i += 1
                continue
            tokens.append(word.group(0).lower())
            i = word.end()
    return out


def _string(template: str, i: int, matcher: bool, op: str, out: list[Slot]) -> int:
    """Scan the string starting at `i`; record its placeholders (only in a matcher value)."""
    quote, n = template[i], len(template)
    kind = SlotKind.REGEX if op in ("=~", "!~") else SlotKind.LABEL
    j = i + 1
    while j < n:
        c = template[j]
        if c == quote:
            return j + 1
        if c == "\\" and quote != "`":
            if PLACEHOLDER.match(template, j + 1):
                ph = PLACEHOLDER.match(template, j + 1)
                assert ph is not None
                raise _refuse(template, ph.start(), ph.group(1), "right after a backslash")
            j += 2
            continue
        ph = PLACEHOLDER.match(template, j)
        if ph:
            if not matcher:
                where = (
                    "in a single-quoted or backtick string (use double quotes)"
                    if quote != '"' and op in _MATCHER_OPS
                    else "in a string that is not a label matcher value"
                )
                raise _refuse(template, j, ph.group(1), where)
            out.append(Slot(ph.start(), ph.end(), ph.group(1), kind))
            j = ph.end()
            continue
        j += 1
    raise TemplateError("the template has an unterminated string")


def _bare(template: str, ph: re.Match[str], stack: list[_Open], tokens: list[str]) -> Slot:
    """A placeholder outside any string: a whole duration or a whole number operand."""
    name = ph.group(1)
    before = template[ph.start() - 1] if ph.start() > 0 else " "
    after = template[ph.end()] if ph.end() < len(template) else " "
    prev = tokens[-1] if tokens else ""
    rest = template[ph.end() :].lstrip()
    following = rest[:1]
    top = stack[-1] if stack else None
    in_range = top is not None and top.char == "["
    glued = {c for c in (before, after) if _WORD.match(c) and not (c == ":" and in_range)}
    if glued or before in "\"'`" or after in "\"'`{[(":
        raise _refuse(template, ph.start(), name, "glued to other text")
    if top is not None and top.char == "[":
        if prev in ("[", ":") and following in ("]", ":"):
            return Slot(ph.start(), ph.end(), name, SlotKind.DURATION)
        raise _refuse(template, ph.start(), name, "in a range but not as a whole duration")
    if prev == "offset":
        return Slot(ph.start(), ph.end(), name, SlotKind.DURATION)
    if top is not None and top.char == "{":
        raise _refuse(template, ph.start(), name, "in a label matcher outside its quoted value")
    if top is not None and top.before in _GROUPING:
        raise _refuse(template, ph.start(), name, f"in a {top.before}(...) label list")
    operand_before = prev in ("", "(", ",") or prev in _OPERATORS or prev == "bool"
    operand_after = following in ("", ")", ",") or any(rest.startswith(o) for o in _OPERATORS)
    operand_after = operand_after or re.match(r"(and|or|unless)\b", rest) is not None
    if operand_before and operand_after:
        return Slot(ph.start(), ph.end(), name, SlotKind.NUMBER)
    raise _refuse(template, ph.start(), name, "where neither a duration nor a number stands")


# ---------------------------------------------------------------------------------- rendering


def string_content(value: str) -> str:
    """`value` as the content of a double-quoted PromQL string (Go escapes)."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch.isprintable() and ch != "\u2028" and ch != "\u2029":
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def regex_literal(value: str) -> str:
    """An RE2 regex matching exactly `value` (Prometheus anchors it)."""
    return "".join("\\" + ch if ch in _REGEX_META else ch for ch in value)


def valid_duration(value: str) -> bool:
    """A PromQL duration: `5m`, `1h30m`, `500ms`; never empty or zero."""
    return (
        bool(value) and _DURATION.match(value) is not None and any(c in "123456789" for c in value)
    )


def number_literal(value: str) -> str | None:
    """The value as a PromQL number literal; None when it is not a finite number."""
    if not _NUMBER.match(value.strip()):
        return None
    number = float(value.strip())
    if not math.isfinite(number):
        return None
    return repr(number)


def render_value(slot: Slot, value: str, regex_args: frozenset[str] = frozenset()) -> str:
    """One value rendered for its slot; ArgumentError when it does not fit."""
    if len(value) > _MAX_VALUE:
        raise ArgumentError(f"is over {_MAX_VALUE} characters")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise ArgumentError("is not valid unicode")
    if slot.kind is SlotKind.LABEL:
        return string_content(value)
    if slot.kind is SlotKind.REGEX:
        arg = slot.name.removeprefix("args.")
        regex = value if slot.name.startswith("args.") and arg in regex_args else None
        return string_content(regex if regex is not None else regex_literal(value))
    if slot.kind is SlotKind.DURATION:
        if not valid_duration(value):
            raise ArgumentError(f"{value[:40]!r} is not a PromQL duration such as 30s, 5m or 1h30m")
        return value
    number = number_literal(value)
    if number is None:
        raise ArgumentError(f"{value[:40]!r} is not a finite number")
    return number


def render(
    template: str, values: Mapping[str, str], regex_args: frozenset[str] = frozenset()
) -> str:
    """The query with every placeholder replaced by its typed value. TemplateError for a bad
    template; KeyError(name) for a placeholder without a value; ArgumentError (naming the
    placeholder) for a value that does not fit its place."""
    out: list[str] = []
    at = 0
    for slot in slots(template):
        if slot.name not in values:
            raise KeyError(slot.name)
        try:
            rendered = render_value(slot, values[slot.name], regex_args)
        except ArgumentError as err:
            raise ArgumentError(f"value of {slot.name} (a {slot.kind}) {err}") from None
        out.append(template[at : slot.start])
        out.append(rendered)
        at = slot.end
    out.append(template[at:])
    return "".join(out)


# The placeholders the operator fills itself (core.analysis); every other one is `args.<name>`.
CONTEXT_PLACEHOLDERS = frozenset(
    {"canary.revision", "stable.revision", "service.name", "service.namespace"}
)


def gate_template_problem(spec: MetricGateSpec) -> str | None:
    """Why a Prometheus gate's query template is refused, or None. Checked when the gate is
    read (every rollout using it waits, reporting this) and when it is applied (an Event on
    the gate), so a refused template never reaches Prometheus."""
    if spec.provider.prometheus is None:
        return None
    try:
        found = slots(spec.provider.prometheus.query)
    except TemplateError as err:
        return f"query template refused: {err}"
    declared = {f"args.{a.name}" for a in spec.args} | CONTEXT_PLACEHOLDERS
    if spec.comparison is not None:  # the revision measured, canary's then stable's
        declared.add("revision")
    unknown = sorted({s.name for s in found} - declared)
    if unknown:
        return f"query template uses undeclared placeholders {unknown}; declare them under args"
    return None
