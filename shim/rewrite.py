"""create, run, restore and exec: load → choose the mode → preflight → harden → write → hand to crun.

Each step adds its own context to errors; nothing is written unless every layer
succeeded, and crun is never called after a failure.
"""

from __future__ import annotations

import os

from iron.oci import bundle, pipeline
from iron.oci.context import Context, Policy
from iron.oci.errors import IronError, Refused
from iron.oci.profile import Loader
from iron.shim import argv as runc_argv
from iron.shim import audit, config, delegate, host, modes
from iron.shim.main import pinned_mode


def main(parsed, prog: str, cfg_path: str) -> int:
    cfg = config.load(cfg_path)
    runtime = cfg.runtime or config.find_on_path("crun")
    if not runtime or not os.access(runtime, os.X_OK):
        raise delegate.missing_error(cfg.runtime)
    loader = Loader(cfg.profiles_dir)
    if parsed.subcommand == "exec":
        argv = _exec(parsed, prog, cfg, loader, runtime)
    else:
        _create(parsed, prog, cfg, loader, runtime)
        argv = parsed.crun_argv()
    delegate.execv(runtime, argv)
    return 127  # not reached


def context_for(profile, cfg, facts, annotations: dict, loader: Loader) -> Context:
    """The Context the layers see: host facts, the operator policy, the annotations."""
    policy = Policy(allow_annotation_lower=cfg.allow_annotation_lower,
                    allow_fs_write_annotation=cfg.allow_fs_write_annotation,
                    allow_network_annotation=cfg.allow_network_annotation,
                    host_network=cfg.host_network)
    return Context(mode=profile.name, profiles_root=loader.builtin, host=facts, policy=policy,
                   annotations=dict(annotations))


def _preflight(profile, cfg, runtime: str):
    facts = host.probe(cfg, profile.layers())
    min_abi = ((profile.data.get("filesystem") or {}).get("landlock") or {}).get("minAbi", 1)
    problems = host.blockers(profile.layers(), facts, runtime, min_abi)
    if problems:
        raise Refused(f"mode `{profile.name}` cannot be enforced on this host: " + "; ".join(problems),
                      hint="see `iron check`")
    return facts


# Layers a CRIU restore cannot carry: the restored process is not exec'd again, so the Landlock
# helper never runs, and the network hook's ruleset lived in the old netns.
NOT_RESTORABLE = ("filesystem", "network")


def _create(parsed, prog: str, cfg, loader: Loader, runtime: str) -> None:
    restore = parsed.subcommand == "restore"
    sub = runc_argv.split_args(parsed.rest, runc_argv.RESTORE_VALUE_FLAGS if restore
                               else runc_argv.CREATE_VALUE_FLAGS)
    container_id = parsed.rest[sub.positionals[-1]] if sub.positionals else None
    entry = {"event": parsed.subcommand, "container": container_id}
    mode = log = None
    try:
        bundle_path = bundle.bundle_dir(sub.value("--bundle", "-b") or os.getcwd())
        entry["bundle"] = bundle_path
        path, raw, spec = bundle.read_config(bundle_path)
        annotations = spec.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise IronError("annotations must be an object", file=path, field="annotations")
        profile, source = modes.resolve(pinned_mode(prog), parsed.iron_mode, annotations, cfg, loader)
        mode = profile.name
        entry.update(mode=mode, mode_source=source, layers=profile.layers())
        lost = [layer for layer in NOT_RESTORABLE if restore and layer in profile.layers()]
        if lost:
            raise Refused(f"restore refused in mode `{mode}`: a restored process would run without "
                          f"its {' and '.join(lost)} layer{'s' if len(lost) > 1 else ''}",
                          hint="checkpoint/restore works in modes without the filesystem and network layers")
        log = audit.open_log(cfg, mode)          # a strict mode refuses before config.json changes
        facts = _preflight(profile, cfg, runtime)
        try:
            hardened, decisions = pipeline.harden(spec, profile.data, context_for(profile, cfg, facts, annotations, loader))
        except IronError as err:
            raise err.within(path)
        hardened.setdefault("annotations", {})[modes.ANNOTATION] = profile.name
        data = bundle.dumps(hardened)
        if data != raw:
            bundle.write_atomic(path, data)
        entry["changes"] = [d.to_json() for d in decisions]
    except IronError as err:
        entry["refused"] = str(err)
        _audit_quietly(cfg, mode, entry, log)
        raise
    audit.record(cfg, mode, entry, log)


def _exec(parsed, prog: str, cfg, loader: Loader, runtime: str) -> list[str]:
    rest = list(parsed.rest)
    sub = runc_argv.split_args(rest, runc_argv.EXEC_VALUE_FLAGS, stop_at_command=True)
    if not sub.positionals:
        raise IronError("exec needs a container id", field="exec", expected="exec [options] ID [COMMAND]")
    container_id = rest[sub.positionals[0]]
    entry = {"event": "exec", "container": container_id}
    mode = log = None
    try:
        container = _container_spec(runtime, parsed, container_id)
        recorded = (container.get("annotations") or {}).get(modes.ANNOTATION)
        profile, source = modes.for_exec(recorded, pinned_mode(prog), parsed.iron_mode, cfg, loader)
        mode = profile.name
        entry.update(mode=mode, mode_source=source, layers=profile.layers())
        log = audit.open_log(cfg, mode)          # a strict mode refuses before the process file changes
        facts = _preflight(profile, cfg, runtime)
        ctx = context_for(profile, cfg, facts, container.get("annotations") or {}, loader)
        process_file = sub.value("--process", "-p")
        if process_file:
            raw, process = bundle.read_json(process_file, "process file")
            try:
                hardened, decisions = pipeline.harden_exec(process, profile.data, ctx, container)
            except IronError as err:
                raise err.within(process_file)
            data = bundle.dumps(hardened)
            if data != raw:
                bundle.write_atomic(process_file, data)
        else:
            rest, decisions = _exec_inline(rest, sub, profile, ctx, container)
        entry["changes"] = [d.to_json() for d in decisions]
    except IronError as err:
        entry["refused"] = str(err)
        _audit_quietly(cfg, mode, entry, log)
        raise
    audit.record(cfg, mode, entry, log)
    return [*parsed.globals, "exec", *rest]


def _exec_inline(rest: list[str], sub, profile, ctx, container) -> tuple[list[str], list]:
    """`exec ID CMD…`: harden an equivalent process object, then put its args back inline."""
    if sub.has("--cap", "-c"):
        caps = [value for name, value, _, _ in sub.options if name in ("--cap", "-c")]
        allowed = set((profile.data.get("process") or {}).get("capabilities", []))
        extra = [c for c in caps if c not in allowed and f"CAP_{c}" not in allowed]
        if extra and profile.data.get("process") is not None:
            raise Refused(f"exec --cap {' '.join(extra)} refused in mode `{profile.name}`",
                          field="exec --cap")
    command = rest[sub.tail:]
    if not command:
        raise IronError("exec needs a command or --process", field="exec",
                        expected="exec [options] ID COMMAND [ARGS…]")
    process = {"args": command, "cwd": sub.value("--cwd") or (container.get("process") or {}).get("cwd", "/"),
               "env": (container.get("process") or {}).get("env", [])}
    hardened, decisions = pipeline.harden_exec(process, profile.data, ctx, container)
    return rest[:sub.tail] + hardened["args"], decisions


def _container_spec(runtime: str, parsed, container_id: str) -> dict:
    """The running container's config.json (as iron hardened it at create), found via crun state."""
    state_argv = [runtime, *_root_args(parsed), "state", container_id]
    import subprocess   # exec only: create does not pay for the import
    out = subprocess.run(state_argv, capture_output=True, text=True)
    if out.returncode != 0:
        detail = (out.stderr.strip().splitlines() or ["no such container"])[-1]
        raise IronError(f"cannot find container `{container_id}`: {detail}")
    try:
        from iron.oci.jsonio import loads
        bundle_path = loads(out.stdout)["bundle"]
    except (ValueError, KeyError) as err:
        raise IronError(f"crun state for `{container_id}` has no bundle") from err
    _, _, spec = bundle.read_config(bundle_path)
    return spec


def _root_args(parsed) -> list[str]:
    return ["--root", parsed.root] if parsed.root else []


def _audit_quietly(cfg, mode, entry, log=None) -> None:
    """Record a refusal; the refusal itself is the error the caller sees."""
    try:
        audit.record(cfg, mode, entry, log)
    except IronError:
        pass
