"""`iron profile lint FILE` and `iron profile show NAME`."""

from __future__ import annotations

import json

import click

from iron.oci.errors import IronError
from iron.oci.profile import Loader
from iron.shim import config


def _loader() -> Loader:
    cfg = config.load(config.config_path(None))
    return Loader(cfg.profiles_dir)


@click.group(help="Lint and show isolation profiles.")
def cli() -> None:
    pass


@cli.command(help="Check a profile file: schema, extends chain, syscall names, paths.")
@click.argument("file", type=click.Path(dir_okay=False))
def lint(file: str) -> None:
    from pathlib import Path
    profile = _loader().load_file(Path(file))
    _check_layers(profile)
    click.echo(f"{file}: ok (mode {profile.name}, ranks as {profile.base}, layers: "
               f"{', '.join(profile.layers()) or 'none'})")


@cli.command(help="Print the resolved profile (after `extends`).")
@click.argument("name")
def show(name: str) -> None:
    profile = _loader().load(name)
    _check_layers(profile)
    click.echo(json.dumps(profile.data, indent=2))


def _check_layers(profile) -> None:
    """Deep checks that need the layer code: syscall names per architecture."""
    seccomp = (profile.data.get("syscall") or {}).get("seccomp")
    if seccomp:
        import os
        from pathlib import Path
        from iron.oci.seccomp_names import load_seccomp_profile
        load_seccomp_profile(Path(seccomp), os.uname().machine)


def main(args: list[str], prog: str) -> int:
    try:
        cli.main(args=args, prog_name="iron profile", standalone_mode=False)
    except IronError as err:
        click.echo(f"iron: {err}", err=True)
        return 1
    except click.ClickException as err:
        err.show()
        return err.exit_code
    return 0
