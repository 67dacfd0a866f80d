"""The live ConfigMap as the agent follows it: polled, failing closed, the last good one kept.

:class:`LiveConfigReloader` reads the ConfigMap named by
:meth:`~mbcas.agent.config.AgentConfig.config_map_ref` at most every ``config_poll_s`` (on the
agent's monotonic clock) and hands back a new :class:`~mbcas.api.live.LiveConfig` when it differs
from the one in force; the agent applies it at the next tick
(:meth:`mbcas.agent.loop.NodeAgent.apply_live`). Keys the ConfigMap does not set keep the values
of the flags and environment.

* **Failing closed.** With a ConfigMap to read (and an API to read it from), the reloader is not
  :attr:`~LiveConfigReloader.ready` until it has read it once: the agent starts from
  :meth:`~LiveConfigReloader.initial`, the flags' config in ``observe`` mode with no per-namespace
  modes, and writes nothing. ``mbcas_agent_config_loaded`` is 0 until then, 1 after.
* **The last good config stays** when the ConfigMap cannot be read later (deleted, 403, 5xx): a
  warning naming the error when it changes, ``mbcas_agent_config_read_errors_total{code}``.
* **An invalid document** (a bad value anywhere) is logged and ignored as a whole:
  ``mbcas_agent_config_reloads_total{result="invalid"}``; an applied one counts as ``applied``.
* **An unknown key** is logged, named, and exported as ``mbcas_agent_config_unknown_keys{key}``;
  the other settings apply.
"""

from __future__ import annotations

import logging
import math

from mbcas.agent.config import AgentConfig
from mbcas.agent.metrics import AgentMetrics
from mbcas.api.live import LiveConfig, RolloutMode, read_live_yaml
from mbcas.kube.client import Kube
from mbcas.kube.configmap import read_config_text
from mbcas.kube.errors import KubeError

__all__ = ["LiveConfigReloader"]

log = logging.getLogger(__name__)


class LiveConfigReloader:
    """Follows one agent's live ConfigMap (see module docs); ``kube=None``: the flags' config only."""

    def __init__(self, config: AgentConfig, kube: Kube | None, metrics: AgentMetrics) -> None:
        self.config = config
        self.kube = kube
        self.metrics = metrics
        self.ready = config.config_map_ref() is None or kube is None
        """The ConfigMap has been read once (or there is none to read): the agent may write."""
        self.metrics.config_loaded.set(1 if self.ready else 0)
        self._error: str | None = None
        self._read_at = -math.inf
        self._unknown: tuple[str, ...] = ()

    def initial(self) -> LiveConfig:
        """The config to start with: the flags' and env's, observe-only until :attr:`ready`."""
        live = self.config.live
        if self.ready:
            return live
        return live.model_copy(update={"mode": RolloutMode.OBSERVE, "namespace_modes": {}})

    def poll(self, now: float, current: LiveConfig) -> LiveConfig | None:
        """Read the ConfigMap when ``config_poll_s`` has passed since the last read (``now``
        monotonic); returns the new live config when it differs from ``current``, else None."""
        ref = self.config.config_map_ref()
        if ref is None or self.kube is None or now - self._read_at < self.config.config_poll_s:
            return None
        self._read_at = now
        namespace, name = ref
        try:
            text = read_config_text(self.kube, namespace, name)
        except KubeError as exc:
            self._unreadable(f"{namespace}/{name}", exc.code, str(exc))
            return None
        if text is None:
            self._unreadable(f"{namespace}/{name}", "NotFound", "not found")
            return None
        self._error = None
        try:
            live, unknown = read_live_yaml(text, self.config.live)
        except ValueError as exc:
            self.metrics.config_reloads.labels("invalid").inc()
            log.error(
                "ignoring invalid ConfigMap %s/%s (keeping the last good config): %s", namespace, name, exc
            )
            return None
        self._unknown_keys(unknown, f"{namespace}/{name}")
        if not self.ready:
            self.ready = True
            self.metrics.config_loaded.set(1)
            log.info("live config read from %s/%s: mode %s", namespace, name, live.mode.value)
        if live == current:
            return None
        self.metrics.config_reloads.labels("applied").inc()
        log.info("live config reloaded from %s/%s", namespace, name)
        return live

    def _unreadable(self, where: str, code: str, error: str) -> None:
        """The ConfigMap could not be read (missing, forbidden, API down): the last good config
        stays (the observe-only start while none was read yet). A warning when the error changes."""
        self.metrics.config_read_errors.labels(code).inc()
        keeping = (
            "keeping the last good config"
            if self.ready
            else "staying in observe mode (nothing written) until it can be read"
        )
        if error != self._error:
            log.warning("ConfigMap %s cannot be read (%s), %s: %s", where, code, keeping, error)
        else:
            log.debug("ConfigMap %s still cannot be read: %s", where, error)
        self._error = error

    def _unknown_keys(self, keys: tuple[str, ...], where: str = "") -> None:
        if keys != self._unknown:
            self.metrics.config_unknown_keys.clear()
            for key in keys:
                self.metrics.config_unknown_keys.labels(key).set(1)
            if keys:
                log.warning(
                    "ConfigMap %s: ignoring unknown key(s) %s (the other settings apply)",
                    where,
                    ", ".join(keys),
                )
            self._unknown = keys
