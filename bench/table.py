"""Turns bench/run.sh's results.tsv into docs/benchmarks.md."""
import datetime
import os
import platform
import subprocess
import sys

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
corpus_bytes, corpus_entries = int(sys.argv[2]), int(sys.argv[3])
r = {(t, s): (v, m) for t, s, v, m in rows}


def val(tool, step):
    return r.get((tool, step), ("-", "-"))


def ratio(a, b):
    try:
        return f"{float(a) / float(b):.2f}x"
    except (ValueError, ZeroDivisionError):
        return "-"


mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
restic_v = subprocess.run(["restic", "version"], capture_output=True, text=True).stdout.strip()
out = [
    "# Benchmarks: cofre vs restic",
    "",
    f"Run by `bench/run.sh` on {datetime.date.today()}: {os.cpu_count()} cores, {mem:.0f} GiB RAM, "
    f"Linux {platform.release()}, local disk (ext4); `cp -a` copies (out of the mounts, and the native one) "
    f"go into tmpfs. {restic_v}.",
    f"Corpus: {corpus_bytes / 2**20:.0f} MiB in {corpus_entries} entries (/usr/lib/x86_64-linux-gnu, "
    "/usr/include, /usr/share/doc and a ~200 MB SQL dump); the mutation rewrites 1% of the dump's "
    "rows in 50 places, appends 1%, edits 20 headers and adds a 20 MB file. Page cache dropped before every step; "
    "the tools take turns at each step, and each mount's copy follows a native copy of the same tree.",
    "",
    "| step | cofre s | restic s | restic / cofre | cofre peak RSS MiB | restic peak RSS MiB |",
    "|---|---|---|---|---|---|",
]
for step in ["initial", "incremental", "nochange", "restore"]:
    (cs, cm), (rs, rm) = val("cofre", step), val("restic", step)
    out.append(f"| {step} ingest | {cs} | {rs} | {ratio(rs, cs)} | {cm} | {rm} |" if step != "restore"
               else f"| restore | {cs} | {rs} | {ratio(rs, cs)} | {cm} | {rm} |")
out += ["", "| repository size | bytes | vs cofre |", "|---|---|---|"]
cofre_size = val("cofre", "size")[0]
for tool in ["cofre", "restic", "borg"]:
    s = val(tool, "size")[0]
    if s != "-":
        out.append(f"| {tool} | {s} | {ratio(s, cofre_size)} |")
out += ["", "| read the latest snapshot | native s | cofre mount s | cofre / native | restic mount s | restic / native |", "|---|---|---|---|---|---|"]
for step, nstep in [("mount-find", "find"), ("mount-cp", "cp")]:
    n, c, rr = val("native", nstep)[0], val("cofre", step)[0], val("restic", step)[0]
    out.append(f"| `{nstep}{' -a' if nstep == 'cp' else ''}` | {n} | {c} | {ratio(c, n)} | {rr} | {ratio(rr, n)} |")
if ("cofre-s3", "initial") in r:
    out += [
        "",
        "## Over S3 (Garage on loopback, same corpus)",
        "",
        "| step | cofre s | restic s | restic / cofre | vs local `cp -a` of the source |",
        "|---|---|---|---|---|",
    ]
    # The native copy measured next to the S3 mount's copies (the VM's speed drifts).
    native_cp = val("native-s3", "cp")[0] if ("native-s3", "cp") in r else val("native", "cp")[0]
    for step, label in [("initial", "initial ingest"),
                        ("incremental", "incremental ingest (the dump changed in other places)"),
                        ("restore", "restore"),
                        ("mount-cp-cold", "`cp -a` out of the mount, cold cache"),
                        ("mount-cp-warm", "`cp -a` out of the mount, warm (disk) cache"),
                        ("rebuild", "catalog rebuild from the bucket")]:
        c, rr = val("cofre-s3", step)[0], val("restic-s3", step)[0]
        vs = ratio(c, native_cp) if step.startswith("mount") else "-"
        out.append(f"| {label} | {c} | {rr} | {ratio(rr, c)} | {vs} |")
    rebuild = val("cofre-s3", "rebuild")[0]
    try:
        out.append(f"\nCatalog rebuild: {float(rebuild) / corpus_entries * 100000:.1f} s per 100k entries (target 60 s).")
    except ValueError:
        pass
# Hand-written analysis below the marker survives a re-run.
MARK = "<!-- analysis: kept by bench/table.py -->"
doc = os.path.join(os.path.dirname(__file__), "..", "docs", "benchmarks.md")
kept = open(doc).read().split(MARK, 1) if os.path.exists(doc) else []
out += ["", MARK + (kept[1] if len(kept) == 2 else "\n")]
print("\n".join(out), end="")
