"""`python -m bench [--quick]`: run every case in shuffled rounds and print the table.

Full mode: 1 GiB files, 7 rounds, the 5 GiB memory cases, then the production mode.
Quick mode: 128 MiB files, 3 rounds, embedded only (under two minutes).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench import cases as bench_cases
from bench.cases import Files, NginxCases, Sample, SealdropCases, make_files
from bench.floor import Floor
from bench.nginx import Nginx
from bench.report import Limits, Ratio, Results, format_table, format_targets
from bench.stacks import Embedded, Production, Stack
from bench.system import ensure_tools, machine

TMPFS = Path("/dev/shm")
DISK = Path("/var/tmp")
BIG_FILE = 5 << 30
NO_CACHE = {"SEALDROP_NEGATIVE_CACHE_TTL_SECONDS": "0"}
IN_API = "PUT → ready, sealed in the API"

EMBEDDED_RATIOS = [
    Ratio("GET", "nginx GET", 0.75),
    Ratio("GET range", "nginx GET range", 0.75),
    # How much of a gap to nginx any Python server pays on this host (bench/floor.py).
    Ratio("Python floor GET", "nginx GET", None),
    Ratio("GET", "Python floor GET", None),
    # Issue 13: sealed while it arrives, ready at half the speed nginx stores the file.
    Ratio("PUT → ready", "nginx PUT", 0.5),
    Ratio("POST form → ready", "PUT → ready", 0.9),
    Ratio("tus → ready", "PUT → ready", 0.9),
    Ratio("unknown token, cache warm", "GET /healthz", 0.5),
    Ratio("unknown token, cache warm", "unknown token, cache off", 3.0),
]
PRODUCTION_RATIOS = [
    Ratio("GET", "S3 GET", None),
    Ratio("GET range", "S3 GET range", None),
    Ratio("PUT → ready", "S3 PUT", 0.5),
    # The same target with SEALDROP_SEAL_IN_REQUEST=true: no staged copy, no worker.
    Ratio(IN_API, "S3 PUT", 0.5),
    Ratio("direct → ready", "PUT → ready", None),
    Ratio("POST form → ready", "PUT → ready", 0.9),
    Ratio("tus → ready", "PUT → ready", 0.9),
    Ratio("unknown token, cache warm", "GET /healthz", 0.5),
    Ratio("unknown token, cache warm", "unknown token, cache off", 3.0),
]

MODES = {
    "embedded": (EMBEDDED_RATIOS, Limits(small_latency_ms=30)),
    "production": (PRODUCTION_RATIOS, Limits(small_latency_ms=100)),
}


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small files, few rounds")
    parser.add_argument("--size-mib", type=int, help="size of the large file")
    parser.add_argument("--rounds", type=int, help="measured rounds")
    parser.add_argument("--modes", help="embedded,production (default: full both, quick embedded)")
    parser.add_argument("--skip-big", action="store_true", help="skip the 5 GiB memory case")
    parser.add_argument(
        "--tus-big-mib", type=int, default=2048, help="size of the resumable memory case"
    )
    parser.add_argument(
        "--only-tus",
        action="store_true",
        help="only PUT → ready and tus → ready (and, embedded, the resumable memory case)",
    )
    parser.add_argument(
        "--only-get",
        action="store_true",
        help="only the downloads: nginx GET and GET range, AES-256-GCM, GET and GET range",
    )
    parser.add_argument(
        "--only-uploads",
        action="store_true",
        help="only the upload cases: embedded, nginx PUT, PUT, form and tus → ready and the "
        "4 KiB PUT; production, PUT → ready and direct → ready (and S3 PUT)",
    )
    parser.add_argument("--json", type=Path, help="where to write the results")
    parser.add_argument("--from-json", type=Path, help="only print the tables of a results file")
    options = parser.parse_args()
    options.size = (options.size_mib or (128 if options.quick else 1024)) << 20
    options.rounds = options.rounds or (3 if options.quick else 7)
    options.load_seconds = 2 if options.quick else 5
    options.small_count = 10 if options.quick else 30
    options.modes = (
        options.modes or ("embedded" if options.quick else "embedded,production")
    ).split(",")
    options.big = not (
        options.quick
        or options.skip_big
        or options.only_tus
        or options.only_uploads
        or options.only_get
    )
    options.json = options.json or Path(
        "bench/results-quick.json" if options.quick else "bench/results.json"
    )
    return options


def _rounds(results: Results, runs: list[Callable[[], Sample]], count: int, stack: Stack) -> None:
    """A warm-up of every case, then `count` rounds, each in a new random order."""
    for run in runs:
        run()
    stack.purge()
    time.sleep(1)
    results.idle_rss = {probe.name: probe.rss() for probe in stack.probes}
    for number in range(1, count + 1):
        stack.purge()  # the links deleted by the last round lose their blobs
        order = random.sample(runs, len(runs))
        started = time.monotonic()
        results.add_round([run() for run in order])
        print(f"  round {number}/{count}: {time.monotonic() - started:.0f} s", flush=True)


def _sealdrop_runs(
    sealdrop: SealdropCases, options: argparse.Namespace
) -> list[Callable[[], Sample]]:
    if options.only_tus:
        return [sealdrop.upload, sealdrop.upload_tus]
    if options.only_get:
        return [sealdrop.download, sealdrop.download_range]
    if options.only_uploads:
        return [
            sealdrop.upload,
            sealdrop.upload_form,
            sealdrop.upload_tus,
            lambda: sealdrop.small_latency(options.small_count),
        ]
    return [
        sealdrop.download,
        sealdrop.download_range,
        sealdrop.upload,
        sealdrop.upload_form,
        sealdrop.upload_tus,
        lambda: sealdrop.small_latency(options.small_count),
        lambda: sealdrop.trivial_rps(options.load_seconds),
        lambda: sealdrop.unknown_rps(options.load_seconds, cache=True),
        lambda: sealdrop.unknown_rps(options.load_seconds, cache=False),
    ]


def run_embedded(work: Path, files: Files, options: argparse.Namespace) -> Results:
    """nginx and the embedded Sealdrop, on tmpfs."""
    results = Results("embedded", *MODES["embedded"])
    nginx = Nginx(work / "nginx", files.big.parent)
    stack = Embedded(work / "embedded")
    cache_off = Embedded(work / "embedded-nocache", NO_CACHE)
    floor = Floor(work / "floor", files.big)
    # The floor seals its own copy of the file: only when a download case runs.
    servers = (nginx, stack, cache_off) if options.only_tus else (nginx, floor, stack, cache_off)
    started: list[Stack | Nginx | Floor] = []
    try:
        for server in servers:
            server.root.mkdir(parents=True, exist_ok=True)
            server.start()
            started.append(server)
        sealdrop = SealdropCases(stack, files, work, cache_off=cache_off)
        sealdrop.prepare()
        references = NginxCases(nginx, files)
        runs = [
            references.get,
            references.get_range,
            *([] if options.only_get else [references.put]),
            lambda: bench_cases.floor_get(floor, files),
            lambda: bench_cases.aes_gcm(files.size),
            *_sealdrop_runs(sealdrop, options),
        ]
        if options.only_tus:
            runs = _sealdrop_runs(sealdrop, options)
        if options.only_uploads:
            runs = [references.put, *_sealdrop_runs(sealdrop, options)]
        print(f"embedded: {options.rounds} rounds of {len(runs)} cases", flush=True)
        _rounds(results, runs, options.rounds, stack)
    finally:
        for server in reversed(started):
            server.stop()
    if options.big:
        results.extra.extend(run_big_file(BIG_FILE))
    if options.big or options.only_tus:
        results.extra.append(run_big_tus(options.tus_big_mib << 20))
    return results


def run_big_file(size: int) -> list[Sample]:
    """Upload and download a `size`-byte file, for peak memory (data on disk, not tmpfs)."""
    work = Path(tempfile.mkdtemp(prefix="sealdrop-bench-big-", dir=DISK))
    source = Path(tempfile.mkdtemp(prefix="sealdrop-bench-src-", dir=TMPFS)) / "big.bin"
    # A sparse file: reads give zeros without taking memory; Sealdrop seals it all the same.
    with source.open("wb") as out:
        out.truncate(size)
    stack = Embedded(work)
    try:
        stack.start()
        small = work / "small.bin"
        small.write_bytes(b"warm-up\n")
        sealdrop = SealdropCases(stack, Files(source, small, size), work, cache_off=stack)
        print(f"memory case: {size >> 30} GiB on disk", flush=True)
        sealdrop.warm_up()
        upload = sealdrop.upload_and_keep("PUT 5 GiB → ready")
        download = sealdrop.download("GET 5 GiB")
        return [upload, download]
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(source.parent, ignore_errors=True)


def run_big_tus(size: int) -> Sample:
    """A `size`-byte resumable upload in 50 MiB PATCHes, for the API's peak memory (data on
    disk; the source and its chunks sparse, so the client takes no memory)."""
    work = Path(tempfile.mkdtemp(prefix="sealdrop-bench-tus-", dir=DISK))
    source = Path(tempfile.mkdtemp(prefix="sealdrop-bench-tus-src-", dir=TMPFS)) / "big.bin"
    with source.open("wb") as out:
        out.truncate(size)
    stack = Embedded(work)
    try:
        stack.start()
        small = work / "small.bin"
        small.write_bytes(b"warm-up\n")
        sealdrop = SealdropCases(stack, Files(source, small, size), work, cache_off=stack)
        print(f"resumable memory case: {size >> 20} MiB on disk", flush=True)
        sealdrop.warm_up()
        # Once before, so that every code path is loaded: the measured peak is the upload's.
        sealdrop.upload_tus("tus → ready")
        return sealdrop.upload_tus(f"tus {size >> 20} MiB → ready")
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(source.parent, ignore_errors=True)


def run_production(work: Path, files: Files, options: argparse.Namespace) -> Results:
    """The API and a worker on PostgreSQL, Redis and S3; S3's own speed as reference."""
    from bench.production import S3Cases, backends
    from bench.stacks import Backends

    results = Results("production", *MODES["production"])
    with backends() as found:
        stack = Production(work / "production", found)
        no_redis = Backends(
            found.database_url,
            None,
            found.blobs_url,
            found.staging_url,
            found.s3_env,
            found.master_keys,
        )
        # The twin only answers lookups: a worker of its own would take the main stack's jobs.
        cache_off = Production(work / "production-nocache", no_redis, NO_CACHE, worker=False)
        # An API that seals PUTs into the blobs itself (no worker needed for them).
        in_api = Production(
            work / "production-in-api", found, {"SEALDROP_SEAL_IN_REQUEST": "true"}, worker=False
        )
        references = S3Cases(dict(found.s3_env), found.blobs_url, files)
        started: list[Stack] = []
        try:
            for server in (stack, cache_off, in_api):
                server.root.mkdir(parents=True, exist_ok=True)
                server.start()
                started.append(server)
            sealdrop = SealdropCases(stack, files, work, cache_off=cache_off)
            sealed_in_api = partial(
                SealdropCases(in_api, files, work, cache_off=cache_off).upload, IN_API
            )
            sealdrop.prepare()
            references.prepare()
            uploads = [sealed_in_api, sealdrop.upload_direct]
            runs = [
                references.get,
                references.get_range,
                *([] if options.only_get else [references.put]),
                *_sealdrop_runs(sealdrop, options),
                *([] if options.only_get else uploads),
            ]
            if options.only_tus:
                runs = _sealdrop_runs(sealdrop, options)
            if options.only_uploads:
                runs = [references.put, sealdrop.upload, *uploads]
            print(f"production: {options.rounds} rounds of {len(runs)} cases", flush=True)
            _rounds(results, runs, options.rounds, stack)
            references.cleanup()
        finally:
            for server in reversed(started):
                server.stop()
    return results


def main() -> None:
    """Run the modes asked for; print each mode's table and save it as soon as it is done."""
    options = _options()
    if options.from_json:
        _print_saved(options.from_json)
        return
    ensure_tools()
    about = machine()
    print(", ".join(f"{k}: {v}" for k, v in about.items()), flush=True)
    work = Path(tempfile.mkdtemp(prefix="sealdrop-bench-", dir=TMPFS))
    try:
        files = make_files(work / "files", options.size)
        for mode in options.modes:
            runner = run_embedded if mode == "embedded" else run_production
            results = runner(work, files, options)
            print(f"\n## {results.mode}: {options.size >> 20} MiB, {options.rounds} rounds\n")
            # The host under every table: a table pasted alone still says where it ran.
            print(", ".join(f"{k}: {v}" for k, v in about.items()) + "\n")
            print(format_table(results))
            print()
            print(format_targets(results), flush=True)
            _save(options, about, results)
    except BaseException:
        _print_logs(work)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nwritten to {options.json}")


def _print_logs(work: Path) -> None:
    """The end of every benchmarked process's log, before the folder goes: what the
    servers said about a case that failed."""
    for log in sorted(work.rglob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-30:]
        print(f"\n--- {log.relative_to(work)}, last {len(lines)} lines", file=sys.stderr)
        print("\n".join(lines), file=sys.stderr)


def _print_saved(path: Path) -> None:
    """Print the tables of a results file again (with the targets as they are now)."""
    for mode, saved in json.loads(path.read_text())["modes"].items():
        ratios, limits = MODES[mode]
        results = Results.from_dict(saved, ratios, limits)
        about = ", ".join(f"{k}: {v}" for k, v in saved["machine"].items())
        size, rounds = saved["size_bytes"] >> 20, len(saved["rounds"])
        print(f"## {mode}: {size} MiB, {rounds} rounds\n\n{about}\n")
        print(format_table(results))
        print()
        print(format_targets(results))
        print()


def _save(options: argparse.Namespace, about: dict[str, str], results: Results) -> None:
    """Write this mode into the JSON file, keeping the other modes' last results."""
    saved: dict[str, Any] = {}
    if options.json.exists():
        earlier = json.loads(options.json.read_text()).get("modes")
        saved = earlier if isinstance(earlier, dict) else {}
    saved[results.mode] = {
        "machine": about,
        "size_bytes": options.size,
        **results.as_dict(),
    }
    options.json.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"modes": saved}, indent=1, ensure_ascii=False)
    options.json.write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
