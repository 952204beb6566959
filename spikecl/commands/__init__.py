"""The command modules of the ``spikecl`` command line (:mod:`spikecl.cli`).

Each module has ``add_command(subparsers)``, registering a parser whose defaults set ``handler(args) -> exit code``.
Only the command line imports this package; the library never does.
"""
