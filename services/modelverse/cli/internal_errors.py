"""Where the CLI writes the traceback of a bug, so the user sees one line and the log has the rest.

A user error (``modelverse.errors``) is printed as its message; anything else is a bug of ours:
its traceback is appended to the CLI's log file and the user reads "internal error, see log:
PATH". The file is ``$MODELVERSE_CLI_LOG`` when set, else ``cli.log`` in the user's state
directory (``$XDG_STATE_HOME/modelverse``, by default ``~/.local/state/modelverse``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

LOG_ENV = "MODELVERSE_CLI_LOG"
log = logging.getLogger("modelverse.cli")


def log_path() -> Path:
    given = os.environ.get(LOG_ENV)
    if given:
        return Path(given)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "modelverse" / "cli.log"


def record(exc: BaseException, argv: list[str]) -> Path | None:
    """Append ``exc``'s traceback (with the command line) to the log; the file written, or None
    when it cannot be written (the traceback then goes to stderr, so it is never lost)."""
    path = log_path()
    handler: logging.Handler | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        handler = logging.StreamHandler(sys.stderr)
        path = None  # type: ignore[assignment]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    log.addHandler(handler)
    try:
        log.error("internal error in `modelverse %s`", " ".join(argv), exc_info=exc)
    finally:
        log.removeHandler(handler)
        handler.close()
    return path
