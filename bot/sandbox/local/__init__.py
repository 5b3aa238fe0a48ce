"""The ``local`` sandbox backend: one Python kernel (ipykernel) per thread, each in a pod of its own.

A *container* is a pod: namespaces, a tmpfs and a small supervisor (:mod:`.bootstrap`) in which one kernel runs at
a time, with the thread's working directory as its current directory. Pods come from a warm pool whose kernels
already imported pandas, numpy and matplotlib, so a new thread's first execute costs a couple of message round
trips instead of a process start. State persists across executes like in a hosted container; files written by the
code are the thread's files, and they outlive a kernel that dies or is stopped to make room for another.

Isolation (:mod:`.isolation`, probed at start by :mod:`.probe`, reported by :meth:`LocalSandbox.isolation_report`):

- **network**: a network namespace per pod (no interface but a downed loopback); the bot talks to the kernel over
  ZMQ ``ipc`` sockets in the pod.
- **identity**: each kernel runs under a uid/gid of its own, neither the bot's nor another kernel's: a host uid when
  the bot is root, one of its user's subordinate ids (``newuidmap``, package ``uidmap``) otherwise; no
  supplementary groups, no capabilities, ``no_new_privs``.
- **filesystem** (:mod:`.mounts`): a mount namespace per pod, the host read-only, the sensitive directories hidden
  (source tree, the bot's working directory and home, the database's directory, ``.env``), private ``/tmp``,
  ``/var/tmp`` and ``/dev/shm``, all the kernel may write in one tmpfs with a size (the quota).
- **processes**: a pid namespace per pod with its own ``/proc``: the bot's environment and other kernels are not
  visible; ending the pod ends every process in it.
- **limits**: cgroup v2 ``memory.max`` and ``pids.max`` where the cgroup filesystem allows (:mod:`.cgroups`),
  ``RLIMIT_AS``, ``RLIMIT_CPU``, ``RLIMIT_FSIZE``, ``RLIMIT_NPROC``, no core dumps; a cap on live kernels.
- **environment**: built from scratch (PATH, HOME, LANG, MPLBACKEND, ...); nothing of the bot's environment.
- **files** (:mod:`.workdir`): the bot never follows a link the code planted.

``strict`` (the default) refuses to start without the network and identity guarantees; ``relaxed`` takes what
the machine gives and reports what is missing.
"""

from bot.sandbox.local.backend import LocalSandbox
from bot.sandbox.local.kernel import rss_kb
from bot.sandbox.local.mounts import PROJECT_ROOT
from bot.sandbox.local.workdir import sanitize_name

__all__ = ["PROJECT_ROOT", "LocalSandbox", "rss_kb", "sanitize_name"]
