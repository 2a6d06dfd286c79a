#!/usr/bin/env python3
"""CPU and wall time of whole runs of commands, in ABBA order.

    python3 bench/abba.py RUNS NAME=CMD [NAME=CMD ...]

Like bench/cpu.py, but the order of the commands is reversed every other round (A B, B A,
A B, ...): on this machine a run right after another was ~30 ms faster at 10,000 processes
whatever the binary, which plain alternation charges to one side. Prints, per command, the
median CPU time (user+sys from wait4, ms), the median wall time and its quartiles. Each command
runs through `bash -c`, its output to /dev/null.
"""
import os
import statistics
import sys
import time


def run(cmd):
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.execvp("bash", ["bash", "-c", cmd])
    _, _, ru = os.wait4(pid, 0)
    return (ru.ru_utime + ru.ru_stime) * 1000, (time.monotonic() - t0) * 1000


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: abba.py RUNS NAME=CMD [NAME=CMD ...]")
    runs = int(sys.argv[1])
    cmds = [a.split("=", 1) for a in sys.argv[2:]]
    cpu = {n: [] for n, _ in cmds}
    wall = {n: [] for n, _ in cmds}
    for r in range(runs):
        for n, c in cmds if r % 2 == 0 else cmds[::-1]:
            u, w = run(c)
            cpu[n].append(u)
            wall[n].append(w)
    for n, _ in cmds:
        q = statistics.quantiles(wall[n], n=4) if runs > 1 else [wall[n][0]] * 3
        print(f"{n} cpu {statistics.median(cpu[n]):.1f} wall {statistics.median(wall[n]):.1f}"
              f" (q1 {q[0]:.1f} q3 {q[2]:.1f})")


main()
