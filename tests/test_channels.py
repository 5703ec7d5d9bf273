"""Channels are an open vocabulary (SPEC D5): any lower-case word ingest accepts
can be listed and filtered on; the known channels are what completion offers."""

from __future__ import annotations

import json


def _ingest_on(cli, channel: str, customer: str) -> int:
    event = {"type": "chat_started", "customer": customer, "channel": channel, "agent": "alice",
             "at": "2026-11-25T10:00:00Z", "text": "hello"}
    result = cli("events", "ingest", "-", "-o", "json", input=json.dumps(event) + "\n")
    assert result.exit_code == 0, result
    (created,) = result.json()["generated_chats"]
    return created["chat"]


def test_d5_a_channel_ingest_accepted_can_be_listed_and_filtered(cli):
    assert cli("agents", "add", "alice", "--name", "Alice", "--role", "agent", "--online").exit_code == 0
    viber = _ingest_on(cli, "viber", "+27820000001")
    _ingest_on(cli, "whatsapp", "+27820000002")
    listed = cli("chats", "list", "--channel", "viber", "-o", "json")
    assert listed.exit_code == 0, listed
    assert [chat["id"] for chat in listed.json()] == [viber]
    filtered = cli("chats", "filter", "channel=viber", "-o", "ids")
    assert filtered.exit_code == 0 and filtered.stdout.split() == [str(viber)], filtered
    assert cli("chats", "filter", "channel!=viber", "--count").stdout.strip() == "1"
    assert cli("chats", "list", "--channel", "line", "-o", "json").json() == []  # known or not: no error


def test_d5_a_channel_that_is_not_a_word_is_refused_plainly(cli):
    for args in (["chats", "list", "--channel", "Vi ber"], ["chats", "filter", "channel=no/such"]):
        result = cli(*args)
        assert result.exit_code == 2 and "bad channel" in result.stderr and "lower-case word" in result.stderr, result


def test_d5_completion_offers_the_known_channels():
    from chatctl.completion import complete_channel
    from chatctl.vocabulary import CHANNELS

    assert complete_channel(None, [], "w") == ["whatsapp", "webchat"]
    assert complete_channel(None, [], "") == list(CHANNELS)
