"""The command groups of the CLI, one module each.

``TOP_LEVEL`` names every top-level command with the module that registers it
and its one-line help. It is static so that a call imports only the module of
the command it runs: start-up time is a feature. A test checks that it agrees
with what the modules register.
"""

from __future__ import annotations

TOP_LEVEL: dict[str, tuple[str, str]] = {
    # images
    "pull": ("images", "Pull an image from a registry"),
    "push": ("images", "Push an image to a registry"),
    "images": ("images", "List images"),
    "rmi": ("images", "Remove one or more images"),
    "tag": ("images", "Create a tag DST that refers to SRC"),
    "image": ("images", "Manage images"),
    "save": ("images", "Save images to an OCI archive"),
    "load": ("images", "Load images from an OCI or docker archive"),
    # lower layers
    "content": ("content", "Manage the content store"),
    "snapshots": ("snapshots", "Manage snapshots"),
    "namespaces": ("namespaces", "Manage namespaces"),
    # system
    "version": ("system", "Show the ctl and runc versions"),
    "info": ("system", "Show system-wide information"),
}

COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(m for m, _ in TOP_LEVEL.values()))
