"""Gate query templates: placeholders only where a typed value cannot change the query's shape,
values rendered by type. The parse-tree proof with Prometheus' parser is in
test_promql_parse_tree.py."""

from __future__ import annotations

import re

import pytest

from rollwise.api.gates import MetricGateSpec
from rollwise.core import promql
from rollwise.core.promql import SlotKind, gate_template_problem


@pytest.mark.parametrize(
    ("template", "kinds"),
    [
        ('x{a="{{args.a}}"}', [SlotKind.LABEL]),
        ('x{a!="pre-{{args.a}}-post"}', [SlotKind.LABEL]),
        ('x{a=~"{{args.a}}.*",b!~"{{args.b}}"}', [SlotKind.REGEX, SlotKind.REGEX]),
        ("rate(x[{{args.w}}])", [SlotKind.DURATION]),
        ("max_over_time(rate(x[1m])[ {{args.r}} : {{args.s}} ])", [SlotKind.DURATION] * 2),
        ("x offset {{args.o}}", [SlotKind.DURATION]),
        ("x > {{args.n}}", [SlotKind.NUMBER]),
        ("topk({{args.k}}, x)", [SlotKind.NUMBER]),
        ("quantile({{args.q}},x) > bool {{args.n}}", [SlotKind.NUMBER] * 2),
        ('{__name__="{{args.m}}"}', [SlotKind.LABEL]),
    ],
)
def test_placeholders_in_typed_places_are_accepted_with_their_type(
    template: str, kinds: list[SlotKind]
) -> None:
    assert [s.kind for s in promql.slots(template)] == kinds


@pytest.mark.parametrize(
    ("template", "where"),
    [
        ('{{args.metric}}{a="b"}', "glued"),
        ("x_{{args.suffix}}", "glued"),
        ("{{args.m}}_total", "glued"),
        ('x{ {{args.label}}="a"}', "outside its quoted value"),
        ("x{a={{args.v}}}", "outside its quoted value"),
        ("x{a='{{args.v}}'}", "single-quoted"),
        ("x{a=`{{args.v}}`}", "single-quoted"),
        ('label_replace(x, "dst", "{{args.v}}", "src", "(.*)")', "not a label matcher value"),
        ('count_values("{{args.v}}", x)', "not a label matcher value"),
        ("x # {{args.v}}", "comment"),
        ("sum by ({{args.l}}) (x)", "by(...) label list"),
        ("x / on({{args.l}}) y", "on(...) label list"),
        ("rate(x[{{args.w}}m])", "glued"),
        ("rate(x[1m{{args.w}}])", "glued"),
        ('x{a="\\{{args.v}}"}', "backslash"),
        ("x {{args.op}} y", "neither"),
        ("{{args.a}}{{args.b}}", "glued"),
        ("x{{args.a}}", "glued"),
    ],
)
def test_placeholders_anywhere_else_are_refused_saying_where(template: str, where: str) -> None:
    with pytest.raises(promql.TemplateError, match=re.escape(where)):
        promql.slots(template)


def test_label_values_are_string_escaped_never_closing_the_string() -> None:
    rendered = promql.render('x{a="{{args.a}}"}', {"args.a": 'a"}\\ \n\u2028é'})

    assert rendered == 'x{a="a\\"}\\\\ \\u000a\\u2028é"}'


def test_regex_matcher_values_match_only_themselves_unless_declared_regex() -> None:
    template = 'x{a=~"{{args.a}}"}'

    assert promql.render(template, {"args.a": ".*"}) == 'x{a=~"\\\\.\\\\*"}'
    assert promql.render(template, {"args.a": ".*"}, frozenset({"a"})) == 'x{a=~".*"}'
    for value in (".*", "a|b", "(x)+", "[a-z]{2}$^\\"):
        assert re.fullmatch(promql.regex_literal(value), value)
        assert not re.fullmatch(promql.regex_literal(value), "anything else")


@pytest.mark.parametrize("value", ["5s", "1h30m", "500ms", "2w", "1y2d"])
def test_durations_render_as_themselves(value: str) -> None:
    assert promql.render("rate(x[{{args.w}}])", {"args.w": value}) == f"rate(x[{value}])"


@pytest.mark.parametrize(
    "value",
    ["5s])) * 0 or vector(0)) #", "0s", "", "5", "5m1h", "1.5m", "5 m", "-5m", "5m ", "Inf"],
)
def test_non_durations_are_refused_naming_the_placeholder(value: str) -> None:
    with pytest.raises(promql.ArgumentError, match=r"args\.w \(a duration\)"):
        promql.render("rate(x[{{args.w}}])", {"args.w": value})


@pytest.mark.parametrize(("value", "rendered"), [("1", "1.0"), ("-0.5", "-0.5"), ("1e3", "1000.0")])
def test_numbers_render_as_number_literals(value: str, rendered: str) -> None:
    assert promql.render("x > {{args.n}}", {"args.n": value}) == f"x > {rendered}"


@pytest.mark.parametrize("value", ["1 or vector(1)", "NaN", "Inf", "1e999", "0x10", "", "1)"])
def test_non_numbers_are_refused(value: str) -> None:
    with pytest.raises(promql.ArgumentError, match="not a finite number"):
        promql.render("x > {{args.n}}", {"args.n": value})


def _gate(query: str, args: list[dict[str, object]] | None = None) -> MetricGateSpec:
    return MetricGateSpec.model_validate(
        {
            "args": args or [],
            "provider": {"prometheus": {"address": "http://p:9090", "query": query}},
            "thresholdRange": {"max": 1},
        }
    )


def test_a_gate_whose_template_splices_a_placeholder_is_refused_saying_where() -> None:
    problem = gate_template_problem(_gate("rate(x[1m]) * {{args.f}}x", [{"name": "f"}]))

    assert problem is not None and "query template refused" in problem and "glued" in problem


def test_a_gate_using_an_undeclared_placeholder_is_refused_naming_it() -> None:
    problem = gate_template_problem(_gate('x{a="{{args.nope}}",b="{{canary.revision}}"}'))

    assert problem is not None and "['args.nope']" in problem


def test_a_gate_with_typed_placeholders_only_is_accepted() -> None:
    gate = _gate('rate(x{a=~"{{args.a}}"}[{{args.w}}]) > {{args.n}}', [{"name": n} for n in "awn"])

    assert gate_template_problem(gate) is None
