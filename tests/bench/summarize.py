#!/usr/bin/env python3
"""Summarizes tests/bench/run's results.tsv as markdown: per device, the median of each
workload's main figure per target with its spread (min-max over the repetitions), the ratio of
each stablefs target to the better of kernel XFS and ext4 and to fuse2fs, bounce=always over
bounce=never, then CPU per I/O and the daemons' peak RSS.

    tests/bench/summarize.py results.tsv > summary.md
"""
import collections
import statistics
import sys

KERNEL = ("xfs", "ext4")
STABLEFS = ("stablefs-never", "stablefs-always", "stablefs-never-uring", "stablefs-always-uring",
            "stablefs-never-noautodefrag")


def main_metric(workload):
    if workload.startswith("metadata-"):
        return "per_second", "ops/s"
    if "-1m" in workload or "-128k" in workload:
        return "mib_s", "MiB/s"
    return "iops", "IOPS"


def fmt(values):
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return "%.0f" % med if med >= 100 else "%.1f" % med
    lo, hi = min(values), max(values)
    if med >= 100:
        return "%.0f (%.0f-%.0f)" % (med, lo, hi)
    return "%.1f (%.1f-%.1f)" % (med, lo, hi)


def ratio(a, b):
    if not a or not b or statistics.median(b) == 0:
        return "-"
    return "%.2f" % (statistics.median(a) / statistics.median(b))


def main():
    data = collections.defaultdict(list)  # (device, target, workload, metric) -> values
    order = collections.OrderedDict()     # device -> ordered workloads
    targets = collections.OrderedDict()
    with open(sys.argv[1]) as f:
        next(f)
        for line in f:
            device, target, workload, _rep, metric, value = line.rstrip("\n").split("\t")
            data[(device, target, workload, metric)].append(float(value))
            if workload != "daemon":
                order.setdefault(device, collections.OrderedDict())[workload] = True
            targets[target] = True
    targets = list(targets)
    for device, workloads in order.items():
        print("## %s\n" % device)
        present = [t for t in targets if any(k[0] == device and k[1] == t for k in data)]
        ratio_cols = []
        for s in STABLEFS:
            if s in present:
                if any(k in present for k in KERNEL):
                    ratio_cols.append(("%s / best kernel" % s, s, "kernel"))
                if "fuse2fs" in present:
                    ratio_cols.append(("%s / fuse2fs" % s, s, "fuse2fs"))
        for a, b, name in (("stablefs-always", "stablefs-never", "always / never"),
                           ("stablefs-never-uring", "stablefs-never", "uring / /dev/fuse"),
                           ("stablefs-never", "stablefs-never-noautodefrag", "autodefrag / noautodefrag")):
            if a in present and b in present:
                ratio_cols.append((name, a, b))
        print("| workload | unit | " + " | ".join(present) + " | " + " | ".join(c[0] for c in ratio_cols) + " |")
        print("|" + "---|" * (2 + len(present) + len(ratio_cols)))
        for w in workloads:
            metric, unit = main_metric(w)
            vals = {t: data.get((device, t, w, metric), []) for t in present}
            if not any(vals.values()):
                continue
            cells = [fmt(vals[t]) for t in present]
            for _name, s, other in ratio_cols:
                if other == "kernel":
                    best = max((vals.get(k) or [] for k in KERNEL), key=lambda v: statistics.median(v) if v else -1)
                    cells.append(ratio(vals[s], best))
                else:
                    cells.append(ratio(vals[s], vals.get(other)))
            print("| %s | %s | %s |" % (w, unit, " | ".join(cells)))
        print()
        after = [w for w in ("seqread-1m-after-overwrite", "seqread-1m-after-defrag") if w in workloads]
        if after and "seqread-1m" in workloads:
            print("1 MiB sequential read after the overwrites over the same read before them (medians); "
                  "after-defrag first waits until the defragmenter is idle (median wait, s)\n")
            print("| read | " + " | ".join(present) + " |")
            print("|" + "---|" * (1 + len(present)))
            for w in after:
                cells = []
                for t in present:
                    cell = ratio(data.get((device, t, w, "mib_s"), []), data.get((device, t, "seqread-1m", "mib_s"), []))
                    wait = data.get((device, t, w, "settle_s"), [])
                    if wait and statistics.median(wait) > 0:
                        cell += " (%.1f s)" % statistics.median(wait)
                    cells.append(cell)
                print("| %s / seqread-1m | %s |" % (w, " | ".join(cells)))
            print()
        print("CPU per I/O, µs (median): the whole machine / the FUSE daemon alone; daemon CPU-s per GiB\n")
        print("| workload | " + " | ".join(present) + " |")
        print("|" + "---|" * (1 + len(present)))
        for w in workloads:
            if w.startswith("metadata-"):
                continue
            cells = []
            for t in present:
                m = data.get((device, t, w, "machine_cpu_us_per_io"), [])
                d = data.get((device, t, w, "daemon_cpu_us_per_io"), [])
                g = data.get((device, t, w, "daemon_cpu_s_per_gib"), [])
                cell = "%.1f" % statistics.median(m) if m else "-"
                if d:
                    cell += " / %.1f (%.2f s/GiB)" % (statistics.median(d), statistics.median(g))
                cells.append(cell)
            print("| %s | %s |" % (w, " | ".join(cells)))
        print()
        rss = [(t, data.get((device, t, "daemon", "peak_rss_kib"), [])) for t in present]
        rss = [(t, v) for t, v in rss if v]
        if rss:
            print("Daemon peak RSS (MiB, max over repetitions): " +
                  ", ".join("%s %.0f" % (t, max(v) / 1024.0) for t, v in rss) + "\n")


if __name__ == "__main__":
    main()
