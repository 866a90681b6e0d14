"""Generations of a pg_dump-like plain SQL table in which 1% of the rows change between
two generations, scattered at random over the whole table (a busy OLTP table).

usage: gen_scattered.py OUT ROWS GENERATIONS [inplace|moved] [--each CMD]
writes OUT.0 .. OUT.{GENERATIONS-1}; with `--each CMD`, writes OUT, runs `CMD` (shell, with
GEN set) after each generation and leaves only the last. `moved`: a changed row moves to the
end of the table, as PostgreSQL's UPDATE writes the new row version into free space elsewhere
and the dump lists rows in physical order."""
import os
import random
import subprocess
import sys

args = sys.argv[1:]
each = None
if "--each" in args:
    i = args.index("--each")
    each = args[i + 1]
    del args[i:i + 2]
out, rows, gens = args[0], int(args[1]), int(args[2])
mode = args[3] if len(args) > 3 else "inplace"
rng = random.Random(7)
words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo"]


def row(i, v):
    r = random.Random(i * 1000003 + v)
    note = " ".join(r.choice(words) for _ in range(r.randrange(3, 9)))
    return (f"{i}\tcustomer-{r.randrange(50000)}\t{r.randrange(100000)}.{r.randrange(100):02d}\t"
            f"2026-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d} {r.randrange(24):02d}:"
            f"{r.randrange(60):02d}:{r.randrange(60):02d}\t{note}\t{r.getrandbits(64):016x}\n")


version = [0] * rows
text = [row(i, 0) for i in range(rows)]
order = list(range(rows))
head = ("--\n-- PostgreSQL database dump\n--\n\n"
        "COPY public.orders (id, customer, amount, created, note, token) FROM stdin;\n")
for g in range(gens):
    if g:
        changed = rng.sample(range(rows), rows // 100)
        for i in changed:
            version[i] += 1
            text[i] = row(i, version[i])
        if mode == "moved":
            gone = set(changed)
            order = [i for i in order if i not in gone] + changed
    path = out if each else f"{out}.{g}"
    with open(path, "w") as f:
        f.write(head)
        f.write("".join(text[i] for i in order) if mode == "moved" else "".join(text))
        f.write("\\.\n\n")
    if each:
        subprocess.run(each, shell=True, check=True, env={**os.environ, "GEN": str(g)})
