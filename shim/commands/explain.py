"""`iron explain --bundle DIR [--mode M]`: what a mode would change, as a diff; writes nothing."""

from __future__ import annotations

import difflib
import json

import click

from iron.oci import bundle, pipeline
from iron.oci.errors import IronError
from iron.oci.profile import Loader
from iron.shim import config, host, modes, rewrite


@click.command(help="Show what a mode would change in a bundle's config.json, without writing it.")
@click.option("--bundle", "-b", "bundle_dir", default=".", show_default=True, help="The OCI bundle.")
@click.option("--mode", "-m", default=None, help="The mode (default: as create would choose it).")
def cli(bundle_dir: str, mode: str | None) -> None:
    cfg = config.load(config.config_path(None))
    loader = Loader(cfg.profiles_dir)
    path, raw, spec = bundle.read_config(bundle.bundle_dir(bundle_dir))
    annotations = spec.get("annotations") or {}
    profile, source = modes.resolve(None, mode, annotations, cfg, loader)
    facts = host.probe(cfg)
    ctx = rewrite.context_for(profile, cfg, facts, annotations)
    hardened, decisions = pipeline.harden(spec, profile.data, ctx)
    hardened.setdefault("annotations", {})[modes.ANNOTATION] = profile.name
    click.echo(f"# mode {profile.name} (from the {source}); layers: {', '.join(profile.layers())}")
    for d in decisions:
        click.echo(f"# {d.layer:<10} {d.field}: {d.reason}")
    before = json.dumps(spec, indent=2, sort_keys=True).splitlines()
    after = json.dumps(hardened, indent=2, sort_keys=True).splitlines()
    click.echo("\n".join(difflib.unified_diff(before, after, f"{path} (engine)", f"{path} ({profile.name})",
                                              lineterm="")))


def main(args: list[str], prog: str) -> int:
    try:
        cli.main(args=args, prog_name="iron explain", standalone_mode=False)
    except IronError as err:
        click.echo(f"iron: {err}", err=True)
        return 1
    except click.ClickException as err:
        err.show()
        return err.exit_code
    return 0
