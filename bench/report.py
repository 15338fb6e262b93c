"""Turning rounds of samples into the table, the ratios and the verdict on each target.

Ratios are taken inside each round (both sides measured minutes apart at most, on the same
machine load) and the table shows their median over rounds, as it does for every value.
Memory is the highest peak over all rounds minus the process's idle RSS after warm-up.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from statistics import median
from typing import Any

from bench.cases import Sample, sample_from_dict

MIB = 1 << 20


@dataclass(frozen=True)
class Ratio:
    """`case` over `reference`, measured in the same round; `target` is a minimum."""

    case: str
    reference: str
    target: float | None


@dataclass(frozen=True)
class Limits:
    """The ceilings of a mode: CPU per GiB, memory growth, small-file latency."""

    download_cpu: float = 0.6
    upload_cpu: float = 1.5
    rss_growth_mib: float = 32
    small_latency_ms: float = 30


# The CPU targets are for the tmpfs cases; the 5 GiB cases (on disk) are there for memory.
DOWNLOADS = ("GET", "GET range")
UPLOADS = ("PUT → ready", "POST form → ready")
# Processes measured for comparison only: their memory is not Sealdrop's.
REFERENCE_PROCESSES = frozenset({"nginx", "floor"})
# Each Sealdrop case whose CPU per GiB is set beside its reference's in the same round.
CPU_REFERENCES = {"GET": "nginx GET", "PUT → ready": "nginx PUT"}


class Results:
    """Every sample of one mode, by round, and the processes' idle memory."""

    def __init__(self, mode: str, ratios: list[Ratio], limits: Limits) -> None:
        self.mode = mode
        self.ratios = ratios
        self.limits = limits
        self.rounds: list[list[Sample]] = []
        self.extra: list[Sample] = []  # measured once (the 5 GiB cases)
        self.idle_rss: dict[str, int] = {}

    @classmethod
    def from_dict(cls, data: dict[str, Any], ratios: list[Ratio], limits: Limits) -> Results:
        """Results back from their JSON form (`as_dict`)."""
        results = cls(data["mode"], ratios, limits)
        results.rounds = [[sample_from_dict(s) for s in r] for r in data["rounds"]]
        results.extra = [sample_from_dict(s) for s in data["once"]]
        results.idle_rss = {k: round(v * MIB) for k, v in data["idle_rss_mib"].items()}
        return results

    def add_round(self, samples: list[Sample]) -> None:
        """Record one round."""
        self.rounds.append(samples)

    def cases(self) -> list[str]:
        """Case names: references first, then Sealdrop's, in the order of `CASE_ORDER`."""
        names = {s.case for r in self.rounds for s in r} | {s.case for s in self.extra}
        return sorted(names, key=_order)

    def values(self, case: str) -> list[Sample]:
        """Every sample of `case`."""
        return [s for r in self.rounds for s in r if s.case == case] + [
            s for s in self.extra if s.case == case
        ]

    def ratio(self, ratio: Ratio) -> float | None:
        """The median over rounds of case / reference."""
        found = []
        for samples in self.rounds:
            by_name = {s.case: s for s in samples}
            if ratio.case in by_name and ratio.reference in by_name:
                found.append(by_name[ratio.case].value / by_name[ratio.reference].value)
        return median(found) if found else None

    def cpu_ratio(self, case: str, reference: str) -> float | None:
        """The median over rounds of case's CPU per GiB / reference's, in the same round."""
        found = []
        for samples in self.rounds:
            by_name = {s.case: s.cpu_per_gib for s in samples}
            mine, theirs = by_name.get(case), by_name.get(reference)
            if mine is not None and theirs:
                found.append(mine / theirs)
        return median(found) if found else None

    def growth(self, case: str) -> dict[str, float]:
        """Per process: the highest peak RSS during `case` minus its idle RSS, in MiB."""
        worst: dict[str, float] = defaultdict(float)
        for sample in self.values(case):
            once = sample in self.extra  # its own process: idle is its RSS at the start
            for name, usage in sample.usage.items():
                if name in REFERENCE_PROCESSES:
                    continue
                idle = (
                    usage.idle_rss
                    if once
                    else min(self.idle_rss.get(name, 1 << 60), usage.idle_rss)
                )
                worst[name] = max(worst[name], (usage.peak_rss - idle) / MIB)
        return dict(worst)

    def row(self, case: str) -> dict[str, Any]:
        """One line of the table."""
        samples = self.values(case)
        cpu = [s.cpu_per_gib for s in samples if s.cpu_per_gib is not None]
        kernel = [s.kernel_per_gib for s in samples if s.kernel_per_gib is not None]
        ratio = next((r for r in self.ratios if r.case == case), None)
        return {
            "case": case,
            "value": median(s.value for s in samples),
            "unit": samples[0].unit,
            "n": len(samples),
            "ratio": self.ratio(ratio) if ratio else None,
            "reference": ratio.reference if ratio else None,
            "cpu_s_per_gib": median(cpu) if cpu else None,
            "kernel_s_per_gib": median(kernel) if kernel else None,
            "rss_growth_mib": self.growth(case),
        }

    def targets(self) -> list[dict[str, Any]]:
        """Each target of this mode, its measured value and whether it is met."""
        checks: list[dict[str, Any]] = []
        for ratio in self.ratios:
            value = self.ratio(ratio)
            if value is not None:
                checks.append(
                    _check(
                        f"{ratio.case} / {ratio.reference}",
                        value,
                        ratio.target,
                        higher=True,
                        unit="x",
                    )
                )
        for case in DOWNLOADS + UPLOADS:
            limit = self.limits.download_cpu if case in DOWNLOADS else self.limits.upload_cpu
            cpu = [s.cpu_per_gib for s in self.values(case) if s.cpu_per_gib is not None]
            if cpu:
                checks.append(
                    _check(f"{case}: server CPU s/GiB", median(cpu), limit, higher=False, unit="s")
                )
        for case, reference in CPU_REFERENCES.items():
            value = self.cpu_ratio(case, reference)
            if value is not None:
                name = f"{case}: server CPU / {reference}'s"
                checks.append(_check(name, value, None, higher=False, unit="x"))
        worst = max(
            (
                (growth, f"{case} ({name})")
                for case in self.cases()
                for name, growth in self.growth(case).items()
            ),
            default=None,
        )
        if worst is not None:
            checks.append(
                _check(
                    f"peak RSS - idle, worst: {worst[1]}",
                    worst[0],
                    self.limits.rss_growth_mib,
                    higher=False,
                    unit="MiB",
                )
            )
        small = self.values("4 KiB PUT → ready")
        if small:
            checks.append(
                _check(
                    "4 KiB PUT → ready, median",
                    median(s.value for s in small),
                    self.limits.small_latency_ms,
                    higher=False,
                    unit="ms",
                )
            )
        return checks

    def as_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        return {
            "mode": self.mode,
            "idle_rss_mib": {k: round(v / MIB, 1) for k, v in self.idle_rss.items()},
            "table": [self.row(case) for case in self.cases()],
            "targets": self.targets(),
            "rounds": [[s.as_dict() for s in samples] for samples in self.rounds],
            "once": [s.as_dict() for s in self.extra],
        }


def _check(
    name: str, value: float, target: float | None, *, higher: bool, unit: str
) -> dict[str, Any]:
    met = None if target is None else value >= target if higher else value <= target
    sign = ">=" if higher else "<="
    return {
        "target": name,
        "value": round(value, 3),
        "limit": None if target is None else f"{sign} {target:g} {unit}",
        "met": met,
    }


CASE_ORDER = (
    "AES-256-GCM (in process)",
    "nginx GET",
    "nginx GET range",
    "nginx PUT",
    "S3 GET",
    "S3 GET range",
    "S3 PUT",
    "GET",
    "GET range",
    "PUT → ready",
    "POST form → ready",
    "4 KiB PUT → ready",
    "GET /healthz",
    "unknown token, cache warm",
    "unknown token, cache off",
    "PUT 5 GiB → ready",
    "GET 5 GiB",
)


def _order(name: str) -> int:
    return CASE_ORDER.index(name) if name in CASE_ORDER else len(CASE_ORDER)


def format_table(results: Results) -> str:
    """The table as Markdown."""
    processes = sorted(
        {p for r in results.rounds for s in r for p in s.usage} - REFERENCE_PROCESSES
    )
    head = [
        "case",
        "median",
        "vs reference",
        "server CPU s/GiB (kernel)",
        *[f"peak RSS − idle, {p} (MiB)" for p in processes],
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case in results.cases():
        row = results.row(case)
        value = (
            f"{row['value']:,.0f} {row['unit']}"
            if row["unit"] != "ms"
            else f"{row['value']:.1f} ms"
        )
        ratio = f"{row['ratio']:.2f}× {row['reference']}" if row["ratio"] is not None else ""
        cpu = (
            f"{row['cpu_s_per_gib']:.2f} ({row['kernel_s_per_gib']:.2f})"
            if row["cpu_s_per_gib"] is not None
            else ""
        )
        growth = [
            f"{row['rss_growth_mib'][p]:.1f}" if p in row["rss_growth_mib"] else ""
            for p in processes
        ]
        lines.append("| " + " | ".join([case, value, ratio, cpu, *growth]) + " |")
    idle = ", ".join(f"{k} {v / MIB:.0f} MiB" for k, v in results.idle_rss.items())
    lines.append("")
    lines.append(f"Idle RSS after warm-up: {idle}. Medians of {len(results.rounds)} rounds.")
    return "\n".join(lines)


def format_targets(results: Results) -> str:
    """The targets as Markdown."""
    lines = ["| target | measured | limit | met |", "|---|---|---|---|"]
    for check in results.targets():
        met = {True: "yes", False: "**no**", None: "(report)"}[check["met"]]
        lines.append(
            f"| {check['target']} | {check['value']:.3f} | {check['limit'] or ''} | {met} |"
        )
    return "\n".join(lines)
