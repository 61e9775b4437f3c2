"""The service: ``recorderd`` (``daemon``), its main loop under systemd (``lifecycle``,
``sdnotify``), where it logs (``logsetup``, with repeated lines held back by ``logrepeat``),
the C allocator's setting (``allocator``), one process per data directory (``datalock``),
``--check-config`` (``checkconfig``) and the thread dump of SIGUSR1 (``stacks``).
"""
