"""The state one harness run shares between its figure modules."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core import PYTHON, ROOT, BenchEnv, Figure, Sizes


@dataclass
class Context:
    env: BenchEnv
    sizes: Sizes
    figures: list[Figure] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    # --profile: where pyinstrument profiles of the measured code go (None: not profiling).
    profile_dir: Path | None = None
    # --split-ceilings: also load each ceiling into a copy with indexes but no FKs.
    split_ceilings: bool = False

    @property
    def scratch(self) -> Path:
        return self.env.scratch

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def stage(self, count: int) -> dict[str, Any]:
        """Run the next COUNT claimable jobs in a fresh process (``bench.stage``); its JSON report."""
        done = subprocess.run(
            [PYTHON, "-m", "bench.stage", str(count)],
            cwd=ROOT,
            env=self.env.child(BENCH_PROFILE_DIR=str(self.profile_dir or "")),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"bench.stage failed ({done.returncode}): {done.stderr[-2000:]}")
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return report

    def explain(self, name: str, statements: list[str]) -> None:
        """With ``--profile``: EXPLAIN (ANALYZE, BUFFERS) of the SELECTs among STATEMENTS into
        profiles/NAME-explain.txt (their plans, as this run's data makes them)."""
        if self.profile_dir is None:
            return
        from django.db import connection

        parts = []
        with connection.cursor() as cursor:
            for sql in statements:
                if not sql.lstrip().upper().startswith("SELECT"):
                    continue
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                plan = "\n".join(row[0] for row in cursor.fetchall())
                parts.append(f"-- {sql[:2000]}\n{plan}\n")
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        (self.profile_dir / f"{name}-explain.txt").write_text("\n".join(parts), encoding="utf-8")
