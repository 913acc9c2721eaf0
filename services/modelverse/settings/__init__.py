"""One typed settings class per process, each setting declared once (type, default, help), read
from flags, environment variables and a config file (settings.base). ``modelverse config show
--process NAME`` prints a process's effective settings and where each value came from.

The classes are imported by name on demand: the web page's settings must not pull in the
servers' code, nor the servers' the fleet's or torch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelverse.settings.base import ProcessSettings

# process -> module:class; the processes of `modelverse config show --process`
PROCESSES = {
    "gateway": "modelverse.settings.gateway:GatewaySettings",
    "shard": "modelverse.settings.shard:ShardSettings",
    "admin": "modelverse.settings.admin:AdminSettings",
    "worker": "modelverse.settings.fleet:WorkerSettings",
    "web": "modelverse.settings.web:WebSettings",
}


def settings_class(process: str) -> type[ProcessSettings]:
    module, _, name = PROCESSES[process].partition(":")
    return getattr(importlib.import_module(module), name)
