"""Counting the points of a sweep: serially, in a local process pool, or on Dask.

The three give identical results in the same order: every point is counted by the same
function (:func:`evaluate`) from the same :class:`Job`, and results are put back in point
order whatever order the workers finish in.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cnncost.caches import cache, gc_paused
from cnncost.errors import ModelRunError, OnnxError, SpecError, UnsupportedOpError, UsageError
from cnncost.sweep.plan import Point

if TYPE_CHECKING:
    from cnncost.onnx.model import Source
    from cnncost.spec.reuse import Recompiler

Progress = Callable[[int, int], None]

METRICS = ("params", "macs", "flops", "activation_bytes", "peak_memory_bytes")
LATENCY = "latency_ms"  # predicted (sweep --latency)
# --mode train: a training step's figures (Adam's update and memory), forward MACs apart.
TRAIN_METRICS = ("params", "macs", "backward_macs", "step_flops", "training_memory_bytes")
TRAIN_OPTIMIZER = "adam"
# Points per task sent to a pool process or Dask worker: big enough that a task's overhead
# (pickling the spec text, a round trip) is small next to counting, small enough to balance.
MAX_CHUNK = 64
# What one point may fail with while the others go on: the spec does not compile at those
# values (a shape that no longer fits), or an op has no formula under --strict. Anything
# else (a bad --dtype, say) is the same for every point and stops the sweep with its error.
POINT_ERRORS = (SpecError, UnsupportedOpError, ModelRunError, OnnxError)
# Dask workers run tasks in threads, and building a torch.fx graph patches module-level
# state while it traces: one count at a time per process (counting holds the GIL anyway).
_ONE_AT_A_TIME = threading.Lock()
_RECOMPILERS: dict[tuple[str, str, tuple[int, ...] | None], Recompiler] = cache(
    "sweep: the spec compiled")
_SOURCES: dict[str, Source] = cache("sweep: the ONNX file read")  # once per process


@dataclass(frozen=True)
class Job:
    """What every point shares; the spec travels as text, so remote workers need no file."""

    text: str
    file: str
    fixed: Mapping[str, str] = field(default_factory=dict)
    input: tuple[int, ...] | None = None
    dtype: str = "float32"
    policy: str = "all"
    strict: bool = False
    engine: str | None = None  # None: the counting API's default engine
    mode: str = "inference"  # or "train": each point counts a training step
    # --latency: each point's latency predicted from this calibration (cnncost.predict)
    calibration: Any = None
    onnx: bool = False  # ``file`` is an ONNX file (``text`` empty), swept over its dims

    @property
    def metrics(self) -> tuple[str, ...]:
        """What each point reports: METRICS, or TRAIN_METRICS in train mode; with a
        calibration, the predicted latency too."""
        base = TRAIN_METRICS if self.mode == "train" else METRICS
        return (*base, LATENCY) if self.calibration is not None else base


@dataclass(frozen=True)
class PointResult:
    """One point's totals, or the one-line error that stopped it (then every count is 0)."""

    point: Point
    params: int = 0
    macs: int = 0
    flops: int = 0
    activation_bytes: int = 0
    peak_memory_bytes: int = 0
    error: str | None = None
    # train mode only (0 otherwise): backward MACs, Adam's step FLOPs and training memory
    backward_macs: int = 0
    step_flops: int = 0
    training_memory_bytes: int = 0
    latency_ms: float = 0.0  # predicted, with --latency (0 otherwise)

    @property
    def ok(self) -> bool:
        return self.error is None


def evaluate(job: Job, point: Point) -> PointResult:
    """Count one point; a POINT_ERRORS error (a shape that no longer fits) is its result."""
    from cnncost.count.engines import count_loaded, totals_loaded

    if job.onnx:
        return _evaluate_onnx(job, point)
    engine: dict[str, Any] = {} if job.engine is None else {"engine": job.engine}
    latency = 0.0
    try:
        with _ONE_AT_A_TIME:
            spec = _recompiler(job).compile({**job.fixed, **point.vars})
            if job.calibration is None:
                t = totals_loaded(spec, batch=point.batch, dtype=job.dtype, policy=job.policy,
                                  strict=job.strict, mode=job.mode, **engine)
            else:  # the layers are needed: each is predicted
                from cnncost.predict.model import predict_table

                table = count_loaded(spec, point.batch, job.dtype, job.policy, None,
                                     job.strict, mode=job.mode, **engine)
                t, latency = table.totals, predict_table(table, job.calibration).latency_ms
    except POINT_ERRORS as exc:
        return PointResult(point, error=" ".join(str(exc).split()))
    result = PointResult(point, t.params, t.macs, t.flops, t.activation_bytes,
                         t.peak_memory_bytes, latency_ms=latency)
    if t.train is None:
        return result
    return replace(result, backward_macs=t.train.backward_macs,
                   step_flops=t.train.step_flops[TRAIN_OPTIMIZER],
                   training_memory_bytes=t.training_memory_bytes[TRAIN_OPTIMIZER])


def _evaluate_onnx(job: Job, point: Point) -> PointResult:
    """One point of an ONNX file: the file read once per process, sized at the point."""
    from cnncost.onnx.engine import count_graph
    from cnncost.onnx.model import read

    dims = {k: int(v) for k, v in {**job.fixed, **point.vars}.items()}
    try:
        source = _SOURCES.get(job.file)
        if source is None:
            _SOURCES.clear()  # one file at a time
            source = _SOURCES[job.file] = read(job.file)
        t = count_graph(source.sized(point.batch, job.input, dims), job.dtype, job.policy,
                        job.strict).totals
    except POINT_ERRORS as exc:
        return PointResult(point, error=" ".join(str(exc).split()))
    return PointResult(point, t.params, t.macs, t.flops, t.activation_bytes,
                       t.peak_memory_bytes)


def _recompiler(job: Job) -> Recompiler:
    """The process's Recompiler of the job's spec: the same spec, however many points and
    chunks this process counts, is compiled once and reshaped (cnncost.spec.reuse)."""
    from cnncost.spec.reuse import Recompiler

    key = (job.text, job.file, job.input)
    found = _RECOMPILERS.get(key)
    if found is None:
        _RECOMPILERS.clear()  # one spec at a time: a worker's memory stays flat
        found = _RECOMPILERS[key] = Recompiler(job.text, job.file, job.input)
    return found


def evaluate_chunk(job: Job, points: Sequence[Point]) -> list[PointResult]:
    """Count several points (one task of a process pool or a Dask worker)."""
    with gc_paused():  # points make no reference cycles (cnncost.caches)
        return [evaluate(job, p) for p in points]


def _chunks(points: Sequence[Point], workers: int) -> list[tuple[Point, ...]]:
    size = max(1, min(MAX_CHUNK, len(points) // (4 * max(1, workers))))
    return [tuple(points[i:i + size]) for i in range(0, len(points), size)]


def run_serial(job: Job, points: Sequence[Point],
               progress: Progress | None = None) -> list[PointResult]:
    """Every point in this process, in order."""
    out = []
    with gc_paused():  # points make no reference cycles (cnncost.caches)
        for p in points:
            out.append(evaluate(job, p))
            if progress:
                progress(len(out), len(points))
    return out


def pool_size(jobs: int, points: int) -> int:
    """The processes ``--jobs N`` gets for ``points`` points: at most one per point and one
    per CPU this process may run on (a 501st process for 2 points only costs its start)."""
    from cnncost.measure.machine import usable_cpus

    return max(1, min(jobs, points, usable_cpus()))


def run_pool(job: Job, points: Sequence[Point], jobs: int,
             progress: Progress | None = None) -> list[PointResult]:
    """The points in a local pool of ``jobs`` processes (at most :func:`pool_size`); results
    in the serial order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    jobs = pool_size(jobs, len(points))
    if jobs == 1:
        return run_serial(job, points, progress)
    out: list[PointResult] = []
    context = multiprocessing.get_context(_start_method())
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context,
                             initializer=_quick_exit) as pool:
        for part in pool.map(functools.partial(evaluate_chunk, job), _chunks(points, jobs)):
            out.extend(part)
            if progress:
                progress(len(out), len(points))
    return out


def _start_method() -> str:
    """fork where it is safe and there: a worker then starts with this process's imports and
    caches (in about 10 ms, against 0.2 s for a fresh interpreter); spawn once torch is
    imported or another thread runs (torch's threads and a held lock do not survive a fork),
    and where fork does not exist."""
    import multiprocessing
    import sys
    import threading

    if "torch" in sys.modules or threading.active_count() > 1 or \
            "fork" not in multiprocessing.get_all_start_methods():
        return "spawn"
    return "fork"


def _quick_exit() -> None:
    """A pool worker, once its results are sent, exits without tearing its heap down: a
    spawned worker ends through sys.exit, which frees every lowered layer and compiled spec
    one by one (most of a second after a long sweep, which the pool's shutdown waits for).
    Its results travel synchronously (a SimpleQueue), so nothing is left to flush."""
    import atexit
    import os

    atexit.register(os._exit, 0)


def run_dask(job: Job, points: Sequence[Point], address: str,
             progress: Progress | None = None) -> list[PointResult]:
    """The points on the Dask distributed scheduler at ``address``; results in serial order."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise UsageError("--dask needs Dask distributed: pip install 'cnncost[dask]'") from None
    probe_scheduler(address)
    try:
        client = Client(address, timeout=f"{CLIENT_TIMEOUT_S}s", set_as_default=False)
    except Exception as exc:
        raise UsageError(f"--dask {address}: cannot reach a Dask scheduler there "
                         f"({' '.join(str(exc).split())})") from None
    try:
        workers = _check_cluster(client, address)
        chunks = _chunks(points, workers)
        futures = client.map(functools.partial(evaluate_chunk, job), chunks, pure=False)
        place = {f.key: i for i, f in enumerate(futures)}
        parts: list[list[PointResult]] = [[] for _ in chunks]
        done = 0
        for future in as_completed(futures, loop=client.loop):
            part = parts[place[future.key]] = future.result()
            done += len(part)
            if progress:
                progress(done, len(points))
    finally:
        client.close()
    return [r for part in parts for r in part]


# What a scheduler's address may be: Dask's network protocols, and inproc:// (a cluster in
# this process, as LocalCluster(processes=False) makes).
DASK_SCHEMES = ("tcp", "tls", "ws", "wss", "inproc")
CONNECT_TIMEOUT_S = 3  # a scheduler on a reachable network answers in milliseconds
CLIENT_TIMEOUT_S = 10  # the client's handshake, once something listens there


def dask_address(text: str) -> tuple[str, str, int]:
    """``--dask`` text checked: (scheme, host, port) of ``tcp://HOST:PORT``, ``HOST:PORT``
    (tcp), ``tls://...``, ``[::1]:8786``; ``inproc://...`` gives (``inproc``, rest, 0). A
    malformed address is a UsageError before anything is counted or connected."""
    scheme, sep, rest = text.strip().partition("://")
    if not sep:
        scheme, rest = "tcp", text.strip()

    def bad(why: str) -> UsageError:
        return UsageError(f"--dask {text!r}: {why}; expected a scheduler address like "
                          "tcp://10.0.0.5:8786")

    if scheme not in DASK_SCHEMES:
        shown = scheme if len(scheme) <= 20 else scheme[:17] + "..."
        raise bad(f"unknown protocol {shown!r} (Dask's: {', '.join(DASK_SCHEMES)})")
    if scheme == "inproc":
        if not rest:
            raise bad("inproc:// names no scheduler")
        return scheme, rest, 0
    if rest.startswith("["):  # an IPv6 address: [::1]:8786
        host, bracket, after = rest[1:].partition("]")
        port = after.removeprefix(":") if after.startswith(":") else None
        if not bracket or port is None:
            raise bad("an IPv6 address is written [ADDRESS]:PORT")
    else:
        host, colon, port = rest.rpartition(":")
        if not colon:
            raise bad("no port")
        if ":" in host:
            raise bad("an IPv6 address is written in brackets, [ADDRESS]:PORT")
    if not _HOST.fullmatch(host):
        raise bad(f"{host!r} is not a host name or an IP address" if host else "no host")
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise bad(f"port {port!r} is not a number from 1 to 65535")
    return scheme, host, int(port)


_HOST = re.compile(r"[A-Za-z0-9._:%-]{1,253}")


def probe_scheduler(address: str) -> None:
    """A scheduler's address checked (:func:`dask_address`) and, for a network address,
    connected to within CONNECT_TIMEOUT_S: a host that does not answer is one line in seconds,
    not Dask's own 20 s wait and a traceback."""
    import socket

    scheme, host, port = dask_address(address)
    if scheme == "inproc":
        return
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S) as conn:
            first = _first_bytes(conn) if scheme == "tcp" else b""
    except socket.gaierror:
        raise UsageError(f"--dask {address}: cannot find the host {host!r}") from None
    except TimeoutError:
        raise UsageError(f"--dask {address}: no answer from {host}:{port} within "
                         f"{CONNECT_TIMEOUT_S} s; is a Dask scheduler running there (`dask "
                         "scheduler`) and reachable?") from None
    except OSError as exc:
        raise UsageError(f"--dask {address}: cannot connect to {host}:{port} "
                         f"({exc.strerror or exc}); is a Dask scheduler running there "
                         "(`dask scheduler`)?") from None
    # A Dask scheduler speaks first over tcp, at once: its handshake's length in 8 bytes
    # (little-endian), then the message (a few dozen bytes). Anything else listening there (a
    # web server, a proxy answering "HTTP/1.1 400") would make Dask's client wait, allocate
    # what that claims, fail, and wait 20 s more to close.
    if scheme == "tcp" and (len(first) < 8 or
                            int.from_bytes(first, "little") > MAX_HANDSHAKE_BYTES):
        said = f"it sent {first!r}" if first else f"it said nothing in {CONNECT_TIMEOUT_S} s"
        raise UsageError(f"--dask {address}: something other than a Dask scheduler listens at "
                         f"{host}:{port} ({said}, where a scheduler greets at once)")


MAX_HANDSHAKE_BYTES = 1 << 20  # a scheduler's greeting is under 100 bytes


def _first_bytes(conn: Any) -> bytes:
    """Up to 8 bytes the server sends first (fewer where it sends nothing in time)."""
    data = b""
    try:
        while len(data) < 8:
            chunk = conn.recv(8 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError:  # a timeout included: judged by the client's own handshake
        pass
    return data


PROTOCOL = "cnncost.sweep.run/1"  # what a scheduler or worker must import to run our tasks


def _check_cluster(client: Any, address: str) -> int:
    """The number of workers, after checking that the scheduler and every worker import this
    module (the scheduler unpickles the tasks too); a clear UsageError otherwise."""
    import pkgutil

    # A probe made of the standard library only, so it unpickles anywhere.
    probe = functools.partial(pkgutil.resolve_name, f"{__name__}:PROTOCOL")
    where = "the scheduler"
    try:
        found = {where: client.run_on_scheduler(probe)}
        where = "a worker"
        found.update(client.run(probe))
    except ImportError as exc:
        raise UsageError(f"--dask {address}: {where} cannot import cnncost ({exc}); install "
                         "the same cnncost on the scheduler and on every worker") from None
    other = sorted(k for k, v in found.items() if v != PROTOCOL)
    if other:
        raise UsageError(f"--dask {address}: {other[0]} runs another cnncost version; install "
                         "the same cnncost on the scheduler and on every worker")
    if len(found) == 1:
        raise UsageError(f"--dask {address}: the scheduler has no workers; start some with "
                         f"`dask worker {address} --nthreads 1`")
    return len(found) - 1
