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
    """The cluster to join: `--address`, else `RAY_ADDRESS`, else None (a new local instance)."""
    chosen = address or os.environ.get("RAY_ADDRESS") or None
    return None if chosen in (None, "local") else chosen


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS
SETTINGS_FRAME = 0x04


def check_reachable(address: str) -> None:
    """A Ray cluster's address (its GCS, gRPC) answers an HTTP/2 connection preface with a SETTINGS
    frame; anything else (nothing listening, a web server, a host that never answers) fails here in
    seconds, where Ray would retry for minutes. `auto` is left to Ray."""
    if address == "auto":
        return
    if address.startswith("ray://"):
        raise RayUnavailable(
            f"Ray Client addresses ({address}) are not supported: run synthloop on the cluster's head node "
            "with --address HOST:PORT (the GCS port, 6379 by default)"
        )
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RayUnavailable(f"Ray address {address!r} is not HOST:PORT (or auto)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S) as conn:
            conn.settimeout(PROBE_TIMEOUT_S)
            conn.sendall(HTTP2_PREFACE)
            head = conn.recv(9)
    except OSError as err:
        raise RayUnavailable(
            f"cannot reach the Ray cluster at {address} ({err.strerror or err}); start it (ray start --head) or "
            "check the address; leave --address and RAY_ADDRESS unset to run on a local Ray instance"
        ) from None
    if len(head) < 9 or head[3] != SETTINGS_FRAME:
        raise RayUnavailable(
            f"{address} answers, but not as a Ray cluster (no gRPC); give the head node's GCS address "
            "(ray start --head prints it, port 6379 by default)"
        )


def connect(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Ray, initialised: joined to the cluster at `address` (or RAY_ADDRESS), or a new local instance
    with `num_cpus` CPUs (all of this machine's when None) even where `ray start` left one running.
    Ray Data keeps the order of rows through maps."""
    ray = import_ray()
    if not ray.is_initialized():
        chosen = cluster_address(address)
        if chosen is not None:
            check_reachable(chosen)
        os.environ.pop("RAY_ADDRESS", None)  # the choice made here is the one Ray sees
        try:
            ray.init(
                address=chosen or "local",
                num_cpus=num_cpus if chosen is None else None,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
                configure_logging=True,
            )
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise RayUnavailable(f"cannot start or join Ray at {chosen or 'a local instance'}: {err}") from None
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return ray
