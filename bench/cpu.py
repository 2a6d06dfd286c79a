#!/usr/bin/env python3
"""CPU time (user+sys, from wait4's rusage, microseconds) and wall time of whole runs.

    python3 bench/cpu.py [--abba] ROUNDS NAME=CMD [NAME=CMD ...]

Runs every command once per round, in the order given, ROUNDS times (alternation keeps a noisy
shared machine fair to all), each through `bash -c` with stdout to /dev/null, and prints one
line per command: `NAME cpu_ms wall_ms` (medians). bash's own start-up is in every figure
(a few ms), as it is for `cat /proc/[0-9]*/...`, whose glob bash expands.

With --abba, every other round runs the commands in reverse order (A B, B A, ...): on this
machine a run right after another was ~30 ms faster at 10,000 processes whatever the binary,
which plain alternation charges to one side. Each line then ends with the quartiles of the
wall times: `NAME cpu_ms wall_ms q1 q3`.
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
    args = sys.argv[1:]
    abba = args[:1] == ["--abba"]
    if abba:
        args = args[1:]
    rounds = int(args[0])
    cmds = [a.split("=", 1) for a in args[1:]]
    cpu = {n: [] for n, _ in cmds}
    wall = {n: [] for n, _ in cmds}
    for r in range(rounds):
        for n, c in cmds[::-1] if abba and r % 2 else cmds:
            u, w = run(c)
            cpu[n].append(u)
            wall[n].append(w)
    for n, _ in cmds:
        line = f"{n} {statistics.median(cpu[n]):.1f} {statistics.median(wall[n]):.1f}"
        if abba and rounds > 1:
            q = statistics.quantiles(wall[n], n=4)
            line += f" {q[0]:.1f} {q[2]:.1f}"
        print(line)


main()
