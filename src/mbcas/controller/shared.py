"""The controller's copy of the contract settings: the shared ConfigMap's ``contract:`` section.

:class:`SharedSettings` reads ``config.yaml`` of the ConfigMap named by
:attr:`~mbcas.controller.config.ControllerConfig.config_map` (the one the agent reads) at start
and again whenever :meth:`SharedSettings.current` is asked after ``poll_s``, and keeps the last
good copy: a ConfigMap that cannot be read or does not validate is logged and the previous
settings stay; a missing ConfigMap (or section) means the defaults, as it does for the agent. The
whole document is validated as the agent validates it (:func:`mbcas.api.live.read_live_yaml`), so
a document the agent refuses (a bad value anywhere, a planner band narrower than the contract's
deadband) is refused here too and the two keep agreeing; unknown keys are a warning naming them.
Thread-safe; the read happens outside the caller's locks.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mbcas.api.contract import ContractSettings
from mbcas.api.live import LiveConfig, read_live_yaml
from mbcas.kube.client import Kube
from mbcas.kube.configmap import read_config_text
from mbcas.kube.errors import KubeError

__all__ = ["SharedSettings"]

log = logging.getLogger(__name__)


@dataclass
class SharedSettings:
    """The contract settings the controller acts on (see module docs): ``ref`` is the ConfigMap
    (None: the defaults only), read at most every ``poll_s`` on the ``mono`` clock."""

    kube: Kube | None
    ref: tuple[str, str] | None
    poll_s: float
    mono: Callable[[], float] = time.monotonic
    _settings: ContractSettings = field(default_factory=ContractSettings, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _read_at: float = field(default=-math.inf, init=False)
    _unknown: tuple[str, ...] = field(default=(), init=False)

    def current(self) -> ContractSettings:
        """The settings, re-read first when the last read is ``poll_s`` old."""
        with self._lock:
            due = self.mono() - self._read_at >= self.poll_s
            if due:
                self._read_at = self.mono()
        if due:
            self.reload()
        with self._lock:
            return self._settings

    def reload(self) -> ContractSettings:
        """Read the ConfigMap now; returns the settings in force afterwards."""
        if self.kube is None or self.ref is None:
            return self._settings
        namespace, name = self.ref
        try:
            text = read_config_text(self.kube, namespace, name)
        except KubeError as exc:
            log.warning(
                "shared ConfigMap %s/%s not readable (keeping the last good settings): %s",
                namespace,
                name,
                exc,
            )
            return self._settings
        try:
            # The whole document, as the agent validates it: both accept and refuse the same ones.
            settings, unknown = read_live_yaml(text or "", LiveConfig())
        except ValueError as exc:
            log.error(
                "ignoring ConfigMap %s/%s (keeping the last good contract settings): %s", namespace, name, exc
            )
            return self._settings
        with self._lock:
            if unknown and unknown != self._unknown:
                log.warning(
                    "ConfigMap %s/%s: ignoring unknown key(s) %s", namespace, name, ", ".join(unknown)
                )
            self._unknown = unknown
            if settings.contract != self._settings:
                log.info("contract settings from %s/%s: %s", namespace, name, settings.contract)
            self._settings = settings.contract
            return self._settings
