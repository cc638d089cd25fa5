"""`iron check`: can this host enforce each mode? A table of facts, then one row per mode."""

from __future__ import annotations

import json
import os

import click

from iron.oci.errors import IronError
from iron.oci.profile import Loader
from iron.shim import config, host, table


def facts_rows(cfg, facts, runtime: str) -> list[list[str]]:
    layout, controllers = host.cgroup_layout()
    cgroup = layout + (f" (unified holds: {' '.join(controllers)})" if controllers else "")
    quirk = host.cgroup_blocker()
    return [
        ["kernel", facts.kernel, ""],
        ["seccomp", "yes" if facts.seccomp else "no", ""],
        ["Landlock ABI", str(facts.landlock_abi) if facts.landlock_abi else "unavailable", ""],
        ["cgroups", cgroup, "crun refuses this: run install.sh --fix-cgroups" if quirk else ""],
        ["libnftables", "yes" if facts.libnftables else "missing", "" if facts.libnftables else "apt-get install nftables"],
        ["crun", (host.crun_version(runtime) or "?") + f" ({runtime})" if runtime else "missing",
         "" if runtime else "apt-get install crun"],
        ["Landlock helper", facts.landlock_helper or f"missing ({cfg.landlock_helper})",
         "" if facts.landlock_helper else "run install.sh"],
        ["network hook", facts.network_hook or f"missing ({cfg.network_hook})",
         "" if facts.network_hook else "run install.sh"],
    ]


def mode_rows(cfg, facts, runtime: str) -> tuple[list[list[str]], dict]:
    loader = Loader(cfg.profiles_dir)
    rows, verdicts = [], {}
    for name in loader.names():
        try:
            profile = loader.load(name)
        except IronError as err:
            rows.append([name, "INVALID", str(err)])
            verdicts[name] = False
            continue
        min_abi = ((profile.data.get("filesystem") or {}).get("landlock") or {}).get("minAbi", 1)
        problems = host.blockers(profile.layers(), facts, runtime, min_abi)
        verdicts[name] = not problems
        rows.append([name, "enforceable" if not problems else "NOT enforceable",
                     "; ".join(problems) or ", ".join(profile.layers())])
    return rows, verdicts


@click.command(help="Report what this host can enforce, per mode.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cli(as_json: bool) -> None:
    cfg = config.load(config.config_path(None))
    runtime = cfg.runtime or config.find_on_path("crun")
    facts = host.probe(cfg)
    fact_rows = facts_rows(cfg, facts, runtime)
    rows, verdicts = mode_rows(cfg, facts, runtime)
    if as_json:
        click.echo(json.dumps({"facts": {r[0]: r[1] for r in fact_rows},
                               "modes": {r[0]: {"enforceable": verdicts[r[0]], "detail": r[2]} for r in rows},
                               "default_mode": cfg.default_mode}, indent=2))
    else:
        click.echo(table.render(["host", "found", "fix"], fact_rows))
        click.echo()
        click.echo(table.render(["mode", "verdict", "layers / what is missing"], rows))
        click.echo(f"\ndefault mode: {cfg.default_mode}")
    if not verdicts.get(cfg.default_mode, False):
        raise SystemExit(1)


def main(args: list[str], prog: str) -> int:
    try:
        cli.main(args=args, prog_name="iron check", standalone_mode=False)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except IronError as err:
        click.echo(f"iron: {err}", err=True)
        return 1
    return 0
