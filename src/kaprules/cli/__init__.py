"""The ``kaprules`` command line.

Commands: ``check`` a course file, forecast its ``next`` session, ``plan`` the rest of its
series, ``explain`` one rule, list the ``rules``, and ``protocol validate`` /
``protocol show`` for protocol files. Each takes ``--protocol``: a built-in as
``NAME@VERSION`` (``kap-standard@2``) or a protocol file. Exit status: 0 when no finding is
an error (and for every answer of ``next`` and ``plan``), 1 when one is, 2 for input that
cannot be read or used and for bad usage, 130 for Ctrl-C and 143 for SIGTERM. Problems are
one line on stderr, never a traceback. Output files are atomic: a temporary file beside the
target, renamed into place only when the run succeeded.

A small package: the parser (``_arguments``: each option defined once), what commands read
(``_reading``) and write (``_render``), one module per command, and ``_run``, the one place
that turns failures, signals and closed streams into exit statuses.
"""

from kaprules.cli._arguments import build_parser
from kaprules.cli._run import main
from kaprules.cli._status import EXIT_FINDINGS, EXIT_OK, EXIT_SIGNAL, EXIT_USAGE

__all__ = ["EXIT_FINDINGS", "EXIT_OK", "EXIT_SIGNAL", "EXIT_USAGE", "build_parser", "main"]
