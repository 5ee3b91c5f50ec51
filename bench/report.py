#!/usr/bin/env python3
# bench/report.py: turns the measurements bench/run.sh recorded in its work folder (results.tsv,
# stored.tsv, meta.txt) into bench/RESULTS.md and a short terminal summary. Standard library only.
import statistics
import sys

work, out_path = sys.argv[1], sys.argv[2]

meta = {}
with open(f"{work}/meta.txt") as f:
    for line in f:
        k, _, v = line.rstrip("\n").partition("=")
        meta[k] = v

runs = {}  # (tool, step) -> list of (wall, cpu, rss_kib)
with open(f"{work}/results.tsv") as f:
    for line in f:
        tool, step, rep, wall, user, sys_, rss = line.rstrip("\n").split("\t")
        runs.setdefault((tool, step), []).append((float(wall), float(user) + float(sys_), int(rss)))

stored = {}
with open(f"{work}/stored.tsv") as f:
    for line in f:
        tool, step, b = line.rstrip("\n").split("\t")
        stored[(tool, step)] = int(b)


def med(tool, step, i=0):
    r = runs.get((tool, step))
    if not r:
        return None
    return statistics.median(x[i] for x in r)


def wall(tool, step):
    return med(tool, step, 0)


def cpu(tool, step):
    return med(tool, step, 1)


def rss(tool, step):
    r = runs.get((tool, step))
    return max(x[2] for x in r) if r else None


def fmt_s(x):
    return "–" if x is None else f"{x:.2f} s"


def fmt_mib(kib):
    return "–" if kib is None else f"{kib / 1024:.0f} MiB"


def fmt_b(b):
    return "–" if b is None else f"{b / 1e6:,.1f} MB"


def spread(tool, step):
    r = runs.get((tool, step))
    if not r or len(r) < 2:
        return ""
    w = sorted(x[0] for x in r)
    return f" ({w[0]:.2f}–{w[-1]:.2f})"


alloc = int(meta["alloc_bytes"])
changed = int(meta["changed_bytes"])
block_sizes = [x for x in meta.get("block_sizes", "").split(",") if x]
pl_tools = [f"pl-{bs}" for bs in block_sizes if (f"pl-{bs}", "full") in runs]


def bs_name(bs):
    if not str(bs).isdigit():
        return str(bs)
    bs = int(bs)
    return f"{bs // 1048576} MiB" if bs % 1048576 == 0 else f"{bs // 1024} KiB"


def targets_for(pl):
    """Each target: (name, met, pilotlight figure, reference, how far)."""
    t = []

    def ratio_target(name, pl_val, ref_val, need, ref_name, cpu_ratio=None):
        if pl_val is None or ref_val is None or pl_val <= 0:
            t.append((name, None, fmt_s(pl_val), f"{ref_name} {fmt_s(ref_val)}", "not measured", ""))
            return
        r = ref_val / pl_val
        met = r >= need
        if met:
            how = f"{r:.1f}× (needs ≥ {need:g}×)"
        else:
            how = (f"{r:.2f}× instead of ≥ {need:g}×: pilotlight would need "
                   f"{pl_val - ref_val / need:.2f} s less ({(1 - ref_val / need / pl_val) * 100:.0f}% faster)")
        t.append((name, met, fmt_s(pl_val), f"{ref_name} {fmt_s(ref_val)}", how,
                  "" if cpu_ratio is None else f"{cpu_ratio:.1f}×"))

    def cr(peer, pstep, plstep):
        a, b = cpu(peer, pstep), cpu(pl, plstep)
        return None if a is None or not b else a / b

    ratio_target("incremental with the list ≤ 1/10 of restic's incremental",
                 wall(pl, "inc"), wall("restic", "inc"), 10, "restic", cr("restic", "inc", "inc"))
    ratio_target("incremental with the list no slower than the naive method",
                 wall(pl, "inc"), wall("naive", "inc"), 1, "naive", cr("naive", "inc", "inc"))
    ratio_target("full backup ≥ 2× restic's throughput", wall(pl, "full"), wall("restic", "full"), 2,
                 "restic", cr("restic", "full", "full"))
    ratio_target("full backup ≥ 2× borg's (zstd,3, default chunker) throughput", wall(pl, "full"),
                 wall("borg", "full"), 2, "borg", cr("borg", "full", "full"))
    if "sha256_rate" in meta and "zstd3_rate" in meta and wall(pl, "full"):
        limit = alloc / 2 * (1 / float(meta["sha256_rate"]) + 1 / float(meta["zstd3_rate"]))
        f = wall(pl, "full") / limit
        met = f <= 1.5
        how = f"{f:.2f}× the limit" + ("" if met else f": {wall(pl, 'full') - 1.5 * limit:.2f} s over 1.5×")
        t.append(("full backup within 1.5× of the two-core hash + compress limit", met,
                  fmt_s(wall(pl, "full")), f"limit {limit:.2f} s", how,
                  f"CPU {cpu(pl, 'full'):.2f} s = {cpu(pl, 'full') / (2 * limit):.2f}× the two-core limit's CPU"))
    ratio_target("restore ≥ 3× restic's restore", wall(pl, "restore"), wall("restic", "restore"), 3,
                 "restic", cr("restic", "restore", "restore"))
    peak = max((rss(pl, s) or 0) for s in ("full", "inc", "hash", "restore"))
    if peak:
        met = peak <= 100 * 1024
        how = (f"{peak / 1024:.0f} MiB" + ("" if met else f": {peak / 1024 - 100:.0f} MiB over"))
        t.append(("peak RSS ≤ 100 MiB (any pilotlight step)", met, fmt_mib(peak), "100 MiB", how, ""))
    p, r = stored.get((pl, "inc")), stored.get(("restic", "inc"))
    if p is not None and r is not None:
        met = p <= r
        how = f"{p / r:.2f}× restic's" + ("" if met else f": {(p - r) / 1e6:.1f} MB more")
        t.append(("stored bytes (full + incremental) ≤ restic's", met, fmt_b(p), f"restic {fmt_b(r)}",
                  how, ""))
    return t


def score(pl):
    t = targets_for(pl)
    return (sum(1 for x in t if x[1]), -(wall(pl, "inc") or 1e9), -(wall(pl, "full") or 1e9))


default_bs = meta.get("default_bs", "auto")
if pl_tools:
    if default_bs != "auto" and f"pl-{default_bs}" in pl_tools:
        main_pl = f"pl-{default_bs}"
        why_pick = f"chosen on the command line (--default-bs {default_bs})"
    else:
        main_pl = max(pl_tools, key=score)
        why_pick = ("the block size that meets the most targets; ties go to the fastest "
                    "incremental with the list, then the fastest full backup")
else:
    main_pl = None

L = []
quick = meta.get("quick") == "1"
L.append("# pilotlight benchmark results" + (" (QUICK RUN: 1/8-scale workload)" if quick else ""))
L.append("")
L.append("Generated by `bench/report.py` at the end of `bench/run.sh`; overwritten by each run. "
         "See bench/README.md for how to read it.")
L.append("")
L.append(f"- **Command:** `{meta['command']}`")
L.append(f"- **Date:** {meta['date']} (run took {meta.get('elapsed', '?')} s)")
L.append(f"- **Machine:** {meta['nproc']} cores, {meta['cpu']}, {meta['mem']} RAM, kernel "
         f"{meta['kernel']}, work folder on {meta['fstype']}; shared with other jobs: "
         f"load average at start {meta['load_start']}, at end {meta.get('load_end', '?')}")
L.append(f"- **Cache:** warm. Before every timed step the script reads the source image with "
         f"`cat IMAGE >/dev/null` (restores: the repository with `cat`), so the page cache holds it.")
L.append(f"- **Repetitions:** each timed step ran {meta['reps']} times; tables show the median wall "
         f"and CPU time (range of wall times in brackets) and the highest peak RSS. CPU = user + "
         f"system, from `/usr/bin/time`.")
L.append(f"- **Versions:** {meta['pl_version']}; {meta['restic_version']}; "
         f"{meta['borg_version']}; {meta['rclone_version']}; {meta['cc_version']}")
if "sha256_rate" in meta:
    L.append(f"- **Hash + compress limit:** one core does SHA-256 at "
             f"{float(meta['sha256_rate']) / 1e6:,.0f} MB/s (`openssl speed`) and zstd -3 at "
             f"{float(meta['zstd3_rate']) / 1e6:,.0f} MB/s (`zstd -b3 -B1M` on a sample of the "
             f"allocated data); two cores hash and compress the {alloc / 1e6:,.0f} MB in "
             f"{alloc / 2 * (1 / float(meta['sha256_rate']) + 1 / float(meta['zstd3_rate'])):.2f} s.")
L.append(f"- **Checks:** every restore (and the naive replica after each increment) was compared "
         f"byte for byte with the source image (`gen-workload cmp`); all matched, or the run would "
         f"have stopped.")
L.append("")
L.append("## Workload")
L.append("")
L.append(f"`gen-workload{' --scale ' + meta['scale'] if meta['scale'] != '1' else ''} base` then "
         f"`change`, fixed seed:")
L.append("")
L.append(f"- disk {int(meta['disk_bytes']) / 2**30:.2f} GiB sparse, {alloc / 1e6:,.1f} MB allocated "
         f"in {meta['base_extents']} extents;")
for line in meta.get("base_mix", "").split(";"):
    if line.strip():
        L.append(f"  - {line.strip()}")
L.append(f"- change: {meta['change_summary']}")
L.append(f"- changed-extent list: {meta['list_extents']} extents, {changed / 1e6:,.1f} MB "
         f"({100 * changed / alloc:.2f}% of the allocated bytes).")
L.append("")

if main_pl:
    bs = main_pl[3:]
    L.append(f"## Side by side (pilotlight with {bs_name(bs)} blocks)")
    L.append("")
    L.append(f"Block size {bs_name(bs)}: {why_pick}. All block sizes are in the sweep below.")
    L.append("")
rows = []
names = {"restic": "restic 0.14 (defaults)",
         "restic-dump": "restic dump into dd conv=sparse",
         "borg": "borg zstd,3 repokey-blake2 (default chunker)",
         "borg-fixed": "borg zstd,3 repokey-blake2 `fixed,4194304 --sparse`",
         "naive": "naive split + rclone + dd"}
L.append("| tool | step | wall (median) | CPU | peak RSS | stored after step | MB/s of allocated data |")
L.append("| --- | --- | --- | --- | --- | --- | --- |")
order = ([main_pl] if main_pl else []) + ["restic", "restic-dump", "borg", "borg-fixed", "naive"]
steps = [("full", "full"), ("inc", "incremental (with the list)"),
         ("hash", "incremental (hash-compare)"), ("restore", "restore")]
for tool in order:
    for step, sname in steps:
        if (tool, step) not in runs:
            continue
        label = f"pilotlight {bs_name(tool[3:])}" if tool.startswith("pl-") else names[tool]
        if tool.startswith("pl-") is False and step == "inc":
            sname = "incremental"
        w = wall(tool, step)
        mbps = alloc / 1e6 / w if step in ("full", "restore") and w else None
        L.append(f"| {label} | {sname} | {fmt_s(w)}{spread(tool, step)} | {fmt_s(cpu(tool, step))} | "
                 f"{fmt_mib(rss(tool, step))} | {fmt_b(stored.get((tool, step)))} | "
                 f"{'' if mbps is None else f'{mbps:,.0f}'} |")
L.append("")

if main_pl:
    L.append("### Ratios: peer ÷ pilotlight (time: > 1 means pilotlight is faster; bytes and RSS: "
             "pilotlight ÷ peer, < 1 means pilotlight uses less)")
    L.append("")
    L.append("| peer | full | incremental (list) | incremental (hash-compare) | restore | stored bytes | peak RSS |")
    L.append("| --- | --- | --- | --- | --- | --- | --- |")

    def rt(peer, pstep, plstep):
        a, b = wall(peer, pstep), wall(main_pl, plstep)
        return "–" if a is None or b is None or b == 0 else f"{a / b:.2f}×"

    for peer in ["restic", "restic-dump", "borg", "borg-fixed", "naive"]:
        if not any((peer, s) in runs for s in ("full", "inc", "restore")):
            continue
        sb = (f"{stored[(main_pl, 'inc')] / stored[(peer, 'inc')]:.2f}"
              if (main_pl, "inc") in stored and (peer, "inc") in stored else "–")
        pr = max((rss(main_pl, s) or 0) for s in ("full", "inc", "hash", "restore"))
        qr = max((rss(peer, s) or 0) for s in ("full", "inc", "restore"))
        L.append(f"| {names[peer]} | {rt(peer, 'full', 'full')} | {rt(peer, 'inc', 'inc')} | "
                 f"{rt(peer, 'inc', 'hash')} | {rt(peer, 'restore', 'restore')} | {sb} | "
                 f"{pr / qr:.2f} |" if qr else "")
    L.append("")
    L.append("### Targets (DESIGN section 5)")
    L.append("")
    L.append("Judged on median wall time. The last column gives the same ratio in CPU time (user + "
             "system), which a busy shared machine disturbs much less than wall time.")
    L.append("")
    L.append("| target | result | pilotlight | reference | by how much (wall) | ratio in CPU time |")
    L.append("| --- | --- | --- | --- | --- | --- |")
    for name, met, plv, ref, how, cpur in targets_for(main_pl):
        res = "not measured" if met is None else ("**met**" if met else "**MISSED**")
        L.append(f"| {name} | {res} | {plv} | {ref} | {how} | {cpur} |")
    L.append("")

if pl_tools:
    L.append("## Block-size sweep (pilotlight)")
    L.append("")
    L.append("| block size | full | incremental (list) | incremental (hash-compare) | restore | "
             "stored after full | stored after incremental | peak RSS | CPU full / inc / restore | targets met |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for pl in pl_tools:
        t = targets_for(pl)
        met = sum(1 for x in t if x[1])
        missed = [x[0] for x in t if x[1] is False]
        pr = max((rss(pl, s) or 0) for s in ("full", "inc", "hash", "restore"))
        L.append(f"| {bs_name(pl[3:])} | {fmt_s(wall(pl, 'full'))} | {fmt_s(wall(pl, 'inc'))} | "
                 f"{fmt_s(wall(pl, 'hash'))} | {fmt_s(wall(pl, 'restore'))} | "
                 f"{fmt_b(stored.get((pl, 'full')))} | {fmt_b(stored.get((pl, 'inc')))} | "
                 f"{fmt_mib(pr)} | {fmt_s(cpu(pl, 'full'))} / {fmt_s(cpu(pl, 'inc'))} / "
                 f"{fmt_s(cpu(pl, 'restore'))} | {met}/{len(t)} |")
    L.append("")
    if main_pl:
        L.append(f"Picked: {bs_name(main_pl[3:])} ({why_pick}).")
        L.append("")
    for pl in pl_tools:
        missed = [f"{x[0]} ({x[4]})" for x in targets_for(pl) if x[1] is False]
        if missed:
            L.append(f"- {bs_name(pl[3:])} misses: " + "; ".join(missed))
    L.append("")

enc_pl = "pl-524288" if ("pl-524288", "full") in runs else None
if enc_pl and ("pl-clear", "full") in runs:
    L.append("## What encryption costs (pilotlight, 512 KiB blocks, the default)")
    L.append("")
    L.append("The same steps into an encrypted repository (init's default) and a clear one "
             "(`init --no-encryption`), side by side in this run. Target: encrypted ≤ 1.15× clear.")
    L.append("")
    L.append("| step | encrypted | clear | encrypted ÷ clear (wall) | ÷ (CPU) | target | peak RSS enc / clear |")
    L.append("| --- | --- | --- | --- | --- | --- | --- |")
    for step, sname in steps:
        we, wc = wall(enc_pl, step), wall("pl-clear", step)
        ce, cc = cpu(enc_pl, step), cpu("pl-clear", step)
        if not we or not wc:
            continue
        ratio = we / wc
        res = "**met**" if ratio <= 1.15 else "**MISSED**"
        cr = f"{ce / cc:.2f}×" if ce and cc else ""
        L.append(f"| {sname} | {fmt_s(we)}{spread(enc_pl, step)} | {fmt_s(wc)}{spread('pl-clear', step)} | "
                 f"{ratio:.2f}× | {cr} | {res} | {fmt_mib(rss(enc_pl, step))} / "
                 f"{fmt_mib(rss('pl-clear', step))} |")
    L.append("")
    L.append("Each encrypted command also unlocks its key once (scrypt N=2^16, r=8, p=2: about "
             "0.65 s and 64 MiB here), which these times include.")
    L.append("")

notes = meta.get("notes", "")
if notes:
    L.append("## Notes from the run")
    L.append("")
    for n in notes.split("|"):
        if n.strip():
            L.append(f"- {n.strip()}")
    L.append("")

with open(out_path, "w") as f:
    f.write("\n".join(L))
print("\n".join(L[L.index("## Workload"):]) if "## Workload" in L else "")
