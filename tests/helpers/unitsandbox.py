"""Run a command under the kernel-level hardening of a systemd unit, without systemd.

The tests cannot start the unit for real: systemd is not PID 1 here (nor on CI), so there is no
``systemd-run``. What can break a Python audio daemon is mostly what systemd does to it with
seccomp and mount namespaces, and those are plain kernel features this module applies itself,
read from the unit file so the test follows the unit:

- ``SystemCallFilter=`` (the groups expanded by ``systemd-analyze syscall-filter``, the first
  line an allow list that also admits ``@default``, ``~`` lines taking groups away, as systemd
  does), ``SystemCallErrorNumber=``, ``SystemCallArchitectures=native`` (libseccomp's own
  default: other ABIs are killed);
- ``MemoryDenyWriteExecute=`` (systemd's rules: no ``mmap`` both writable and executable, no
  ``mprotect``/``pkey_mprotect`` asking for PROT_EXEC, no ``shmat`` with SHM_EXEC);
- ``RestrictAddressFamilies=``, ``RestrictRealtime=``, ``LockPersonality=``;
- ``NoNewPrivileges=``, an empty ``CapabilityBoundingSet=`` (root keeps uid 0 but no capability
  after execve);
- ``ProtectSystem=strict`` (every mount read-only but /dev, /proc, /sys, the state directory and
  /tmp, which ``PrivateTmp=`` gives the service writable), ``ProtectProc=invisible`` (a /proc of
  its own mounted ``hidepid=invisible``), ``UMask=``.

Not applied: ``User=``/groups (the tests run as root), ``DevicePolicy=`` (a cgroup BPF program),
and the namespaces that only hide things (``ProtectHome=``, ``PrivateTmp=``'s separate /tmp,
the ``Protect{Kernel*,ControlGroups,Clock,Hostname}=`` and ``Restrict{Namespaces,SUIDSGID}=``
switches): the daemon uses none of what they hide.

Usage: ``python -m tests.helpers.unitsandbox UNIT STATE_DIR -- COMMAND [ARGS...]`` (as root: it
needs CAP_SYS_ADMIN for the mounts). It prints what it applied to stderr and execs COMMAND.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# <linux/prctl.h>, <linux/sched.h>, <sys/mount.h>, <sys/mman.h>, <sys/shm.h>
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PROT_WRITE, PROT_EXEC = 2, 4
SHM_EXEC = 0o100000
SCHED_FIFO, SCHED_RR, SCHED_DEADLINE = 1, 2, 6
PER_LINUX = 0
ADDRESS_FAMILIES = {"AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_INET6": 10,
                    "AF_NETLINK": 16, "AF_PACKET": 17}
AF_LIMIT = 64  # above every family the kernel knows (AF_MAX is 46 in 6.x)

# <seccomp.h>
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ, SCMP_CMP_NE, SCMP_CMP_GE, SCMP_CMP_MASKED_EQ = 4, 1, 5, 7


def scmp_act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class ScmpArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


@dataclass
class Hardening:
    """The settings of a unit's [Service] section that this module knows how to apply."""

    syscall_allow: set[str] | None = None  # None: no SystemCallFilter=
    syscall_errno: int | None = None  # None: a forbidden call kills the process
    families: set[int] | None = None  # None: no RestrictAddressFamilies=
    memory_deny_write_execute: bool = False
    restrict_realtime: bool = False
    lock_personality: bool = False
    no_new_privileges: bool = False
    empty_bounding_set: bool = False
    protect_system_strict: bool = False
    protect_proc_invisible: bool = False
    umask: int | None = None
    applied: list[str] = field(default_factory=list)


def _yes(value: str) -> bool:
    return value.strip().lower() in ("1", "yes", "true", "on")


def syscall_group(name: str) -> set[str]:
    """The system calls of ``@name`` (or the call itself), nested groups expanded, as this
    host's systemd defines them."""
    if not name.startswith("@"):
        return {name}
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        raise RuntimeError("systemd-analyze is not installed (apt-get install systemd)")
    out = subprocess.run([analyze, "syscall-filter", name], capture_output=True, text=True,
                         check=True).stdout
    calls: set[str] = set()
    for line in out.splitlines()[1:]:  # the first line is the group's own name
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        calls |= syscall_group(item)
    return calls


def service_settings(unit: Path) -> list[tuple[str, str]]:
    """The [Service] section's assignments, in order (continuation lines joined)."""
    settings: list[tuple[str, str]] = []
    section = ""
    pending = ""
    for raw in unit.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]" and "=" in line:
            key, value = line.split("=", 1)
            settings.append((key.strip(), value.strip()))
    return settings


def read_hardening(unit: Path) -> Hardening:
    """What of ``unit``'s hardening this module will apply."""
    h = Hardening()
    for key, value in service_settings(unit):
        if key == "SystemCallFilter":
            deny = value.startswith("~")
            names = value.lstrip("~").split()
            if not names:
                raise NotImplementedError("an empty SystemCallFilter= (reset) is not emulated")
            calls = set().union(*(syscall_group(n) for n in names))
            if h.syscall_allow is None:
                if deny:
                    raise NotImplementedError("a deny-only SystemCallFilter= is not emulated")
                h.syscall_allow = syscall_group("@default") | calls
            elif deny:
                h.syscall_allow -= calls
            else:
                h.syscall_allow |= calls
        elif key == "SystemCallErrorNumber":
            h.syscall_errno = getattr(errno, value)
        elif key == "SystemCallArchitectures" and value != "native":
            raise NotImplementedError(f"SystemCallArchitectures={value} is not emulated")
        elif key == "RestrictAddressFamilies":
            if value.startswith("~") or value == "none":
                raise NotImplementedError(f"RestrictAddressFamilies={value} is not emulated")
            h.families = {ADDRESS_FAMILIES[n] for n in value.split()}
        elif key == "MemoryDenyWriteExecute":
            h.memory_deny_write_execute = _yes(value)
        elif key == "RestrictRealtime":
            h.restrict_realtime = _yes(value)
        elif key == "LockPersonality":
            h.lock_personality = _yes(value)
        elif key == "NoNewPrivileges":
            h.no_new_privileges = _yes(value)
        elif key == "CapabilityBoundingSet":
            h.empty_bounding_set = value == ""
        elif key == "ProtectSystem":
            h.protect_system_strict = value == "strict"
        elif key == "ProtectProc":
            h.protect_proc_invisible = value == "invisible"
        elif key == "UMask":
            h.umask = int(value, 8)
    return h


# --- applying it ----------------------------------------------------------------------------

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _unescape(path: str) -> str:
    # /proc/self/mountinfo writes space, tab, newline and backslash as octal escapes.
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
               .replace("\\134", "\\")


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def apply_mounts(h: Hardening, state_dir: Path) -> None:
    """ProtectSystem=strict and ProtectProc=invisible in a mount namespace of our own."""
    if not (h.protect_system_strict or h.protect_proc_invisible):
        return
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Nothing done here may leak back to the host's mounts.
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    if h.protect_system_strict:
        # Bind the writable places onto themselves first, so they are mounts of their own
        # that keep read-write when the mounts holding them turn read-only.
        writable = ("/tmp", "/var/tmp", str(state_dir))
        for path in writable:
            if os.path.isdir(path):
                _check(_libc.mount(path.encode(), path.encode(), None, MS_BIND | MS_REC, None),
                       f"bind {path}")
        api_fs = ("/dev", "/proc", "/sys")
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            target, options = _unescape(fields[4]), fields[5].split(",")
            if _under(target, api_fs) or _under(target, writable):
                continue
            flags = MS_REMOUNT | MS_BIND | MS_RDONLY
            for name, bit in (("nosuid", MS_NOSUID), ("nodev", MS_NODEV),
                              ("noexec", MS_NOEXEC)):
                if name in options:
                    flags |= bit
            _check(_libc.mount(None, target.encode(), None, flags, None),
                   f"remount {target} read-only")
        h.applied.append("ProtectSystem=strict")
    if h.protect_proc_invisible:
        _check(_libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                           b"hidepid=invisible"), "mount /proc hidepid=invisible")
        h.applied.append("ProtectProc=invisible")


def _libseccomp() -> ctypes.CDLL:
    """libseccomp (systemd depends on it), loaded on first use."""
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(ScmpArgCmp)]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


class _Filter:
    """One seccomp filter program (libseccomp), loaded into this process."""

    def __init__(self, default_action: int) -> None:
        self.lib = _libseccomp()
        self.ctx = self.lib.seccomp_init(default_action)
        if not self.ctx:
            raise OSError("seccomp_init failed")

    def number(self, name: str) -> int | None:
        nr = int(self.lib.seccomp_syscall_resolve_name(name.encode()))
        return None if nr == -1 else nr  # __NR_SCMP_ERROR: not a call on this architecture

    def rule(self, action: int, name: str, *cmps: tuple[int, int, int, int]) -> None:
        nr = self.number(name)
        if nr is None:
            return
        array = (ScmpArgCmp * max(1, len(cmps)))(*(ScmpArgCmp(*c) for c in cmps))
        result = self.lib.seccomp_rule_add_array(self.ctx, action, nr, len(cmps), array)
        if result < 0:
            raise OSError(-result, f"seccomp rule for {name}: {os.strerror(-result)}")

    def load(self) -> None:
        result = self.lib.seccomp_load(self.ctx)
        self.lib.seccomp_release(self.ctx)
        if result < 0:
            raise OSError(-result, f"seccomp_load: {os.strerror(-result)}")


def apply_seccomp(h: Hardening) -> None:
    """The seccomp filters, one program per setting as systemd loads them."""
    eperm = scmp_act_errno(errno.EPERM)
    if h.memory_deny_write_execute:
        f = _Filter(SCMP_ACT_ALLOW)
        wx = PROT_WRITE | PROT_EXEC
        f.rule(eperm, "mmap", (2, SCMP_CMP_MASKED_EQ, wx, wx))
        f.rule(eperm, "mprotect", (2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC))
        f.rule(eperm, "pkey_mprotect", (2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC))
        f.rule(eperm, "shmat", (2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC))
        f.load()
        h.applied.append("MemoryDenyWriteExecute=yes")
    if h.families is not None:
        f = _Filter(SCMP_ACT_ALLOW)
        refused = scmp_act_errno(errno.EAFNOSUPPORT)
        for family in range(AF_LIMIT):
            if family not in h.families:
                f.rule(refused, "socket", (0, SCMP_CMP_EQ, family, 0))
        f.rule(refused, "socket", (0, SCMP_CMP_GE, AF_LIMIT, 0))
        f.load()
        h.applied.append(f"RestrictAddressFamilies={sorted(h.families)}")
    if h.restrict_realtime:
        f = _Filter(SCMP_ACT_ALLOW)
        for policy in (SCHED_FIFO, SCHED_RR, SCHED_DEADLINE):
            f.rule(eperm, "sched_setscheduler", (1, SCMP_CMP_EQ, policy, 0))
        f.load()
        h.applied.append("RestrictRealtime=yes")
    if h.lock_personality:
        f = _Filter(SCMP_ACT_ALLOW)
        f.rule(eperm, "personality", (0, SCMP_CMP_NE, PER_LINUX, 0))
        f.load()
        h.applied.append("LockPersonality=yes")
    if h.syscall_allow is not None:
        default = (SCMP_ACT_KILL_PROCESS if h.syscall_errno is None
                   else scmp_act_errno(h.syscall_errno))
        # Loaded last: from here on only the allowed calls work, and the rest of this
        # function (and the execve) must be among them.
        f = _Filter(default)
        for name in sorted(h.syscall_allow):
            f.rule(SCMP_ACT_ALLOW, name)
        f.load()
        h.applied.append(f"SystemCallFilter= ({len(h.syscall_allow)} calls allowed)")


def apply(h: Hardening, state_dir: Path) -> None:
    """Everything, in the order systemd's exec step uses: mounts, then privileges, then
    seccomp (the filters would refuse the mount calls)."""
    apply_mounts(h, state_dir)
    if h.umask is not None:
        os.umask(h.umask)
        h.applied.append(f"UMask={h.umask:04o}")
    if h.no_new_privileges:
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
        h.applied.append("NoNewPrivileges=yes")
    if h.empty_bounding_set:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
        for cap in range(last + 1):
            _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"PR_CAPBSET_DROP {cap}")
        h.applied.append("CapabilityBoundingSet=")
    apply_seccomp(h)


def main(argv: list[str]) -> int:
    """Apply UNIT's hardening and exec COMMAND; returns only on a usage error."""
    if len(argv) < 4 or argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    unit, state_dir, command = Path(argv[0]), Path(argv[1]), argv[3:]
    hardening = read_hardening(unit)
    # Resolved before the filters: after them the search could meet a refused call.
    exe = shutil.which(command[0]) or command[0]
    apply(hardening, state_dir)
    print(f"unitsandbox: applied {'; '.join(hardening.applied)}", file=sys.stderr, flush=True)
    os.execv(exe, [exe, *command[1:]])  # does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
