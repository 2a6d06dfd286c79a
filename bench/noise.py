#!/usr/bin/env python3
"""Noise for the test suite: what other runs on a shared host do while ours runs.

Run as root next to `cargo test`; stops after --secs (or Ctrl-C / SIGTERM) and restores what
it changed (shmem_enabled, nr_hugepages), removes its segments and unmounts its tmpfs.

Each round (every ~0.5 s): memfds with the names the tests use, held by children named like
the tests' children; a SHM_HUGETLB segment with a huge page faulted in; a SysV segment, a
/dev/shm file and a file on a fresh tmpfs (inode 2 again) held by nobody; and shmem THP
toggled between `always` and what it was.

    sudo python3 bench/noise.py --secs 600 &
    cargo test
"""

import argparse
import ctypes
import ctypes.util
import mmap
import os
import signal
import subprocess
import sys
import tempfile
import time

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]
IPC_PRIVATE, IPC_CREAT, IPC_RMID, SHM_HUGETLB = 0, 0o1000, 0, 0o4000
PR_SET_NAME = 15
SHMEM_ENABLED = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"
PAGE = os.sysconf("SC_PAGE_SIZE")

# Names and commands the tests use (before they were made unique) and the lab's.
MEMFD_NAMES = ["shmwho-diff-grows", "shmwho-diff-leaves", "shmwho-diff-comes",
               "shmwho-no-touch", "shmwho-race", "cx-a-0", "cx-b-0", "cx-pass-1",
               "shmwho-cgroup-child", "shmwho-export-textfile", "shmwho-lab"]
COMMS = ["shmwho-racer", "cx-reuse-a", "cx-reuse-b", "cx-pass-rx", "cx-sysv"]


def selected(path):
    text = open(path).read()
    return text[text.index("[") + 1:text.index("]")]


def holder(comm, name, pages, secs):
    """A child named `comm` holding a memfd `name` with `pages` written, for `secs`."""
    pid = os.fork()
    if pid:
        return pid
    try:
        libc.prctl(PR_SET_NAME, comm.encode(), 0, 0, 0)
        fd = os.memfd_create(name)
        os.ftruncate(fd, (pages + 1) * PAGE)
        m = mmap.mmap(fd, (pages + 1) * PAGE)
        for i in range(pages):
            m[i * PAGE] = 1
        time.sleep(secs)
    finally:
        os._exit(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=float, default=600)
    args = ap.parse_args()
    thp_was = selected(SHMEM_ENABLED)
    huge_was = open(NR_HUGEPAGES).read().strip()
    mnt = tempfile.mkdtemp(prefix="shmwho-noise-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt], check=True)
    kids, segs = [], []
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        with open(NR_HUGEPAGES, "w") as f:
            f.write(str(int(huge_was) + 4))
        deadline = time.monotonic() + args.secs
        n = 0
        while not stop and time.monotonic() < deadline:
            with open(SHMEM_ENABLED, "w") as f:
                f.write("always" if n % 2 == 0 else thp_was)
            for i, name in enumerate(MEMFD_NAMES):
                kids.append(holder(COMMS[i % len(COMMS)], name, 1 + (n + i) % 5, 1.5))
            # A hugetlb segment, kept until its creator (this process, alive) removes it:
            # IPC_RMID right away while attached 0 times frees it, so keep a few around.
            shmid = libc.shmget(IPC_PRIVATE, 2 << 20, IPC_CREAT | 0o600 | SHM_HUGETLB)
            if shmid >= 0:
                addr = libc.shmat(shmid, None, 0)
                if addr is not None and addr != ctypes.c_void_p(-1).value:
                    ctypes.memset(addr, 1, PAGE)
                    libc.shmdt(ctypes.c_void_p(addr))
                segs.append(shmid)
            plain = libc.shmget(IPC_PRIVATE, 16 * PAGE, IPC_CREAT | 0o600)
            if plain >= 0:
                segs.append(plain)
            with open(f"/dev/shm/shmwho-noise-{os.getpid()}-{n % 3}", "wb") as f:
                f.write(b"\1" * PAGE * (1 + n % 4))
            with open(os.path.join(mnt, "half"), "wb") as f:  # inode 2 of this mount
                f.write(b"\1" * PAGE * (1 + n % 3))
            while len(segs) > 6:
                libc.shmctl(segs.pop(0), IPC_RMID, None)
            time.sleep(0.5)
            for pid in list(kids):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    kids.remove(pid)
            n += 1
        print(f"noise: {n} rounds", file=sys.stderr)
    finally:
        for pid in kids:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        for s in segs:
            libc.shmctl(s, IPC_RMID, None)
        for i in range(3):
            try:
                os.unlink(f"/dev/shm/shmwho-noise-{os.getpid()}-{i}")
            except FileNotFoundError:
                pass
        subprocess.run(["umount", "-l", mnt])
        os.rmdir(mnt)
        with open(SHMEM_ENABLED, "w") as f:
            f.write(thp_was)
        with open(NR_HUGEPAGES, "w") as f:
            f.write(huge_was)


if __name__ == "__main__":
    main()
