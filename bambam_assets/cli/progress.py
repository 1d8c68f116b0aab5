"""Terminal progress bars for `bambam run`: one tqdm bar per long step, fed by progress.json.

The steps write BAMBAM_HOME/status/progress.json as each entity finishes (lib.progress); a
watcher thread in the CLI polls it, so the bars work whichever process or run does the work.
"""

from __future__ import annotations

import threading
from pathlib import Path

from tqdm import tqdm

from bambam_assets.lib.core.progress import read_progress


class ProgressBars:
    """Context manager: shows "entity k of n" bars for steps that report progress."""

    def __init__(self, home: Path, interval_s: float = 0.5) -> None:
        self.home = home
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._bars: dict[tuple[str, str], tqdm] = {}
        self._last: dict[tuple[str, str], str] = {}  # step -> updated_at drawn last
        self._seen_before = self._snapshot()
        self._thread = threading.Thread(target=self._loop, name="bambam-progress", daemon=True)

    def _snapshot(self) -> set[tuple[str, str, str]]:
        doc = read_progress(self.home) or {}
        return {(s.get("run_id", ""), name, s.get("updated_at", ""))
                for name, s in (doc.get("steps") or {}).items()}

    def _poll(self) -> None:
        doc = read_progress(self.home) or {}
        for name, step in (doc.get("steps") or {}).items():
            key = (step.get("run_id", ""), name)
            if (key[0], name, step.get("updated_at", "")) in self._seen_before:
                continue  # a step of an earlier command
            if self._last.get(key) == step.get("updated_at"):
                continue  # nothing new: do not redraw
            self._last[key] = step.get("updated_at")
            bar = self._bars.get(key)
            if bar is None:
                bar = self._bars[key] = tqdm(total=step.get("total") or 0, desc=name,
                                             unit="entity", leave=True)
            bar.total = step.get("total") or bar.total
            bar.set_postfix_str(f"{step.get('entity') or ''} failed={step.get('failed', 0)}",
                                refresh=False)
            bar.update(max(0, int(step.get("done") or 0) - bar.n))
            if step.get("state") != "running":
                bar.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._poll()

    def __enter__(self) -> ProgressBars:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()
        for bar in self._bars.values():
            bar.close()  # idempotent for bars closed when their step finished
