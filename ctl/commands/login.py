"""Registry credentials: login, logout."""

from __future__ import annotations

import sys

from ctl.commands._base import Command
from ctl.errdefs import InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse

    from ctl.commands._base import Context

# docker's default server: Docker Hub, under the key docker's config file uses.
DEFAULT_SERVER = "https://index.docker.io/v1/"


def commands() -> tuple[Command, ...]:
    return (
        Command("login", _login, "Log in to a registry", _login_flags),
        Command("logout", _logout, "Log out from a registry", _logout_flags),
    )


def _login_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("-u", "--username", help="user name")
    add("-p", "--password", help="password (insecure: prefer --password-stdin)")
    add("--password-stdin", action="store_true", help="read the password from stdin")
    add("--insecure", action="store_true", help="allow plain HTTP and bad TLS")
    add("server", nargs="?", default=DEFAULT_SERVER, metavar="SERVER")


def _logout_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("server", nargs="?", default=DEFAULT_SERVER, metavar="SERVER")


def _login(args: argparse.Namespace, ctx: Context) -> int:
    username, password = args.username, args.password
    if args.password_stdin:
        if password is not None:
            raise InvalidArgument("--password and --password-stdin are mutually exclusive")
        if not username:
            raise InvalidArgument("must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password is not None:
        sys.stderr.write(
            "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n"
        )
    if not username or password is None:
        username, password = _prompt(username, password)
    if not password:
        raise InvalidArgument("password is required")
    where = ctx.client.login(args.server, username, password, insecure=args.insecure)
    if not where.startswith("docker-credential-"):
        sys.stderr.write(
            f"WARNING! Your password will be stored unencrypted in {where}.\n"
            "Configure a credential helper to remove this warning. See\n"
            "https://docs.docker.com/go/credential-store/\n\n"
        )
    print("Login Succeeded")
    return 0


def _prompt(username: str | None, password: str | None) -> tuple[str, str]:
    """_prompt asks on the terminal for what the flags did not give, as docker does."""
    if not sys.stdin.isatty():
        raise InvalidArgument("cannot perform an interactive login from a non TTY device")
    import getpass

    if not username:
        username = input("Username: ").strip()
        if not username:
            raise InvalidArgument("username is required")
    if password is None:
        password = getpass.getpass("Password: ")
    return username, password


def _logout(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.client import registry_domain

    host = registry_domain(args.server)
    if ctx.client.logout(args.server):
        print(f"Removing login credentials for {host}")
    else:
        print(f"Not logged in to {host}")
    return 0
