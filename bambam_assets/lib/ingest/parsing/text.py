"""Read CSV-like raw files into one block of data lines per format, keeping physical line numbers.

Why not pyarrow.csv or DuckDB read_csv: neither reports the line number of a good row, and every
rejected row must name its line. So each file is decoded once, split into lines and fields with
pyarrow.compute (vectorized, C++), and the lines of all files of one format are concatenated so
the format is parsed in one pass.

Line rules (documented contract):
- `line` is the 1-based physical line of the file; the header (or the skipped first line of the
  old fastpass format) is the first non-blank line.
- Blank or whitespace-only lines are skipped: not read, not rejected, but they still count in
  the numbering of the lines after them.
- Fields are split on every comma and trimmed of spaces, tabs and double quotes; a quoted field
  holding a comma therefore changes the field count (the wait-time formats never quote one) and
  its row is rejected as `bad_row`, never silently shifted.
- Bad bytes are a line's problem, never the file's: a line holding a NUL byte is rejected as
  `nul_bytes`, a line that is not valid UTF-8 as `invalid_utf8` (its raw text keeps the bytes
  as `\\xNN` escapes), and the file's other lines are read. Only a header line with bad bytes
  makes the file unreadable (format detection calls such a file unknown).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bambam_assets.lib.ingest.formats import header_columns
from bambam_assets.lib.ingest.parsing.common import INVALID_UTF8, NUL_BYTES, OK

_BOM = b"\xef\xbb\xbf"


class UnreadableFile(Exception):
    """A file that cannot be read at all: none of its rows is used and the caller retries it."""


@dataclass(frozen=True)
class ColumnSpec:
    """Where each logical column sits in a data row, and how many fields a row must have."""

    index: dict[str, int | None]  # None: the column is absent (read as empty strings)
    n_fields: int
    exact: bool  # True: exactly n_fields per row; False: at least n_fields (extra ignored)


Resolver = Callable[[list[str]], ColumnSpec]


def header_resolver(required: Sequence[str], optional: Sequence[str] = ()) -> Resolver:
    """A resolver that finds columns by (lower-case) header name and wants exact field counts."""

    def resolve(header: list[str]) -> ColumnSpec:
        missing = [c for c in required if c not in header]
        if missing:
            raise UnreadableFile(f"missing required columns: {', '.join(missing)}")
        index = {c: header.index(c) if c in header else None for c in [*required, *optional]}
        return ColumnSpec(index, len(header), exact=True)

    return resolve


def positional_resolver(names: Sequence[str]) -> Resolver:
    """A resolver for headerless files: the first len(names) fields by position, more allowed."""
    spec = ColumnSpec({c: i for i, c in enumerate(names)}, len(names), exact=False)
    return lambda _header: spec


@dataclass
class LineBlock:
    """Data lines of the readable files of one format: one row per non-blank data line."""

    file_idx: np.ndarray        # int64, index into the caller's file list
    line: np.ndarray            # int64, 1-based physical line number
    raw: pa.Array               # the line as read (without the line break)
    fields_ok: np.ndarray       # bool, the row has the field count its header asks for
    bad_bytes: np.ndarray       # int64 reason code: NUL_BYTES, INVALID_UTF8, or OK
    fields: dict[str, pa.Array]  # logical column -> trimmed string per row
    errors: dict[int, str] = field(default_factory=dict)  # file index -> why it is unreadable

    def __len__(self) -> int:
        return len(self.line)


def read_lines(path: Path) -> tuple[pa.Array, np.ndarray]:
    """All physical lines of a text file (line breaks and trailing \\r removed) and, per line,
    its bad-bytes reason (common.NUL_BYTES, common.INVALID_UTF8, or OK)."""
    data = path.read_bytes()
    if not data.strip():
        raise UnreadableFile("empty file")
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:  # a clean file: one vectorized split
        lines = pc.list_flatten(pc.split_pattern(pa.array([text], pa.large_string()), "\n"))
        return pc.utf8_rtrim(lines, characters="\r"), np.zeros(len(lines), np.int64)
    return _lines_one_by_one(data)


def _escaped(line: bytes) -> str:
    """A bad line as text that shows its bytes: invalid bytes and NUL as \\xNN escapes."""
    return line.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")


def _lines_one_by_one(data: bytes) -> tuple[pa.Array, np.ndarray]:
    """The slow path for a file with bad bytes: each line is checked on its own, so a bad line
    costs only itself (a Python loop, taken only by the rare damaged file)."""
    raw_lines = data.split(b"\n")
    reasons = np.zeros(len(raw_lines), np.int64)
    out: list[str] = []
    for i, line in enumerate(raw_lines):
        if line.endswith(b"\r"):
            line = line[:-1]
        if b"\x00" in line:
            reasons[i] = NUL_BYTES
            out.append(_escaped(line))
            continue
        try:
            out.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            reasons[i] = INVALID_UTF8
            out.append(_escaped(line))
    return pa.array(out, pa.large_string()), reasons


def _read_one(path: Path, resolve: Resolver
              ) -> tuple[np.ndarray, pa.Array, np.ndarray, np.ndarray, dict]:
    lines, bad_bytes = read_lines(path)
    nonblank = np.flatnonzero(
        pc.invert(pc.equal(pc.utf8_trim_whitespace(lines), "")).to_numpy(zero_copy_only=False))
    if len(nonblank) == 0:
        raise UnreadableFile("empty file")
    head = int(nonblank[0])
    if bad_bytes[head] == NUL_BYTES:
        raise UnreadableFile(f"binary content (NUL bytes in the header, line {head + 1})")
    if bad_bytes[head] != OK:
        raise UnreadableFile(f"header line {head + 1} is not valid UTF-8")
    spec = resolve(header_columns(lines[head].as_py()))
    pos = nonblank[1:]
    data = lines.take(pa.array(pos))
    # Pad every line with enough commas that list_element never runs past a short row; the
    # true field count is the padded count minus the padding.
    width = max(i for i in spec.index.values() if i is not None) + 1
    pad = pa.scalar("," * width, pa.large_string())
    no_sep = pa.scalar("", pa.large_string())
    parts = pc.split_pattern(pc.binary_join_element_wise(data, pad, no_sep), ",")
    n_fields = pc.subtract(pc.list_value_length(parts), width).to_numpy()
    ok = n_fields == spec.n_fields if spec.exact else n_fields >= spec.n_fields
    empty = pa.array(np.full(len(pos), "", dtype=object), pa.large_string())
    cols = {
        c: empty if i is None else pc.utf8_trim(pc.list_element(parts, i), ' \t"')
        for c, i in spec.index.items()
    }
    return pos + 1, data, ok, bad_bytes[pos], cols


def read_block(
    files: Sequence[tuple[int, Path]], resolve: Resolver, names: Sequence[str]
) -> LineBlock:
    """Read (file index, path) files of one format into one LineBlock; bad files go to errors.

    `names` are the logical columns the resolver yields (all present even when no file is read).
    """
    lines, raws, oks, bads, idxs, cols = [], [], [], [], [], []
    errors: dict[int, str] = {}
    for idx, path in files:
        try:
            line, raw, ok, bad, fields_ = _read_one(Path(path), resolve)
        except UnreadableFile as exc:
            errors[idx] = str(exc)
            continue
        except Exception as exc:  # one bad file never stops the others
            errors[idx] = f"{type(exc).__name__}: {exc}"
            continue
        lines.append(line)
        raws.append(raw)
        oks.append(ok)
        bads.append(bad)
        idxs.append(np.full(len(line), idx, dtype=np.int64))
        cols.append(fields_)
    return LineBlock(
        file_idx=np.concatenate(idxs) if idxs else np.zeros(0, np.int64),
        line=np.concatenate(lines).astype(np.int64) if lines else np.zeros(0, np.int64),
        raw=pa.concat_arrays(raws) if raws else pa.array([], pa.large_string()),
        fields_ok=np.concatenate(oks) if oks else np.zeros(0, bool),
        bad_bytes=np.concatenate(bads) if bads else np.zeros(0, np.int64),
        fields={
            c: pa.concat_arrays([f[c] for f in cols]) if cols else pa.array([], pa.large_string())
            for c in names
        },
        errors=errors,
    )
