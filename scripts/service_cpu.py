#!/usr/bin/env python3
"""Process CPU of `probewheel run` as a service (issue 11, docs/performance.md).

Starts a loopback listener that accepts and closes (backlog 4096, so a burst of
1,000 connects never overflows the accept queue; or no listener for a refused
port), writes a declarations file of N tcp probes at a fixed interval, starts
`probewheel run` with stdin at end of file and stdout to /dev/null (or a pipe
into `cat >/dev/null`), waits for a warm-up, then reads utime+stime of the
whole process from /proc/PID/stat over the measuring window. Prints the ticks,
the share of one core, the load average, the threads, the RSS, and the
kernel's listen-queue overflow counters over the window (ListenOverflows,
ListenDrops from /proc/net/netstat: nonzero means connects were dropped and
retried, which is not the cost being measured).

Usage: scripts/service_cpu.py [--bin target/release/probewheel]
       [--probes 1000] [--interval 5] [--warmup 6] [--seconds 60]
       [--target accept|refused] [--stdout devnull|pipe] [--backlog 4096]
       [--runs 1] [--workers N] [--strace] [--perf]

--strace attaches `strace -c -f` for the window and prints its table (the
figure is then not a CPU figure: strace costs the process a lot); --perf
records `perf record -g` for the window into perf.data.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

LISTENER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(int(sys.argv[1]))
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    c.close()
"""


def netstat_counters():
    """TcpExt counters from /proc/net/netstat."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    out = {}
    for i in range(0, len(lines) - 1, 2):
        names = lines[i].split()
        values = lines[i + 1].split()
        if names[0] == "TcpExt:":
            out = dict(zip(names[1:], map(int, values[1:])))
    return out


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime is field 14, stime field 15.
    return int(fields[11]), int(fields[12])


def status_field(pid, name):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return "?"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def one_run(args, port, config):
    cmd = [args.bin, "run", "--config", config, "--rollout", "cpu@1"]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    devnull = open(os.devnull, "wb")
    stdin = open(os.devnull, "rb")
    cat = None
    if args.stdout == "pipe":
        cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=devnull)
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=cat.stdin)
        cat.stdin.close()
    else:
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=devnull)
    try:
        time.sleep(args.warmup)
        if proc.poll() is not None:
            sys.exit(f"probewheel exited early with {proc.returncode}")
        tracer = None
        if args.strace:
            tracer = subprocess.Popen(
                ["strace", "-c", "-f", "-p", str(proc.pid), "-o", "strace.out"],
                stderr=subprocess.DEVNULL,
            )
        elif args.perf:
            tracer = subprocess.Popen(
                ["perf", "record", "-g", "-o", "perf.data", "-p", str(proc.pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        load0 = os.getloadavg()
        net0 = netstat_counters()
        u0, s0 = cpu_ticks(proc.pid)
        t0 = time.monotonic()
        time.sleep(args.seconds)
        u1, s1 = cpu_ticks(proc.pid)
        t1 = time.monotonic()
        net1 = netstat_counters()
        load1 = os.getloadavg()
        threads = status_field(proc.pid, "Threads")
        rss = status_field(proc.pid, "VmRSS")
        if tracer is not None:
            tracer.send_signal(2)
            tracer.wait()
    finally:
        proc.terminate()
        proc.wait()
        if cat is not None:
            cat.wait()
    ticks = (u1 - u0) + (s1 - s0)
    hz = os.sysconf("SC_CLK_TCK")
    share = 100.0 * ticks / hz / (t1 - t0)
    over = {k: net1.get(k, 0) - net0.get(k, 0) for k in ("ListenOverflows", "ListenDrops")}
    print(
        f"ticks={ticks} (utime {u1 - u0}, stime {s1 - s0}) in {t1 - t0:.1f} s: "
        f"{share:.2f} % of one core; load {load0[0]:.2f} -> {load1[0]:.2f}; "
        f"threads {threads}; rss {rss}; "
        f"ListenOverflows +{over['ListenOverflows']} ListenDrops +{over['ListenDrops']}",
        flush=True,
    )
    if args.strace:
        with open("strace.out") as f:
            print(f.read())
    return ticks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="target/release/probewheel")
    ap.add_argument("--probes", type=int, default=1000)
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--warmup", type=float, default=6)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--target", choices=["accept", "refused"], default="accept")
    ap.add_argument("--stdout", choices=["devnull", "pipe"], default="devnull")
    ap.add_argument("--backlog", type=int, default=4096)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=None, help="passed to `probewheel run`")
    ap.add_argument("--strace", action="store_true")
    ap.add_argument("--perf", action="store_true")
    args = ap.parse_args()

    listener = None
    if args.target == "accept":
        listener = subprocess.Popen(
            [sys.executable, "-c", LISTENER, str(args.backlog)], stdout=subprocess.PIPE, text=True
        )
        port = int(listener.stdout.readline())
    else:
        port = free_port()
    decls = {
        f"p{i:04}": {"kind": "tcp", "mode": "observe", "intervalSeconds": args.interval, "port": port}
        for i in range(args.probes)
    }
    with tempfile.TemporaryDirectory() as d:
        config = os.path.join(d, "health-checks.json")
        with open(config, "w") as f:
            json.dump(decls, f)
        print(
            f"{args.probes} tcp probes at {args.interval} s to 127.0.0.1:{port} ({args.target}), "
            f"stdout {args.stdout}, warm-up {args.warmup} s, window {args.seconds} s, {args.bin}",
            flush=True,
        )
        try:
            results = [one_run(args, port, config) for _ in range(args.runs)]
        finally:
            if listener is not None:
                listener.kill()
                listener.wait()
    if len(results) > 1:
        print("ticks per run:", " ".join(map(str, results)))


if __name__ == "__main__":
    main()
