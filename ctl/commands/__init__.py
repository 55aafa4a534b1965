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
    # containers and tasks
    "create": ("containers", "Create a container"),
    "run": ("containers", "Run a command in a new container"),
    "start": ("containers", "Start stopped or created containers"),
    "ps": ("containers", "List containers"),
    "stop": ("containers", "Stop running containers"),
    "restart": ("containers", "Restart containers"),
    "kill": ("containers", "Send a signal to running containers"),
    "pause": ("containers", "Pause running containers"),
    "resume": ("containers", "Resume paused containers"),
    "rm": ("containers", "Remove containers"),
    "logs": ("containers", "Print a container's logs"),
    "exec": ("containers", "Run a command in a running container"),
    "wait": ("containers", "Wait for containers to stop; print exit codes"),
    "inspect": ("containers", "Show containers as JSON"),
    "top": ("containers", "Show the processes of a container"),
    "containers": ("containers", "Manage container records"),
    "tasks": ("containers", "Manage tasks"),
    # lower layers
    "content": ("content", "Manage the content store"),
    "snapshots": ("snapshots", "Manage snapshots"),
    "namespaces": ("namespaces", "Manage namespaces"),
    "network": ("network", "Manage networks"),
    # system
    "version": ("system", "Show the ctl and runc versions"),
    "info": ("system", "Show system-wide information"),
    "prune": ("system", "Remove what nothing references"),
    "system": ("system", "Manage the ctl root as a whole"),
    "completion": ("system", "Print a shell completion script"),
    "generate": ("system", "Generate files for other tools"),
}

COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(m for m, _ in TOP_LEVEL.values()))
