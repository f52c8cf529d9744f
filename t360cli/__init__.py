"""t360: bulk uploader for the Track360 attribution API."""

import os as _os
import signal as _signal
import sys as _sys

__version__ = "0.1.0"


def _quit_on_signal(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM while the command line starts or ends: nothing is read or sent then."""
    _os.write(2, b"error: interrupted.\n")
    _os._exit(130)


# SPEC 11: SIGTERM or SIGINT at any moment from the first line of t360's own code exits 130
# without a traceback. This is that first line when t360 runs as a command (the `t360`
# script, or `python -m t360cli`: while runpy imports the package, argv[0] is "-m");
# The command's body (cli/app.py `_call`) turns both into KeyboardInterrupt while it runs.
# A program that imports the library keeps its own handlers.
if _os.path.basename(_sys.argv[0]) == "t360" or _sys.argv[0] == "-m":
    for _signum in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(_signum, _quit_on_signal)
