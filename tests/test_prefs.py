"""Desk preferences: typed values, defaults, validation."""

from __future__ import annotations

import pytest


def test_prefs_defaults_set_get_unset(cli):
    listed = {row["key"]: row for row in cli("prefs", "list", "-o", "json").json()}
    assert listed["inactivity_timeout"]["value"] == "30m"
    assert listed["ticket_archive_after"]["value"] == "90d"
    assert cli("prefs", "set", "inactivity_timeout", "PT45M").exit_code == 0
    got = cli("prefs", "get", "inactivity_timeout")
    assert got.stdout.strip() == "45m"
    assert cli("prefs", "unset", "inactivity_timeout").exit_code == 0
    assert cli("prefs", "get", "inactivity_timeout").stdout.strip() == "30m"


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("inactivity_timeout", "soon", "90s, 30m"),
        ("inactivity_timeout", "0s", "longer than 0s"),
        ("pending_timeout", "PT0S", "longer than 0s"),
        ("inactivity_action", "explode", "close, ticket"),
        ("agent_max_chats", "-1", ">= 0"),
        ("timezone", "Mars/Base", "IANA"),
        ("business_hours", "whenever", "mon-fri"),
        ("holidays", "2026-13-45", "date"),
    ],
)
def test_bad_preference_value_is_refused_and_nothing_written(cli, key, value, fragment):
    before = cli("prefs", "list", "-o", "json").json()
    result = cli("prefs", "set", key, "--", value)
    assert result.exit_code == 2, result
    assert fragment in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert cli("prefs", "list", "-o", "json").json() == before


def test_unknown_preference_key_is_usage_error(cli):
    result = cli("prefs", "set", "nope", "1")
    assert result.exit_code == 2


def test_pref_keys_in_cli_match_domain():
    from chatctl.commands.prefs import PreferenceKey
    from chatctl.domain.prefs import PREFERENCES

    assert [key.value for key in PreferenceKey] == list(PREFERENCES)
