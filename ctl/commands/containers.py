"""Container and task commands: create, run, start, ps, stop, kill, pause, resume, rm,
logs, exec, wait, inspect, top; and ctr's containers ls|info|rm and tasks ls|ps|metrics."""

from __future__ import annotations

import contextlib
import sys

from ctl.commands._base import (
    Command,
    Group,
    add_format,
    add_inspect_format,
    bool_flag,
    complete,
    complete_containers,
    each,
    parse_flag,
    refuse,
)
from ctl.errdefs import EXIT_CTL_FAILURE, AlreadyExists, CtlError, InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator
    from typing import Any

    from ctl.commands._base import Context
    from ctl.containers.container import Container
    from ctl.output import Listing
    from ctl.runtime.runc import Stdio
    from ctl.runtime.state import TaskState


def commands() -> tuple[Command | Group, ...]:
    create = Command("create", _create, "Create a container", _create_flags, short_help=False)
    run = Command("run", _run, "Run a command in a new container", _run_flags, short_help=False)
    start = Command("start", _start, "Start stopped or created containers", _start_flags)
    ps = Command("ps", _ps, "List containers", _ps_flags)
    stop = Command("stop", _stop, "Stop running containers", _stop_flags)
    restart = Command("restart", _restart, "Restart containers", _stop_flags)
    kill = Command("kill", _kill, "Send a signal to running containers", _kill_flags)
    pause = Command("pause", _pause, "Pause running containers", _containers_arg)
    resume = Command("resume", _resume, "Resume paused containers", _containers_arg, ("unpause",))
    rm = Command("rm", _rm, "Remove containers", _rm_flags)
    logs = Command("logs", _logs, "Print a container's logs", _logs_flags)
    exec_ = Command("exec", _exec, "Run a command in a running container", _exec_flags)
    wait = Command("wait", _wait, "Wait for containers to stop; print exit codes", _containers_arg)
    top = Command("top", _top, "Show the processes of a container", _top_flags)
    rename = Command("rename", _rename, "Rename a container", _rename_flags)
    port = Command("port", _port, "List a container's published ports", _port_flags)
    prune = Command(
        "prune",
        "transfer:container_prune",
        "Remove all stopped containers",
        "transfer:container_prune_flags",
    )
    # fmt: off
    return (
        create, run, start, ps, stop, restart, kill, pause, resume, rm, logs, exec_, wait, top,
        rename, port,
        Group(
            "container",
            "Manage containers",
            (
                create, run, start, stop, restart, kill, pause, resume, logs, exec_, wait, top,
                rename, port, prune,
                Command("ls", _ps, "List containers", _ps_flags, ("list", "ps")),
                Command("rm", _rm, "Remove containers", _rm_flags, ("remove",)),
                Command("inspect", _inspect, "Show containers as JSON", _inspect_flags),
                # Implemented by other modules, imported only when run.
                Command("cp", "transfer:_cp", "Copy files between a container and here",
                        "transfer:_cp_flags"),
                Command("diff", "transfer:_diff", "Show changes to a container's files",
                        "transfer:_one"),
                Command("export", "transfer:_export", "Export a container's filesystem",
                        "transfer:_export_flags"),
                Command("commit", "transfer:_commit", "Create an image from a container",
                        "transfer:_commit_flags"),
                Command("stats", "stats:_stats", "Show containers' resource use",
                        "stats:_stats_flags"),
                Command("update", "update:_update", "Update the configuration of containers",
                        "update:_update_flags"),
                Command("attach", "attach:_attach",
                        "Attach this terminal's input and output to a running container",
                        "attach:_attach_flags"),
            ),
        ),
        Group(
            "containers",
            "Manage container records",
            (
                Command("ls", _containers_ls, "List containers", add_format, ("list",)),
                Command(
                    "info", _containers_info, "Show a container record as JSON", _container_arg
                ),
                Command("rm", _rm, "Remove containers", _rm_flags, ("delete", "remove")),
                prune,
            ),
        ),
        Group(
            "tasks",
            "Manage tasks",
            (
                Command("ls", _tasks_ls, "List tasks", add_format, ("list",)),
                Command("ps", _tasks_ps, "List a task's processes", _tasks_ps_flags),
                Command("metrics", _tasks_metrics, "Show a task's cgroup metrics", _container_arg),
            ),
            ("task",),
        ),
    )
    # fmt: on


def _containers_arg(parser: argparse.ArgumentParser) -> None:
    complete(parser.add_argument("containers", nargs="+", metavar="CONTAINER"), complete_containers)


def _container_arg(parser: argparse.ArgumentParser) -> None:
    complete(parser.add_argument("container", metavar="CONTAINER"), complete_containers)


def _top_flags(parser: argparse.ArgumentParser) -> None:
    _container_arg(parser)
    parser.add_argument(
        "ps_options", nargs="...", metavar="PS OPTIONS", help="options of ps (default -ef)"
    )


def _run_flags(parser: argparse.ArgumentParser) -> None:
    _create_flags(parser)
    add = parser.add_argument
    add("-d", "--detach", action="store_true", help="run in the background")
    bool_flag(parser, "--sig-proxy", help="forward signals to the foreground container")
    add("--detach-keys", metavar="KEYS", help="keys that detach from -it (default ctrl-p,ctrl-q)")


def _create_flags(parser: argparse.ArgumentParser) -> None:
    # Imported here: the other commands of this module don't need run's flags.
    from ctl.commands._run_flags import create_flags

    create_flags(parser)


def _rename_flags(parser: argparse.ArgumentParser) -> None:
    _container_arg(parser)
    parser.add_argument("new_name", metavar="NEW_NAME")


def _port_flags(parser: argparse.ArgumentParser) -> None:
    _container_arg(parser)
    parser.add_argument("private", nargs="?", metavar="PRIVATE_PORT[/PROTO]")


def _start_flags(parser: argparse.ArgumentParser) -> None:
    _containers_arg(parser)
    add = parser.add_argument
    add("-a", "--attach", action="store_true", help="attach output, wait")
    add("-i", "--interactive", action="store_true", help="attach stdin")
    add("--detach-keys", metavar="KEYS", help="keys that detach from -ai (default: run's)")
    add("--checkpoint", metavar="NAME", help="restore from a checkpoint: not supported (no CRIU)")
    add("--checkpoint-dir", metavar="DIR", help="where checkpoints are: not supported")


def _ps_flags(parser: argparse.ArgumentParser) -> None:
    add_format(parser)
    add = parser.add_argument
    add("-a", "--all", action="store_true", help="show stopped containers too")
    add("--no-trunc", action="store_true", help="do not truncate output")
    add("-f", "--filter", action="append", default=[], metavar="KEY=VALUE", help="filter output")
    add("-n", "--last", type=int, default=-1, metavar="N", help="the N last created (any state)")
    add("-l", "--latest", action="store_true", help="the last created (any state)")
    add("-s", "--size", action="store_true", help="show the size of each container's files")


def _stop_flags(parser: argparse.ArgumentParser) -> None:
    _containers_arg(parser)
    add = parser.add_argument
    # --time is docker's deprecated spelling of --timeout.
    add(
        "-t",
        "--timeout",
        "--time",
        dest="time",
        type=float,
        metavar="SECONDS",
        help="seconds before SIGKILL (default: --stop-timeout, 10)",
    )
    add("-s", "--signal", metavar="SIGNAL", help="signal to stop with (default: --stop-signal)")


def _kill_flags(parser: argparse.ArgumentParser) -> None:
    _containers_arg(parser)
    parser.add_argument("-s", "--signal", default="KILL", help="signal (default KILL)")


def _rm_flags(parser: argparse.ArgumentParser) -> None:
    _containers_arg(parser)
    parser.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    parser.add_argument(
        "-v", "--volumes", action="store_true", help="remove its anonymous volumes too"
    )
    refuse(parser, "-l", "--link", why="ctl has no legacy links", takes_value=False)


def _logs_flags(parser: argparse.ArgumentParser) -> None:
    _container_arg(parser)
    add = parser.add_argument
    add("-f", "--follow", action="store_true", help="follow new output")
    add("-n", "--tail", default="all", help="only the last N lines")
    add("-t", "--timestamps", action="store_true", help="show timestamps")
    add("--since", metavar="TIME", help="only lines since TIME (RFC 3339, Unix time, or 10m)")
    add("--until", metavar="TIME", help="only lines before TIME (RFC 3339, Unix time, or 10m)")
    add("--details", action="store_true", help="show the extra attributes of each line")


def _exec_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("-d", "--detach", action="store_true", help="run in the background")
    add("-i", "--interactive", action="store_true", help="keep stdin open")
    add("-t", "--tty", action="store_true", help="allocate a terminal")
    add("-e", "--env", action="append", default=[], help="set K=V")
    add("--env-file", action="append", default=[], metavar="FILE", help="read K=V lines")
    add("-w", "--workdir", help="working directory")
    add("-u", "--user", help="user[:group]")
    add("--privileged", action="store_true", help="every capability, no AppArmor profile")
    # ctl's exec terminal is runc's own, which never detaches: the keys are only checked.
    add("--detach-keys", metavar="KEYS", help="checked only: exec never detaches")
    _container_arg(parser)
    add("command", nargs="...", metavar="COMMAND")


def _inspect_flags(parser: argparse.ArgumentParser) -> None:
    _containers_arg(parser)
    add_inspect_format(parser)
    parser.add_argument(
        "-s", "--size", action="store_true", help="add the sizes of the container's files"
    )


def _tasks_ps_flags(parser: argparse.ArgumentParser) -> None:
    _container_arg(parser)
    add_format(parser)


def _create(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.commands._run_flags import container_options, foreground
    from ctl.progress import for_stream

    options = container_options(args, ctx)
    foreground(args)  # create takes -a only to check it, as docker's does
    with _cidfile(args.cidfile) as write_id:
        container = ctx.client.create_container(args.image, options, for_stream(args.quiet))
        write_id(container.id)
    print(container.id)
    return 0


@contextlib.contextmanager
def _cidfile(path: str | None) -> Iterator[Callable[[str], None]]:
    """_cidfile claims --cidfile's FILE (refused if it exists, as docker does) for the id.

    A create that fails removes the file again.
    """
    import os

    if path is None:
        yield lambda container_id: None
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise AlreadyExists(
            f"--cidfile {path}: the file exists", hint="remove it, or name another file"
        ) from None
    except OSError as err:
        raise InvalidArgument(f"--cidfile {path}: {err.strerror}") from None
    try:
        from ctl.fsutil import write_all

        yield lambda container_id: write_all(fd, container_id.encode())
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)


def _attached(interactive: bool) -> Stdio:
    """_attached is this process's stdio, for a container attached to it.

    A descriptor that was closed when ctl started (``<&-``; Python then has
    no ``sys.stdin``) is /dev/null for the container: it reads an empty
    stdin, or writes to nowhere. Its number may belong to a file ctl opened
    since, which must not be handed over.
    """
    import os

    from ctl.runtime.runc import Stdio

    def own(stream: object, fd: int) -> int:
        return fd if stream is not None else os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)

    stdin = own(sys.stdin, 0) if interactive else None
    return Stdio(stdin=stdin, stdout=own(sys.stdout, 1), stderr=own(sys.stderr, 2))


def _run_attached(
    ctx: Context,
    container: Container,
    interactive: bool,
    streams: frozenset[str] = frozenset(),
    sig_proxy: bool = True,
) -> int:
    """_run_attached starts a task attached to this terminal and returns its exit code.

    ``streams`` (``-a``) are the only ones attached, when given; ``sig_proxy``
    passes the signals ctl receives on to the container.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    attach = _attached(interactive)
    if streams:
        attach = attach._replace(**{name: None for name in attach._fields if name not in streams})
    spawned = ctx.client.start_task(container, attach=attach)
    proxy = spawned.forwarding_signals() if sig_proxy else contextlib.nullcontext()
    with spawned, proxy:
        status = spawned.wait()
    if spawned.detached:
        return 0
    if status.exit_code is None:
        sys.stderr.write(f"ctl: container {container.name}: its supervisor was lost\n")
        return EXIT_CTL_FAILURE
    return status.exit_code


def _run(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.commands._run_flags import container_options, foreground
    from ctl.progress import for_stream

    options = container_options(args, ctx)
    streams, sig_proxy = foreground(args)
    with _cidfile(args.cidfile) as write_id:
        quiet = args.detach or args.quiet
        container = ctx.client.create_container(args.image, options, for_stream(quiet))
        write_id(container.id)
    if not args.detach:
        return _run_attached(ctx, container, options.stdin, streams, sig_proxy)
    with ctx.client.start_task(container):
        pass
    print(container.id)
    return 0


def _start(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client
    if args.attach and len(args.containers) > 1:
        raise InvalidArgument("start -a takes one container")
    if args.checkpoint is not None or args.checkpoint_dir is not None:
        raise InvalidArgument("start --checkpoint: checkpoints (CRIU) are not supported")
    if args.detach_keys:
        from ctl.runtime.runopts import parse_detach_keys

        parse_flag("--detach-keys", parse_detach_keys, args.detach_keys)
    if args.attach:
        container = client.get_container(args.containers[0])
        if args.detach_keys:
            # For this start only: the record keeps run's keys.
            config = container.config._replace(detach_keys=args.detach_keys)
            container = container.updated(config=config)
        return _run_attached(ctx, container, args.interactive)
    from ctl.containers.lifecycle import start_detached

    # docker's: every container is tried; those that failed are named at the end.
    failed = []
    for ref in args.containers:
        try:
            start_detached(client, client.get_container(ref))
        except CtlError as err:
            if len(args.containers) == 1:
                raise
            hint = f" ({err.hint})" if err.hint else ""
            sys.stderr.write(f"ctl: {err}{hint}\n")
            failed.append(ref)
            continue
        print(ref, flush=True)
    if failed:
        raise CtlError(f"failed to start containers: {', '.join(failed)}")
    return 0


# Listings.


def status_text(task: TaskState | None, now: float | None = None) -> str:
    """status_text is docker's STATUS column: Created, Up 3 minutes, Exited (0) 2 seconds ago,
    Up 5 seconds (healthy)."""
    from ctl.runtime.state import Status
    from ctl.timefmt import ago, human_duration

    if task is None or task.status is Status.CREATED:
        return "Created"
    if task.status in (Status.RUNNING, Status.PAUSED):
        import time

        up = human_duration((now or time.time()) - (task.started_at or task.created_at))
        if task.status is Status.PAUSED:
            return f"Up {up} (Paused)"
        from ctl.runtime.state import task_health

        health = task_health(task)
        if health is None:
            return f"Up {up}"
        status = health["Status"]
        return f"Up {up} (" + ("health: starting" if status == "starting" else status) + ")"
    if task.status is Status.STOPPED and task.exit is not None:
        finished = task.exit.finished_at
        return f"{task.exit.describe()} {ago(finished)}" if finished else task.exit.describe()
    return str(task.status.value).capitalize()


def _health(task: TaskState | None) -> str:
    """_health is a task's health status for ``ps --filter health=``: none without a check."""
    from ctl.runtime.state import Status, task_health

    record = task_health(task) if task is not None and task.status is Status.RUNNING else None
    return str(record["Status"]) if record else "none"


def _command_text(container: Container, no_trunc: bool) -> str:
    import shlex

    text = shlex.join(container.spec.get("process", {}).get("args", []))
    return f'"{text if no_trunc else _ellipsis(text, 20)}"'


def _ellipsis(text: str, width: int) -> str:
    """_ellipsis is docker's truncation of a listing's cell: ``width`` characters at most."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _mounts_text(container: Container, no_trunc: bool) -> str:
    """_mounts_text is docker's MOUNTS: each mount's volume name, or its source."""
    sources = (m.source for m in container.config.mounts)
    return ",".join(s if no_trunc else _ellipsis(s, 15) for s in sources)


def _ports_text(container: Container) -> str:
    return ", ".join(
        f"{p.host_ip or '0.0.0.0'}:{p.host_port}->{p.container_port}/{p.protocol}"
        for p in container.config.publish
    )


def _rename(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client.rename(args.container, args.new_name)
    return 0


def _port(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.errdefs import NotFound

    container = ctx.client.get_container(args.container)
    published = container.config.publish
    if args.private is None:
        for p in published:
            print(f"{p.container_port}/{p.protocol} -> {p.host_ip or '0.0.0.0'}:{p.host_port}")
        return 0
    port, _, protocol = args.private.partition("/")
    protocol = protocol or "tcp"
    if not port.isdigit() or protocol not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid port {args.private!r}: want PORT[/tcp|udp|sctp]")
    matches = [p for p in published if p.container_port == int(port) and p.protocol == protocol]
    if not matches:
        raise NotFound(f"no public port '{port}/{protocol}' published for {args.container}")
    for p in matches:
        print(f"{p.host_ip or '0.0.0.0'}:{p.host_port}")
    return 0


def ps_row(container: Container, task: TaskState | None, no_trunc: bool) -> dict[str, Any]:
    from ctl.runtime.state import docker_state
    from ctl.timefmt import ago, go_time_string

    return {
        "ID": container.id if no_trunc else container.id[:12],
        "Image": container.image,
        "Command": _command_text(container, no_trunc),
        "CreatedAt": go_time_string(container.created_at),
        "RunningFor": ago(container.created_at),
        "Status": status_text(task),
        "State": docker_state(task),
        "Ports": _ports_text(container),
        "Names": container.name,
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(container.labels.items())),
        "Mounts": _mounts_text(container, no_trunc),
        # ctl's volumes all have docker's local driver.
        "LocalVolumes": str(sum(m.type == "volume" for m in container.config.mounts)),
    }


def _template_uses(fmt: str, field: str) -> bool:
    """_template_uses: ``fmt`` is a template that may use ``field`` (docker's ps runs the
    template once to find out; a name in its text is enough to compute a costly field)."""
    return "{{" in fmt and field in fmt


def _ps(args: argparse.Namespace, ctx: Context) -> Listing:
    from ctl.output import Column, Listing, label_method

    client = ctx.client
    # docker computes sizes for a template that uses .Size, as if -s was given.
    sizes = args.size or (not args.quiet and _template_uses(args.format, "Size"))
    # Only where shown: Networks imports the network code, which a plain ps never needs.
    networks = args.format == "json" or _template_uses(args.format, "Networks")
    # From the listing index: a hundred full records cost more than the rest of ps.
    containers = sorted(client.containers.summaries(), key=lambda c: c.created_at, reverse=True)
    test = client.container_filter(args.filter, containers) if args.filter else None
    last = 1 if args.latest else args.last
    every = args.all or last >= 0 or (test is not None and test.wants_stopped)
    rows: list[dict[str, Any]] = []
    for container in containers:
        if 0 <= last <= len(rows):
            break
        task = client.task_state(container)
        # Imported here, so that an empty listing goes without typing and the task states.
        from ctl.runtime.state import is_live

        if (every or is_live(task)) and (test is None or test.keep(container, task, _health(task))):
            row = ps_row(container, task, args.no_trunc)
            row["Label"] = label_method(container.labels)
            if networks:
                row["Networks"] = ",".join(container.network_names())
            if sizes:
                row["Size"] = _size_text(client.container_size(container))
            rows.append(row)
    columns = [
        Column("CONTAINER ID", "ID", id=True),
        Column("IMAGE", "Image"),
        Column("COMMAND", "Command"),
        Column("CREATED", "RunningFor"),
        Column("STATUS", "Status"),
        Column("PORTS", "Ports"),
        Column("NAMES", "Names"),
    ]
    if args.size:
        columns.append(Column("SIZE", "Size"))
    if "{{" in args.format:
        # Only a template's table shows these; docker heads them so, not by the field's name.
        columns += [Column("CREATED AT", "CreatedAt"), Column("LOCAL VOLUMES", "LocalVolumes")]
    return Listing(columns, rows)


def _size_text(sizes: tuple[int, int]) -> str:
    """_size_text is docker's ``2B (virtual 1.24MB)``: the writable layer, and with the image."""
    from ctl.progress import human_size

    own, image = sizes
    return f"{human_size(own)} (virtual {human_size(own + image)})"


def _stop_options(args: argparse.Namespace) -> tuple[float | None, int | None]:
    """_stop_options are stop's and restart's timeout and signal, checked."""
    from ctl.runtime.runopts import parse_signal

    if args.time is not None and args.time < 0:
        raise InvalidArgument(f"{args.command_name} -t must not be negative")
    return args.time, None if args.signal is None else parse_signal(args.signal)


def _stop(args: argparse.Namespace, ctx: Context) -> int:
    timeout, sig = _stop_options(args)
    return each(args.containers, lambda ref: ctx.client.stop_container(ref, timeout, sig))


def _restart(args: argparse.Namespace, ctx: Context) -> int:
    timeout, sig = _stop_options(args)
    return each(args.containers, lambda ref: ctx.client.restart_container(ref, timeout, sig))


def _kill(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.runtime.runopts import parse_signal

    sig = parse_signal(args.signal)
    return each(args.containers, lambda ref: ctx.client.kill(ref, sig))


def _pause(args: argparse.Namespace, ctx: Context) -> int:
    return each(args.containers, ctx.client.pause)


def _resume(args: argparse.Namespace, ctx: Context) -> int:
    return each(args.containers, ctx.client.resume)


def _rm(args: argparse.Namespace, ctx: Context) -> int:
    if not args.force:
        return each(
            args.containers,
            lambda ref: ctx.client.remove_container(ref, False, args.volumes),
        )

    # docker's rm -f of a container that is not there succeeds, silently.
    def remove(ref: str) -> None:
        from ctl.errdefs import NotFound

        try:
            ctx.client.remove_container(ref, True, args.volumes)
            print(ref)
        except NotFound:
            pass

    return each(args.containers, remove, echo=False)


def _log_window(since: str | None, until: str | None) -> Callable[[str], int] | None:
    """_log_window places a log line's time before (-1), in (0) or after (1) the window
    ``--since``/``--until`` give; None without one. As docker's, --tail counts lines
    before the window applies, and a line past --until ends the output, even with -f."""
    if since is None and until is None:
        return None
    import time

    from ctl.timefmt import parse_rfc3339, parse_timestamp

    now = time.time()
    start = parse_flag("--since", lambda text: parse_timestamp(text, now), since) if since else None
    end = parse_flag("--until", lambda text: parse_timestamp(text, now), until) if until else None

    def position(when: str) -> int:
        moment = parse_rfc3339(when)
        if moment is None:
            return 0  # an unreadable time is shown, not lost
        if start is not None and moment < start:
            return -1
        return 1 if end is not None and moment > end else 0

    return position


def _logs(args: argparse.Namespace, ctx: Context) -> int:
    # docker's: a negative number or a non-integer, "all" included, means every line.
    count = args.tail.removeprefix("+")
    tail = int(count) if count.isascii() and count.isdigit() else None
    streams = {"stdout": sys.stdout, "stderr": sys.stderr}
    container = ctx.client.get_container(args.container)
    window = _log_window(args.since, args.until)
    for stream, text, when, skipped in ctx.client.logs(container.id, follow=args.follow, tail=tail):
        if window is not None:
            position = window(when)
            if position < 0:
                continue
            if position > 0:
                break
        if skipped:
            # docker says nothing; a silent hole in a log reads as a quiet container.
            sys.stdout.flush()
            sys.stderr.write(
                f"ctl: logs: {skipped} lines were rotated away before they could be read\n"
            )
            sys.stderr.flush()
        out = streams.get(stream, sys.stdout)
        # --details: docker's line attributes (k=v,k=v; ctl's log lines have none), a space.
        line = f" {text}" if args.details else text
        out.write(f"{when} {line}" if args.timestamps else line)
        if args.follow:
            out.flush()
    task = ctx.client.task_state(container)
    if task is not None and task.log_lines_dropped:
        sys.stdout.flush()
        sys.stderr.write(
            f"ctl: warning: container {container.name}: {task.log_lines_dropped} log lines"
            " were dropped: they could not be written (a full disk?)\n"
        )
    return 0


def _exec(args: argparse.Namespace, ctx: Context) -> int:
    import os

    from ctl.runtime.runc import Stdio
    from ctl.runtime.runopts import parse_detach_keys, parse_env, parse_env_file

    env: list[str] = []
    for path in args.env_file:
        env += parse_flag("--env-file", parse_env_file, path)
    env += parse_flag("-e", parse_env, args.env)
    if args.detach_keys:
        parse_flag("--detach-keys", parse_detach_keys, args.detach_keys)
    sys.stdout.flush()
    # Without -i the process reads nothing, as with docker: stdin is /dev/null.
    null = None if args.interactive else os.open(os.devnull, os.O_RDONLY)
    try:
        return ctx.client.exec(
            args.container,
            list(args.command),
            tty=args.tty,
            detach=args.detach,
            env=env,
            workdir=args.workdir,
            user=args.user,
            privileged=args.privileged,
            stdio=Stdio(stdin=null),
        )
    finally:
        if null is not None:
            os.close(null)


def _wait(args: argparse.Namespace, ctx: Context) -> int:
    # docker's wait prints each code and exits 0: scripts read the code from the output.
    def wait(ref: str) -> None:
        status = ctx.client.wait(ref)
        print(status.exit_code if status.exit_code is not None else "unknown", flush=True)

    return each(args.containers, wait, echo=False)


def inspect_document(ctx: Context, ref: str, size: bool = False) -> dict[str, Any]:
    """inspect_document is ``container inspect``'s document; ``size`` adds SizeRw, SizeRootFs."""
    from ctl.containers.inspect import inspect_container

    container = ctx.client.get_container(ref)
    document = inspect_container(ctx.client, container)
    if size:
        own, image = ctx.client.container_size(container)
        document.update(SizeRw=own, SizeRootFs=own + image)
    return document


def _inspect(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.output import print_inspect

    print_inspect([inspect_document(ctx, ref, args.size) for ref in args.containers], args.format)
    return 0


def _top(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.containers.top import top

    sys.stdout.write(top(ctx.client.pids(args.container), args.ps_options or ["-ef"]))
    return 0


def _containers_ls(args: argparse.Namespace, ctx: Context) -> Listing:
    from ctl.output import Column, Listing

    containers = ctx.client.list_containers()
    rows = [
        {"ID": c.id, "Name": c.name, "Image": c.image, "Snapshotter": c.snapshotter}
        for c in containers
    ]
    columns = (
        Column("CONTAINER", "ID", id=True),
        Column("NAME", "Name"),
        Column("IMAGE", "Image"),
        Column("SNAPSHOTTER", "Snapshotter"),
    )
    return Listing(columns, rows)


def _containers_info(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.output import print_json

    print_json(ctx.client.get_container(args.container).to_record())
    return 0


def _tasks_ls(args: argparse.Namespace, ctx: Context) -> Listing:
    from ctl.output import Column, Listing

    client = ctx.client
    rows: list[dict[str, Any]] = []
    for container in client.list_containers():
        task = client.task_state(container)
        if task is not None:
            rows.append(
                {"Task": container.id, "Pid": task.pid, "Status": task.status.value.upper()}
            )
    columns = (Column("TASK", "Task", id=True), Column("PID", "Pid"), Column("STATUS", "Status"))
    return Listing(columns, rows)


def _tasks_ps(args: argparse.Namespace, ctx: Context) -> Listing:
    from ctl.output import Column, Listing

    pids = ctx.client.pids(args.container)
    return Listing((Column("PID", "Pid", id=True),), [{"Pid": pid} for pid in pids])


def _tasks_metrics(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.output import print_json

    print_json(ctx.client.metrics(args.container))
    return 0
