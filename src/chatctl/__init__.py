"""chatctl: the operations tool for a customer-support chat desk."""

import sys

__version__ = "0.1.0"


def _interrupted_quietly(kind, value, traceback, previous=sys.excepthook):
    # Ctrl-C while Python is still importing chatctl (before the CLI's error
    # boundary exists) gets one line, not a traceback; the exit status is still
    # SIGINT's, as Python re-raises it for an unhandled KeyboardInterrupt.
    if issubclass(kind, KeyboardInterrupt):
        print("chatctl: interrupted", file=sys.stderr)
        return
    previous(kind, value, traceback)


sys.excepthook = _interrupted_quietly
