"""Fault injection: real `bambam run` processes killed with SIGKILL at chosen points, a real S3
server behind a fault-injecting proxy, a warehouse held by another process, corrupted model
files, a full disk, bad raw input files; after each, what the pipeline left is compared with a
clean run.

`bench/fault_table.py` runs every scenario and writes the markdown table; the quick CI subset is
`bambam_tests/faults/` (marker `faults`). Shared pieces: `digest` (row counts and a content hash
of every table and curve file), `runner` (a pipeline process with a kill trigger), `s3_proxy`
(HTTP 500, slow answers, connection resets, objects deleted between list and get), `scenarios`,
`bad_input` (damaged lines, partial uploads, re-exports, grown and unparseable files, each
accounted line by line: what the damage should cost, and nothing else).
"""
