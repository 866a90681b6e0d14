"""Generations of a pg_dump-like plain SQL table in which 1% of the rows change between
two generations, scattered at random over the whole table (a busy OLTP table).

usage: gen_scattered.py OUT_PREFIX ROWS GENERATIONS [inplace|moved]
writes OUT_PREFIX.0 .. OUT_PREFIX.{GENERATIONS-1}. `moved`: a changed row moves to the end
of the table, as PostgreSQL's UPDATE writes the new row version into free space elsewhere
(after VACUUM, dumps list rows in physical order)."""
import random
import sys

prefix, rows, gens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mode = sys.argv[4] if len(sys.argv) > 4 else "inplace"
rng = random.Random(7)
words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo"]
version = [0] * rows
order = list(range(rows))


def row(i, v):
    r = random.Random(i * 1000003 + v)
    note = " ".join(r.choice(words) for _ in range(r.randrange(3, 9)))
    return (f"{i}\tcustomer-{r.randrange(50000)}\t{r.randrange(100000)}.{r.randrange(100):02d}\t"
            f"2026-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d} {r.randrange(24):02d}:"
            f"{r.randrange(60):02d}:{r.randrange(60):02d}\t{note}\t{r.getrandbits(64):016x}\n")


for g in range(gens):
    if g:
        changed = rng.sample(range(rows), rows // 100)
        for i in changed:
            version[i] += 1
        if mode == "moved":
            gone = set(changed)
            order = [i for i in order if i not in gone] + changed
    with open(f"{prefix}.{g}", "w") as f:
        f.write("--\n-- PostgreSQL database dump\n--\n\n"
                "COPY public.orders (id, customer, amount, created, note, token) FROM stdin;\n")
        f.writelines(row(i, version[i]) for i in order)
        f.write("\\.\n\n")
