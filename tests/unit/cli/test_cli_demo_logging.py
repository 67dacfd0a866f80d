"""``mbcas demo`` silences kopf's "OS signals are ignored" warning (its controller runs in a thread
and is stopped by the demo itself), and only that message."""

from __future__ import annotations

import logging

import pytest

from mbcas.cli.demo import quiet_kopf_signal_warning


def test_only_kopfs_signal_warning_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("kopf._core.reactor.running")
    before = list(logger.filters)
    try:
        quiet_kopf_signal_warning()
        quiet_kopf_signal_warning()  # idempotent: one filter
        assert len(logger.filters) == len(before) + 1
        with caplog.at_level(logging.WARNING, logger="kopf"):
            logger.warning("OS signals are ignored: running not in the main thread.")
            logger.warning("something a user can act on")
            logging.getLogger("kopf.objects").warning("OS signals are ignored: elsewhere")
        messages = [r.getMessage() for r in caplog.records]
        assert messages == ["something a user can act on", "OS signals are ignored: elsewhere"]
    finally:
        logger.filters[:] = before
