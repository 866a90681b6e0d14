"""Writes a pg_dump-like SQL file (~200 MB). version 1 changes 1% of rows in 50 places
and appends 1% new rows, like a day of an application's updates; each later version
changes another 1% (other places) of version 0's rows, and appends the same rows."""
import random
import sys

path, version = sys.argv[1], int(sys.argv[2])
rows = 2_300_000
rng = random.Random(42 if version <= 1 else 42 + version)
changed = set()
if version:
    for run in range(50):
        start = rng.randrange(rows - 500)
        changed.update(range(start, start + rows // 100 // 50))
with open(path, "w") as f:
    f.write("--\n-- PostgreSQL database dump\n--\nCOPY public.events (id, account, amount, payload) FROM stdin;\n")
    for i in range(rows + (rows // 100 if version else 0)):
        v = version if i in changed else 0
        f.write(f"{i}\taccount-{i % 7919}\t{(i * 37) % 100000}.{i % 100:02d}\tevent {hash((i, v)) & 0xffffffffffff:012x} v{v}\n")
    f.write("\\.\n")
