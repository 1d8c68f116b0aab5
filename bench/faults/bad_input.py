"""Bad input files, on the demo raw files of the fault table, accounted for line by line.

Each scenario damages one raw file of a fresh home built from the same demo raw files as the
clean reference, and runs the ingest step alone (`bambam run --select fct_wait_times`: the step
bad input touches) on it, twice where a retry must change nothing. Then it checks, against the
clean run's warehouse, exactly what the damage should cost:

- facts (by their key: entity, instant, type, minutes): the clean facts missing are split into
  those of the damaged lines (or the file held back), expected, and any other, "lost"; facts the
  clean run lacks are strays ("duplicates");
- fct_rejected_rows: each damaged line must appear with its line number, the expected reason
  and its raw text, and no other rejected row may come or go (except those of lines held back);
- the manifest status where a file cannot be read (attempts, quarantine).

The facts a damaged line should cost are those the clean parser makes of the original line (the
header plus that line, parsed on its own) that no other line of the file holds. Then the good
(or final) file arrives as its source would deliver it, with its own mtime, and one full
`bambam run` follows; the whole home is compared with a clean run over the final files (the
clean reference, or for a corrected re-export one clean run over the corrected files) exactly as
for the other faults. The runs before the last are the ingest step alone so that the last run
trains on the final facts once: with full runs in between, models trained on the first version
would legitimately differ from the reference and hide everything downstream.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from bench.faults import digest
from bench.faults.runner import BAMBAM, RunResult, pipeline_env, run_bambam, unservable_files
from bench.faults.scenarios import RERUN_TIMEOUT_S, Context, Outcome, _ended

INGEST_ONLY = ["--select", "fct_wait_times"]
STANDBY = "export/wait_times/wdw/wdw_wait_times_2024_04.csv"
STANDBY_LAST = "export/wait_times/wdw/wdw_wait_times_2024_06.csv"
STANDBY_MAY = "export/wait_times/wdw/wdw_wait_times_2024_05.csv"
FASTPASS_LAST = "export/fastpass_times/wdw/wdw_fastpass_times_2024_06.csv"
SNAPSHOT = "queue_times/MK/2024-06-30/MK_20240630T150000Z.json"
MAX_ATTEMPTS = 3
HOUR = 3600 * 10**9  # mtimes in ns: a float mtime can move the manifest's microsecond

FactKey = tuple  # (entity_code, observed_at epoch µs, wait_time_type, minutes or None)
RejKey = tuple   # (source_file, line, reason)


@dataclass
class Expect:
    """What the bad input should cost once the bad-input runs are done."""

    missing: Counter                # clean facts the damage should keep out
    new_rejected: Counter           # rejected rows it should add
    gone_rejected: Counter = field(default_factory=Counter)  # clean rejected rows held back
    what: str = ""                  # the damaged part, for the table
    gone_what: str = "the lines held back"  # whose clean rejected rows are gone


# --- reading homes and files -------------------------------------------------------------------

def _fact_rows(conn: duckdb.DuckDBPyConnection, db: str) -> str:
    return (f"SELECT entity_code, epoch_us(observed_at), wait_time_type, wait_time_minutes "
            f"FROM {db}.fct_wait_times")


def _deltas(ref: Path, home: Path) -> tuple[Counter, Counter, Counter, Counter]:
    """(facts lost, facts extra, rejected rows new, rejected rows gone) of `home` vs `ref`,
    as multisets of fact keys and of (file, line, reason)."""
    conn = duckdb.connect()
    try:
        conn.execute(f"ATTACH '{ref / 'warehouse.duckdb'}' AS c (READ_ONLY)")
        conn.execute(f"ATTACH '{home / 'warehouse.duckdb'}' AS f (READ_ONLY)")
        out = []
        for a, b in (("c", "f"), ("f", "c")):
            out.append(Counter(conn.execute(
                f"{_fact_rows(conn, a)} EXCEPT ALL {_fact_rows(conn, b)}").fetchall()))
        rej = "SELECT source_file, line, reason FROM {}.fct_rejected_rows"
        for a, b in (("f", "c"), ("c", "f")):
            out.append(Counter(conn.execute(
                f"{rej.format(a)} EXCEPT ALL {rej.format(b)}").fetchall()))
    finally:
        conn.close()
    return out[0], out[1], out[2], out[3]


def _query(home: Path, sql: str, params: list | None = None) -> list[tuple]:
    conn = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return conn.execute(sql, params or []).fetchall()
    finally:
        conn.close()


_CLEAN_FACTS: dict[Path, set] = {}


def _clean_facts(ctx: Context) -> set:
    if ctx.clean not in _CLEAN_FACTS:
        conn = duckdb.connect(str(ctx.clean / "warehouse.duckdb"), read_only=True)
        try:
            _CLEAN_FACTS[ctx.clean] = set(conn.execute(_fact_rows(conn, "main")).fetchall())
        finally:
            conn.close()
    return _CLEAN_FACTS[ctx.clean]


def _facts_of(ctx: Context, key: str, data: bytes) -> Counter:
    """Every fact the clean parser makes of `data` read as the raw file `key` (kept facts and
    the duplicates it drops: all the facts the content holds)."""
    from bambam_assets.lib.ingest.formats import RawFormat, detect_format
    from bambam_assets.lib.ingest.parsing.wait_files import parse_wait_files, read_qt_mapping

    fmt = detect_format(key, data[:4096])
    mapping = (read_qt_mapping(sorted(ctx.raw.rglob("entity_mapping.csv")))
               if fmt == RawFormat.QUEUE_TIMES_SNAPSHOT else None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(key).name
        path.write_bytes(data)
        result = parse_wait_files([(key, path, fmt)], qt_mapping=mapping)
    held = pd.concat([result.facts, result.also], ignore_index=True)
    if held.empty:
        return Counter()
    micros = pd.DatetimeIndex(held["observed_at"]).asi8 // 1000
    minutes = [None if pd.isna(m) else int(m) for m in held["wait_time_minutes"]]
    return Counter(set(zip(held["entity_code"], micros.tolist(), held["wait_time_type"],
                           minutes, strict=True)))


def _clean_rejected(ctx: Context, key: str) -> list[tuple[int, str]]:
    return _query(ctx.clean, "SELECT line, reason FROM fct_rejected_rows WHERE source_file = ? "
                  "ORDER BY line", [key])


def _clean_line(ctx: Context, key: str, lines: list[bytes], start: int) -> int:
    """The first line at or after index `start` that the clean run read as facts only: not
    rejected, and every fact of it in the clean warehouse."""
    rejected = {ln for ln, _ in _clean_rejected(ctx, key)}
    facts = _clean_facts(ctx)
    for i in range(max(start, 1), len(lines)):
        if i + 1 in rejected or not lines[i].strip():
            continue
        own = _facts_of(ctx, key, lines[0] + b"\n" + lines[i] + b"\n")
        if own and all(k in facts for k in own):
            return i
    raise RuntimeError(f"no clean line in {key} from line {start + 1}")


def _put(home: Path, key: str, data: bytes, mtime_ns: int) -> None:
    path = home / "raw" / key
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def _manifest(home: Path, key: str) -> tuple:
    rows = _query(home, "SELECT status, attempts, error FROM ingest_manifest "
                  "WHERE source_key = ?", [key])
    return rows[0] if rows else ("absent", None, None)


def _cli(home: Path, *args: str, env: dict | None = None) -> RunResult:
    return run_bambam(home, argv=[*BAMBAM, *args], env=env, timeout_s=120)


def _ingest_metadata(home: Path) -> str:
    """What the last ingest step reported (its Dagster materialization metadata)."""
    script = ("import dagster as dg\n"
              "e = dg.DagsterInstance.get().get_latest_materialization_event("
              "dg.AssetKey('fct_wait_times'))\n"
              "m = e.asset_materialization.metadata\n"
              "print(', '.join(f'{k} {m[k].value}' for k in ('files_read', 'files_appended', "
              "'files_replaced', 'rows_added', 'rows_retracted') if k in m))\n")
    r = subprocess.run([sys.executable, "-c", script], env=pipeline_env(home),
                       capture_output=True, text=True, timeout=120)
    out = r.stdout.strip() or (r.stderr.strip().splitlines() or ["?"])[-1]
    return out[:200]


# --- the accounting ----------------------------------------------------------------------------

@dataclass
class Account:
    lost: int = 0                 # clean facts missing that the damage does not explain
    extra: int = 0                # facts the clean run lacks
    cell: str = ""                # the table's bad-input column
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _account(ctx: Context, home: Path, exp: Expect) -> Account:
    lost, extra, new_rej, gone_rej = _deltas(ctx.clean, home)
    explained = lost & exp.missing
    unexplained = lost - exp.missing
    held_elsewhere = exp.missing - lost
    acc = Account(lost=sum(unexplained.values()), extra=sum(extra.values()))
    found = new_rej & exp.new_rejected
    raw_ok = 0
    for (key, line, _reason) in found:
        raw = _query(home, "SELECT raw FROM fct_rejected_rows WHERE source_file = ? AND line = ?",
                     [key, line])
        raw_ok += bool(raw and raw[0][0])
    parts = []
    if exp.new_rejected:
        lines = ", ".join(f"line {ln} {r}" for (_k, ln, r) in sorted(exp.new_rejected))
        parts.append(f"{sum(found.values())} of {sum(exp.new_rejected.values())} damaged lines "
                     f"in fct_rejected_rows with line, reason and raw text ({lines})")
    parts.append(f"{sum(explained.values())} facts of {exp.what} absent, as expected")
    if held_elsewhere:
        parts.append(f"{sum(held_elsewhere.values())} of its facts kept (another line holds "
                     "them)")
    if exp.gone_rejected:
        parts.append(f"{sum((gone_rej & exp.gone_rejected).values())} of "
                     f"{sum(exp.gone_rejected.values())} rejected rows of {exp.gone_what} "
                     "absent, as expected")
    acc.cell = "; ".join(parts)
    if unexplained:
        acc.problems.append(f"after the bad input: {sum(unexplained.values())} clean facts "
                            f"missing beyond {exp.what}: {sorted(unexplained)[:3]}")
    if extra:
        acc.problems.append(f"after the bad input: {sum(extra.values())} facts the clean run "
                            f"lacks: {sorted(extra, key=str)[:3]}")
    if found != exp.new_rejected or raw_ok != sum(found.values()):
        acc.problems.append(f"after the bad input: rejected rows expected but absent or "
                            f"without raw text: {sorted(exp.new_rejected - found)}")
    if new_rej - exp.new_rejected:
        acc.problems.append(f"after the bad input: unexpected rejected rows: "
                            f"{sorted(new_rej - exp.new_rejected)[:5]}")
    if gone_rej != exp.gone_rejected:
        acc.problems.append(f"after the bad input: clean rejected rows missing: "
                            f"{sorted(gone_rej - exp.gone_rejected)[:5]}; expected missing "
                            f"but present: {sorted(exp.gone_rejected - gone_rej)[:5]}")
    return acc


def _scenario(ctx: Context, fault: str, home: Path, injected: str, exp: Expect,
              fix: Callable[[], list[str]], ingest_runs: int = 2, env: dict | None = None,
              after_run: Callable[[int, RunResult], list[str]] | None = None,
              reference: tuple[Path, dict] | None = None) -> Outcome:
    """The bad-input runs (ingest step alone), the accounting, `fix` (the final files), one
    full run, and the comparison of the whole home with the reference."""
    runs, notes, checks = [], [], []
    for i in range(ingest_runs):
        r = run_bambam(home, args=INGEST_ONLY, env=env)
        runs.append(f"exit {r.rc}" if r.rc == 0 else _ended(r))
        if after_run:
            checks += after_run(i + 1, r)
    acc = _account(ctx, home, exp)
    notes += acc.notes
    checks += fix()
    final = run_bambam(home, env=env, timeout_s=RERUN_TIMEOUT_S)
    if final.rc != 0:
        notes.append(f"final run: {_ended(final)}")
    ref_home, ref_digest = reference or (ctx.clean, ctx.clean_digest)
    lost, extra = digest.lost_and_extra(ref_home, home)
    diffs = acc.problems + digest.differences(ref_digest, digest.home_digest(home))
    ended = ", ".join(dict.fromkeys(runs))
    out = Outcome(fault, injected, f"{ingest_runs} x `bambam run --select fct_wait_times`: "
                  f"{ended}", unservable_files(home), final.rc == 0, acc.lost + lost,
                  acc.extra + extra, diffs, notes)
    out.accounted = acc.cell
    out.failed_checks = checks
    return out


# --- damaged lines -----------------------------------------------------------------------------

def _line_fault(ctx: Context, name: str, fault: str, key: str, start: int,
                damage: Callable[[bytes], bytes], reason: str, what: str,
                where: Callable[[int], str | None] | None = None) -> Outcome:
    """One line of `key` damaged by `damage`; then the source re-exports the file intact."""
    original = (ctx.raw / key).read_bytes()
    mtime = (ctx.raw / key).stat().st_mtime_ns
    lines = original.split(b"\n")
    i = _clean_line(ctx, key, lines, start)
    offset = sum(len(ln) + 1 for ln in lines[:i])
    damaged = lines.copy()
    damaged[i] = damage(lines[i])
    pairs = zip(lines[i] + b"\n", damaged[i], strict=False)
    bad_offset = offset + next(j for j, (a, b) in enumerate(pairs) if a != b)
    if where and (problem := where(bad_offset)):
        raise RuntimeError(f"{name}: {problem}")
    home = ctx.home(name)
    _put(home, key, b"\n".join(damaged), mtime - HOUR)
    own = _facts_of(ctx, key, lines[0] + b"\n" + lines[i] + b"\n")
    rest = _facts_of(ctx, key, b"\n".join(lines[:i] + lines[i + 1:]))
    exp = Expect(own - rest, Counter({(key, i + 1, reason): 1}), what=f"line {i + 1}")

    def fix() -> list[str]:
        _put(home, key, original, mtime)
        return []

    return _scenario(ctx, fault, home, f"{what} in line {i + 1} of {key} (byte {bad_offset:,}: "
                     f"{damaged[i][:60]!r}); ingest step run twice; then the intact file "
                     "(re-exported) and a full run", exp, fix)


def _mid(line: bytes, insert: bytes) -> bytes:
    return line[: len(line) // 2] + insert + line[len(line) // 2:]


def nul_first_4kb(ctx: Context) -> Outcome:
    return _line_fault(ctx, "bad_nul_4kb", "NUL byte in a line, within the first 4 KB",
                       STANDBY, 30, lambda ln: _mid(ln, b"\x00"), "nul_bytes",
                       "a NUL byte inserted mid-line",
                       lambda off: None if off < 4096 else "NUL not in the first 4 KB")


def nul_past_4kb(ctx: Context) -> Outcome:
    return _line_fault(ctx, "bad_nul_late", "NUL byte in a line, past the first 4 KB",
                       STANDBY, 3000, lambda ln: _mid(ln, b"\x00"), "nul_bytes",
                       "a NUL byte inserted mid-line",
                       lambda off: None if off >= 4096 else "NUL within the first 4 KB")


def invalid_utf8(ctx: Context) -> Outcome:
    return _line_fault(ctx, "bad_utf8", "invalid UTF-8 in a line", STANDBY, 1500,
                       lambda ln: _mid(ln, b"\xc3\x28\xff"), "invalid_utf8",
                       "bytes C3 28 FF (not UTF-8) inserted mid-line")


def _truncated(ctx: Context, name: str, fault: str, key: str, cut: Callable[[bytes], int],
               what: str) -> Outcome:
    """The file cut inside its last line (a partial upload: no final line break); then the
    whole file arrives. The cut line is held back (neither landed nor rejected: the file is
    'held' in the manifest) until the file grows."""
    original = (ctx.raw / key).read_bytes()
    mtime = (ctx.raw / key).stat().st_mtime_ns
    lines = original.rstrip(b"\n").split(b"\n")
    last = lines[-1]
    if len(lines) != _clean_line(ctx, key, lines, len(lines) - 1) + 1:
        raise RuntimeError(f"{name}: the last line of {key} is not a clean line")
    n = cut(last)
    home = ctx.home(name)
    data = b"\n".join(lines[:-1]) + b"\n" + last[:n]
    _put(home, key, data, mtime - HOUR)
    own = _facts_of(ctx, key, lines[0] + b"\n" + last + b"\n")
    rest = _facts_of(ctx, key, b"\n".join(lines[:-1]) + b"\n")
    exp = Expect(own - rest, Counter(), what=f"line {len(lines)} (held back)")
    seen: list[str] = []

    def after_run(i: int, _r: RunResult) -> list[str]:
        status, _attempts, _error = _manifest(home, key)
        seen.append(str(status))
        return [] if status == "held" else [f"after run {i}: {status}, expected held"]

    def fix() -> list[str]:
        _put(home, key, original, mtime)
        return []

    out = _scenario(ctx, fault, home, f"{key} cut after byte {len(data):,} of "
                    f"{len(original):,}: last line {last!r} ends {last[:n]!r} ({what}); "
                    "ingest step run twice; then the whole file and a full run", exp, fix,
                    after_run=after_run)
    out.notes.append(f"manifest after each ingest run: {'; '.join(seen)}")
    return out


def truncated_last_line(ctx: Context) -> Outcome:
    return _truncated(ctx, "bad_truncated", "truncated last line (partial upload)",
                      STANDBY_LAST, lambda ln: ln.index(b",") + 14,
                      "cut inside the time stamp")


def truncated_fastpass_last_field(ctx: Context) -> Outcome:
    return _truncated(ctx, "bad_truncated_fp", "truncated last line inside its last field "
                      "(partial upload, fastpass file)", FASTPASS_LAST,
                      lambda ln: len(ln) - 1, "its last digit cut off")


# --- changed files -----------------------------------------------------------------------------

def _corrected(ctx: Context) -> tuple[bytes, int, list[int]]:
    """The corrected re-export of STANDBY_MAY: 5 lines' minutes changed by +5."""
    original = (ctx.raw / STANDBY_MAY).read_bytes()
    lines = original.split(b"\n")
    changed: list[int] = []
    start = 1
    while len(changed) < 5:
        i = _clean_line(ctx, STANDBY_MAY, lines, start)
        f = lines[i].split(b",")
        col = 2 if f[2].strip() and f[2].strip() != b"-999" else 3
        if not f[col].strip() or f[col].strip() == b"-999":
            start = i + 1
            continue
        f[col] = str(int(f[col]) + 5).encode()
        lines[i] = b",".join(f)
        changed.append(i)
        start = i + 600
    return b"\n".join(lines), (ctx.raw / STANDBY_MAY).stat().st_mtime_ns + 24 * HOUR, changed


_CORRECTED_REF: dict[Path, tuple[Path, dict]] = {}


def _corrected_reference(ctx: Context) -> tuple[Path, dict]:
    """One clean run over the raw files with the corrected re-export in place."""
    if ctx.clean not in _CORRECTED_REF:
        data, mtime, _ = _corrected(ctx)
        home = ctx.home("bad_corrected_reference")
        _put(home, STANDBY_MAY, data, mtime)
        r = run_bambam(home)
        if r.rc != 0:
            raise RuntimeError(f"the corrected reference run failed:\n{r.output[-3000:]}")
        _CORRECTED_REF[ctx.clean] = (home, digest.home_digest(home))
    return _CORRECTED_REF[ctx.clean]


def corrected_reexport(ctx: Context) -> Outcome:
    """The month's file read, then re-exported with 5 values corrected: the superseded facts
    go, the corrected ones land once. Compared with one clean run over the corrected files,
    and with the clean run plus exactly the known changes."""
    reference = _corrected_reference(ctx)
    original = (ctx.raw / STANDBY_MAY).read_bytes()
    data, mtime, changed = _corrected(ctx)
    old_lines, new_lines = original.split(b"\n"), data.split(b"\n")
    header = old_lines[0] + b"\n"
    old = sum((_facts_of(ctx, STANDBY_MAY, header + old_lines[i] + b"\n") for i in changed),
              Counter())
    new = sum((_facts_of(ctx, STANDBY_MAY, header + new_lines[i] + b"\n") for i in changed),
              Counter())
    held_new = _facts_of(ctx, STANDBY_MAY, data)
    clean = _clean_facts(ctx)
    want_gone = Counter({k: 1 for k in old if k not in held_new})
    want_new = Counter({k: 1 for k in new if k not in clean})
    home = ctx.home("bad_corrected")
    checks: list[str] = []
    notes: list[str] = []

    def fix() -> list[str]:
        _put(home, STANDBY_MAY, data, mtime)
        return []

    exp = Expect(Counter(), Counter(), what="no line (the original export)")
    out = _scenario(ctx, "corrected re-export (5 values changed)", home,
                    f"{STANDBY_MAY} read (ingest step), then re-exported with the minutes of "
                    f"lines {', '.join(str(i + 1) for i in changed)} raised by 5, then a full "
                    "run; the reference is one clean run over the corrected files", exp, fix,
                    ingest_runs=1, reference=reference)
    lost, extra, _, _ = _deltas(ctx.clean, home)
    gone_ok, new_ok = lost == want_gone, extra == want_new
    once = _query(home, "SELECT count(*) FROM fct_wait_times f WHERE EXISTS (SELECT 1 FROM "
                  "(SELECT unnest(?) AS e, unnest(?) AS t, unnest(?) AS y, unnest(?) AS m) k "
                  "WHERE f.entity_code = k.e AND epoch_us(f.observed_at) = k.t "
                  "AND f.wait_time_type = k.y AND f.wait_time_minutes = k.m)",
                  [[k[0] for k in new], [k[1] for k in new], [k[2] for k in new],
                   [k[3] for k in new]])[0][0]
    out.accounted = (f"against the clean run: {sum(lost.values())} facts gone (the superseded "
                     f"values: {sum(want_gone.values())} expected), {sum(extra.values())} new "
                     f"(the corrected values: {sum(want_new.values())} expected); corrected "
                     f"facts in fct_wait_times: {once} of {len(new)}, once each")
    if not gone_ok:
        checks.append(f"superseded facts: expected gone {sorted(want_gone)}, "
                      f"gone {sorted(lost)}")
    if not new_ok or once != len(new):
        checks.append(f"corrected facts: expected new {sorted(want_new)}, new {sorted(extra)}, "
                      f"present {once} of {len(new)}")
    notes.append(f"final ingest: {_ingest_metadata(home)}")
    out.failed_checks += checks
    out.notes += notes
    return out


def grown_file(ctx: Context) -> Outcome:
    """The month's file read without its last lines, then grown by them (a daily export
    appending): exactly the appended rows land, with their rejected rows' whole-file lines."""
    key = STANDBY_LAST
    original = (ctx.raw / key).read_bytes()
    mtime = (ctx.raw / key).stat().st_mtime_ns
    lines = original.rstrip(b"\n").split(b"\n")
    rejected = _clean_rejected(ctx, key)
    last_rejected = max(ln for ln, _ in rejected)  # physical line, 1-based
    cut = min(len(lines) - 60, last_rejected - 10)  # lines[:cut] first; >= 1 rejected appended
    short = b"\n".join(lines[:cut]) + b"\n"
    home = ctx.home("bad_grown")
    _put(home, key, short, mtime - 24 * HOUR)
    appended = _facts_of(ctx, key, lines[0] + b"\n" + b"\n".join(lines[cut:]) + b"\n")
    exp = Expect(appended - _facts_of(ctx, key, short), Counter(),
                 Counter({(key, ln, r): 1 for ln, r in rejected if ln > cut}),
                 what=f"the {len(lines) - cut} lines not yet exported (lines {cut + 1}-"
                      f"{len(lines)})")

    def fix() -> list[str]:
        _put(home, key, original, mtime)
        return []

    out = _scenario(ctx, "grown file (lines appended between runs)", home,
                    f"{key} without its last {len(lines) - cut} lines (ingest step run twice), "
                    f"then the whole file (the {len(lines) - cut} lines appended) and a full "
                    "run", exp, fix)
    meta = _ingest_metadata(home)
    out.notes.append(f"final ingest: {meta}")
    if "files_appended 1" not in meta:
        out.failed_checks.append(f"the grown file was not read as an append: {meta}")
    return out


# --- files that do not parse -------------------------------------------------------------------

def _unreadable(ctx: Context, name: str, fault: str, key: str, bad: bytes, what: str
                ) -> Outcome:
    """`key` replaced by content that never parses: every run fails it and counts an attempt,
    the third quarantines it, a fourth skips it; `bambam ingest quarantine` lists it; then the
    good file is put back and released (`bambam ingest release KEY`) and a full run lands it."""
    original = (ctx.raw / key).read_bytes()
    mtime = (ctx.raw / key).stat().st_mtime_ns
    home = ctx.home(name)
    _put(home, key, bad, mtime - HOUR)
    env = {"BAMBAM_INGEST_MAX_ATTEMPTS": str(MAX_ATTEMPTS)}
    clean_rej = Counter({(key, ln, r): 1 for ln, r in _clean_rejected(ctx, key)})
    exp = Expect(_facts_of(ctx, key, original), Counter(), clean_rej,
                 what="the whole file", gone_what="the clean run in that file")
    seen: list[str] = []
    want = [("failed", 1), ("failed", 2), ("quarantined", 3), ("quarantined", 3)]

    def after_run(i: int, _r: RunResult) -> list[str]:
        status, attempts, error = _manifest(home, key)
        seen.append(f"{status} {attempts}")
        if i == 1:
            seen_error.append(str(error)[:80])
        if (status, attempts) != want[i - 1]:
            return [f"after run {i}: {status}, attempts {attempts}; expected "
                    f"{want[i - 1][0]}, attempts {want[i - 1][1]}"]
        return []

    seen_error: list[str] = []
    listed: list[str] = []

    def fix() -> list[str]:
        checks = []
        q = _cli(home, "ingest", "quarantine", env=env)
        listed.append(q.output.strip().replace("\t", " ")[:160])
        if key not in q.output:
            checks.append(f"`bambam ingest quarantine` does not list it: {q.output.strip()!r}")
        _put(home, key, original, mtime)
        r = _cli(home, "ingest", "release", key, env=env)
        listed.append(f"`bambam ingest release {key}`: exit {r.rc}, {r.output.strip()[:120]!r}")
        if r.rc != 0:
            checks.append(f"`bambam ingest release {key}`: exit {r.rc}")
        return checks

    out = _scenario(ctx, fault, home, f"{key} replaced by {what}; ingest step run 4 times "
                    f"(BAMBAM_INGEST_MAX_ATTEMPTS={MAX_ATTEMPTS}); then the good file put back, "
                    f"`bambam ingest release {key}`, a full run", exp, fix,
                    ingest_runs=len(want), env=env, after_run=after_run)
    out.notes += [f"manifest after each ingest run: {'; '.join(seen)}",
                  f"error: {seen_error[0] if seen_error else '?'}",
                  f"`bambam ingest quarantine`: {listed[0] if listed else '?'}",
                  *listed[1:]]
    return out


def binary_garbage(ctx: Context) -> Outcome:
    rng = random.Random(16)
    return _unreadable(ctx, "bad_binary", "binary garbage under a wait-time file name",
                       STANDBY, rng.randbytes(64 * 1024), "64 KB of random bytes")


def never_parses(ctx: Context) -> Outcome:
    original = (ctx.raw / SNAPSHOT).read_bytes()
    return _unreadable(ctx, "bad_never_parses", "queue-times snapshot that never parses "
                       "(cut in half)", SNAPSHOT, original[: len(original) // 2],
                       f"its first {len(original) // 2} of {len(original)} bytes (JSON cut off)")


SCENARIOS: dict[str, Callable[[Context], Outcome]] = {
    "bad_nul_first_4kb": nul_first_4kb,
    "bad_nul_past_4kb": nul_past_4kb,
    "bad_invalid_utf8": invalid_utf8,
    "bad_truncated_last_line": truncated_last_line,
    "bad_truncated_fastpass": truncated_fastpass_last_field,
    "bad_corrected_reexport": corrected_reexport,
    "bad_grown_file": grown_file,
    "bad_binary_garbage": binary_garbage,
    "bad_never_parses": never_parses,
}
