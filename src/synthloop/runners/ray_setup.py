"""Joining Ray for `--engine ray`: a local instance by default, a cluster with `--address` or
`RAY_ADDRESS`. What can go wrong here fails at once with what to do: Ray not installed (the extra to
install), a cluster address nobody answers on (checked with one TCP connection before Ray, which would
otherwise wait for minutes)."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

RAY_EXTRA = "pip install 'synthloop[ray]'"
PROBE_TIMEOUT_S = 5.0


class RayUnavailable(RuntimeError):
    pass


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise RayUnavailable(
            f"--engine ray needs Ray with Ray Data, which is not installed here ({err}); install the extra: {RAY_EXTRA}"
        ) from None
    return ray


def cluster_address(address: str | None) -> str | None:
    """The cluster to join: `--address`, else `RAY_ADDRESS`, else None (a local instance)."""
    chosen = address or os.environ.get("RAY_ADDRESS") or None
    return None if chosen in (None, "local") else chosen


def check_reachable(address: str) -> None:
    """One TCP connection to a `host:port` (or `ray://host:port`) address; `auto` is left to Ray."""
    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailable(f"Ray address {address!r} is not host:port (or ray://host:port, or auto)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as err:
        raise RayUnavailable(
            f"cannot reach the Ray cluster at {address} ({err.strerror or err}); start it (ray start --head) or "
            "check the address; leave --address and RAY_ADDRESS unset to run on a local Ray instance"
        ) from None


def connect(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Ray, initialised: joined to the cluster at `address` (or RAY_ADDRESS), or a local instance with
    `num_cpus` CPUs (all of this machine's when None). Ray Data keeps the order of rows through maps."""
    ray = import_ray()
    if not ray.is_initialized():
        chosen = cluster_address(address)
        if chosen is not None:
            check_reachable(chosen)
        os.environ.pop("RAY_ADDRESS", None) if chosen is None else None  # the choice made here is the one Ray sees
        ray.init(
            address=chosen,
            num_cpus=num_cpus if chosen is None else None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            configure_logging=True,
        )
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return ray
