"""Equality-based label selectors, as ``kubectl -l`` reads them, and the errors for everything else."""

from __future__ import annotations

import pytest

from mbcas.api.selectors import LabelSelector

LABELS = {"app": "web", "tier": "front", "canary": "", "env": "prod"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("   ", True),
        (None, True),
        ("app=web", True),
        ("app==web", True),
        ("app = web", True),
        ("app=db", False),
        ("app!=db", True),
        ("app!=web", False),
        ("missing!=x", True),  # != holds when the label is absent, as in Kubernetes
        ("canary", True),  # exists (empty value)
        ("canary=", True),  # equals the empty string
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("app=web, env!=dev, !legacy, canary", True),
        ("app=web,,", True),  # empty requirements are skipped
        ("APP=web", False),  # keys are case-sensitive
        ("example.com/team=a", False),
        ("missing=", False),
    ],
)
def test_matches(text: str | None, matches: bool) -> None:
    assert LabelSelector.parse(text).matches(LABELS) is matches


def test_parsed_requirements() -> None:
    sel = LabelSelector.parse("a=1,b!=2,c,!d,example.com/e==5")
    assert sel.requirements == (
        ("a", "=", "1"),
        ("b", "!=", "2"),
        ("c", "exists", ""),
        ("d", "!exists", ""),
        ("example.com/e", "=", "5"),
    )
    assert not sel.empty
    assert LabelSelector.parse("").empty


def test_prefixed_key_matches() -> None:
    assert LabelSelector.parse("mbcas.io/opt-out=true").matches({"mbcas.io/opt-out": "true"})
    assert not LabelSelector.parse("mbcas.io/opt-out=true").matches({"mbcas.io/opt-out": "false"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tier in (web,db)", "set-based requirement"),
        ("tier notin (batch)", "set-based requirement"),
        ("app=(web)", "set-based requirement"),
        ("=web", "malformed requirement '=web'"),
        ("!=web", "malformed requirement"),
        ("a=b=c", "malformed requirement 'a=b=c'"),
        ("my app=web", "malformed requirement"),
        ("!!app", "malformed requirement"),
        ("!", "malformed requirement"),
        ("a!b=c", "malformed requirement"),
    ],
)
def test_bad_selectors_are_rejected_with_the_requirement(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="label selector") as info:
        LabelSelector.parse(text)
    assert message in str(info.value)
