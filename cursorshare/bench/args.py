"""Argument types and the options of one load point, shared by ``cursorshare bench`` and the
comparison tool (``benchmarks/compare.py``)."""

from __future__ import annotations

import argparse

from .clients import SOCKJS_CLIENT_SEND_WAIT_MS
from .transports import TRANSPORTS

__all__ = [
    "add_generator_args",
    "add_point_args",
    "cpu_list",
    "generator_processes",
    "int_list",
    "nonneg_float",
    "optional_cpu",
    "positive_float",
    "positive_int",
    "transport_list",
]


def positive_float(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return v


def nonneg_float(text: str) -> float:
    v = float(text)
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return v


def positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return v


def int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("need one or more integers >= 1")
    return values


def cpu_list(text: str) -> list[int] | None:
    """Comma-separated CPU numbers; ``none`` for no pinning."""
    if text.strip().lower() in ("", "none", "-"):
        return None
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of CPUs: {text}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("CPU numbers are >= 0")
    return values


def transport_list(text: str) -> list[str]:
    values = [x.strip() for x in text.split(",") if x.strip()]
    bad = [v for v in values if v not in TRANSPORTS]
    if not values or bad:
        raise argparse.ArgumentTypeError(
            f"unknown transport(s) {', '.join(bad)}; choose from {', '.join(TRANSPORTS)}"
        )
    return values


def optional_cpu(text: str) -> int | None:
    return None if text.lower() in ("", "none", "-") else int(text)


def add_point_args(
    p: argparse.ArgumentParser,
    *,
    duration: float = 10.0,
    warmup: float = 2.0,
    observers: int | None = None,
) -> None:
    """Rate, timeline and observers of a load point."""
    p.add_argument(
        "--rate",
        "-r",
        type=positive_float,
        default=30.0,
        help="moves per second per client (default 30)",
    )
    p.add_argument(
        "--duration",
        "-d",
        type=positive_float,
        default=duration,
        help=f"measured seconds (default {duration:g})",
    )
    p.add_argument(
        "--warmup",
        "-w",
        type=nonneg_float,
        default=warmup,
        help=f"unmeasured seconds before the window (default {warmup:g})",
    )
    p.add_argument(
        "--drain",
        type=nonneg_float,
        default=1.0,
        help="seconds after the last send for moves in flight to land (default 1)",
    )
    p.add_argument(
        "--send-wait-ms",
        type=nonneg_float,
        default=SOCKJS_CLIENT_SEND_WAIT_MS,
        help="HTTP transports: after each send completes, wait this long before the next, "
        "batching the moves made meanwhile, as sockjs-client's BufferedSender does "
        f"(default {SOCKJS_CLIENT_SEND_WAIT_MS:g}; 0: send as soon as the last one completed)",
    )
    p.add_argument(
        "--observers",
        type=positive_int,
        default=observers,
        help="only this many clients (the first ones: one per room in turn) parse and time "
        "every message; the others receive everything but only count it (default: "
        + ("all" if observers is None else str(observers))
        + ")",
    )


def add_generator_args(p: argparse.ArgumentParser, *, cpus_flag: str, cpus_default: str) -> None:
    """How many generator processes, and the CPUs they are pinned to."""
    p.add_argument(
        "--processes",
        "-P",
        type=positive_int,
        default=None,
        help="load generator processes, each owning every P-th client, all on one clock "
        f"(default: one per CPU of {cpus_flag}, else 1)",
    )
    p.add_argument(
        cpus_flag,
        dest="gen_cpus",
        metavar="CPUS",
        type=cpu_list,
        default=cpu_list(cpus_default),
        help="comma-separated CPUs the generator processes are pinned to, round-robin "
        f"(default {cpus_default})",
    )


def generator_processes(processes: int | None, cpus: list[int] | None) -> int:
    """``--processes`` or, when not given, one process per pinned CPU."""
    if processes is not None:
        return processes
    return len(cpus) if cpus else 1
