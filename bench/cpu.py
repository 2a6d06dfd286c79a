#!/usr/bin/env python3
"""CPU time (user+sys, from wait4's rusage, microseconds) and wall time of whole runs.

    python3 bench/cpu.py ROUNDS NAME=CMD [NAME=CMD ...]

Runs every command once per round, in the order given, ROUNDS times (alternation keeps a noisy
shared machine fair to all), each through `bash -c` with stdout to /dev/null, and prints one
line per command: `NAME cpu_ms wall_ms` (medians). bash's own start-up is in every figure
(a few ms), as it is for `cat /proc/[0-9]*/...`, whose glob bash expands.
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
    rounds = int(sys.argv[1])
    cmds = [a.split("=", 1) for a in sys.argv[2:]]
    cpu = {n: [] for n, _ in cmds}
    wall = {n: [] for n, _ in cmds}
    for _ in range(rounds):
        for n, c in cmds:
            u, w = run(c)
            cpu[n].append(u)
            wall[n].append(w)
    for n, _ in cmds:
        print(n, f"{statistics.median(cpu[n]):.1f}", f"{statistics.median(wall[n]):.1f}")


main()
