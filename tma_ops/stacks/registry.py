"""The driver for a site's stack, chosen by its `kind`."""

from __future__ import annotations

from importlib import import_module

from tma_ops.model_stacks import Stack
from tma_ops.stacks import StackDriver

# kind -> (module, class); imported on use so that a site never loads another stack's SDKs.
DRIVERS = {
    "archive": ("tma_ops.stacks.archive", "ArchiveStack"),
    "wordpress": ("tma_ops.stacks.wordpress", "WordPressDriver"),
    "python": ("tma_ops.stacks.python", "PythonDriver"),
    "node": ("tma_ops.stacks.node", "NodeDriver"),
    "docker": ("tma_ops.stacks.docker", "DockerDriver"),
}


def driver_for(spec: Stack) -> StackDriver:
    module, name = DRIVERS[spec.kind]
    driver: StackDriver = getattr(import_module(module), name).from_config(spec)
    return driver
