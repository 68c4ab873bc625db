"""portal.flows.stages.options: the one reader of authentik's duration text."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.flows.stages.options import OptionError, parse_authentik_duration


@pytest.mark.parametrize("text,expected", [
    ("weeks=4", timedelta(weeks=4)),
    ("hours=1;minutes=30", timedelta(minutes=90)),
    (" days=1 ; hours=12 ", timedelta(hours=36)),
    ("seconds=0.5", timedelta(milliseconds=500)),
    ("Minutes=5", timedelta(minutes=5)),
])
def test_authentik_durations_are_read(text, expected):
    assert parse_authentik_duration(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "weeks", "weeks=", "weeks=-1", "years=1", "months=2",
                                  "minutes=0", "hours=1;hours=2", "hours=1;;", True, None,
                                  "weeks=999999999"])
def test_anything_else_is_refused(text):
    with pytest.raises(OptionError):
        parse_authentik_duration(text)
