"""`iron verify`: run the threat → layer matrix as real containers on this host and print it.

Every cell is a probe's result in a fresh container started through the installed iron
binaries (iron → crun → hooks → Landlock helper). Exit 1 when a threat a column claims
to block was allowed, a probe could not tell, or the benign workload failed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import click

from iron.oci.errors import IronError
from iron.oci.profile import Loader
from iron.shim import config, table
from iron.shim import verify_columns as cols
from iron.shim.verify_netns import ProbeNet
from iron.shim.verify_rootfs import cached_rootfs
from iron.shim.verify_run import Column, Runner
from iron.shim.verify_threats import BENIGN, CATEGORIES, THREATS, Outcome, Targets, blocker, claimed


@click.command(help="Run every threat probe in fresh containers per mode and show which layer blocks it.")
@click.option("--mode", "-m", "modes", multiple=True, help="A mode or profile (repeatable; default: all three).")
@click.option("--layers-alone", is_flag=True, help="Also run each layer alone (independence).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--runtime-path", default=None, help="The delegate runtime (default: from config.toml).")
def cli(modes: tuple[str, ...], layers_alone: bool, as_json: bool, runtime_path: str | None) -> int:
    cfg = config.load(config.config_path(None))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="iron-verify-") as work:
        profiles_dir = cfg.profiles_dir
        if layers_alone:
            profiles_dir = os.path.join(work, "profiles")
            shutil.copytree(cfg.profiles_dir, profiles_dir) if os.path.isdir(cfg.profiles_dir) \
                else os.makedirs(profiles_dir)
        loader = Loader(profiles_dir)
        alone = cols.alone_profiles(profiles_dir) if layers_alone else []
        matrix = [cols.column(loader, m, alone=False) for m in (modes or cols.BUILTIN)]
        alone_cols = [cols.column(loader, n, alone=True) for n in alone]
        config_path = os.path.join(work, "config.toml")
        cols.write_config(cfg, config_path, profiles_dir=profiles_dir, runtime=runtime_path)
        runner = Runner(work, cached_rootfs(), config_path)
        with ProbeNet([c.name for c in matrix + alone_cols]) as net:
            for column in matrix + alone_cols:
                prepare(column, loader, net)
            report = {"matrix": run_columns(runner, matrix, only_claimed=False)}
            if alone_cols:
                report["layers_alone"] = run_columns(runner, alone_cols, only_claimed=True)
        report["seconds"] = round(time.monotonic() - started, 1)
    failures = [f"{section}: {c['column']}: {c['threat']}: {c['verdict']}" for section in ("matrix", "layers_alone")
                for c in report.get(section, {}).get("cells", []) if c["failed"]]
    report["ok"] = not failures
    report["failures"] = failures
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(render(report["matrix"], "iron verify: threat → layer, one fresh container per cell"))
        if alone_cols:
            click.echo()
            click.echo(render(report["layers_alone"], "each layer alone (independence)"))
        click.echo()
        click.echo(f"{'PASS' if report['ok'] else 'FAIL'} in {report['seconds']} s" +
                   "".join(f"\n  {f}" for f in failures))
    return 0 if report["ok"] else 1


def prepare(column: Column, loader: Loader, net: ProbeNet) -> None:
    pids, memory = cols.limits(loader.load(column.name))
    peer_v4, peer_v6, resolver = net.addrs[column.name]
    column.targets = Targets(pids, memory, peer_v4, peer_v6, resolver, os.getpid())
    column.netns = net.paths[column.name]


def run_columns(runner: Runner, columns: list[Column], only_claimed: bool) -> dict:
    jobs = [(c, t) for c in columns for t in (*THREATS, BENIGN)
            if not only_claimed or claimed(t, c.claims, alone=True)]
    progress = Progress(len(jobs))
    results: dict[tuple[str, str], Outcome] = {}

    def one(job):
        column, threat = job
        results[(column.name, threat.key)] = runner.run(column, threat)
        progress.tick(f"{column.name} {threat.key}")

    def execs(column):
        mine = [t for c, t in jobs if c is column and t.via_exec]
        for key, got in runner.run_execs(column, mine).items():
            results[(column.name, key)] = got
            progress.tick(f"{column.name} {key}")

    heavy = [j for j in jobs if j[1].category == "resources"]
    light = [j for j in jobs if j not in heavy and not j[1].via_exec]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = [pool.submit(execs, c) for c in columns]
        futures += [pool.submit(one, j) for j in light]
        for f in futures:
            f.result()
    for job in heavy:       # the resource hogs run alone, so they do not skew each other or the rest
        one(job)
    progress.done()
    cells = [cell(column, threat, results[(column.name, threat.key)], only_claimed) for column, threat in jobs]
    return {"columns": [{"name": c.name, "layers": c.layers, "claims": c.claims} for c in columns],
            "cells": cells}


def cell(column: Column, threat, got: Outcome, alone: bool) -> dict:
    must_block = threat is not BENIGN and claimed(threat, column.claims, alone)
    if threat is BENIGN:
        verdict = "works" if got.verdict == "allowed" else f"FAILED ({got.evidence})"
        failed = got.verdict != "allowed"
    elif got.verdict == "blocked":
        verdict = f"blocked by {blocker(threat, column.layers)} ({got.evidence})"
        failed = False
    elif got.verdict == "allowed":
        verdict, failed = "ALLOWED", must_block
    else:
        verdict, failed = f"ERROR ({got.evidence})", True
    return {"column": column.name, "threat": threat.key, "label": threat.label, "category": threat.category,
            "claimed": must_block, "outcome": got.verdict, "evidence": got.evidence, "verdict": verdict,
            "failed": failed}


def render(section: dict, title: str) -> str:
    names = [c["name"] for c in section["columns"]]
    by_key = {(c["threat"], c["column"]): c for c in section["cells"]}
    rows = []
    for category, heading in CATEGORIES:
        threats = [t for t in (*THREATS, BENIGN) if t.category == category
                   and any((t.key, n) in by_key for n in names)]
        if not threats:
            continue
        rows.append([f"[{heading}]"] + [""] * len(names))
        for t in threats:
            rows.append([f"  {t.label}"] + [_shown(by_key.get((t.key, n))) for n in names])
    return f"{title}\n\n" + table.render(["threat", *names], rows)


def _shown(c: dict | None) -> str:
    if c is None:
        return "-"
    return c["verdict"] + (" ✗" if c["failed"] else "")


class Progress:
    """`[n/total] column threat` on stderr: one rewritten line on a terminal, else every 25 cells."""

    def __init__(self, total: int):
        self.total, self.count = total, 0
        self.tty = sys.stderr.isatty()

    def tick(self, what: str) -> None:
        self.count += 1
        if self.tty:
            sys.stderr.write(f"\r\033[K[{self.count}/{self.total}] {what}")
        elif self.count % 25 == 0 or self.count == self.total:
            sys.stderr.write(f"iron verify: {self.count}/{self.total} cells\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def main(args: list[str], prog: str) -> int:
    try:
        return cli.main(args=args, prog_name="iron verify", standalone_mode=False)
    except IronError as err:
        click.echo(f"iron verify: {err}", err=True)
        return 2
    except click.ClickException as err:
        err.show()
        return err.exit_code
