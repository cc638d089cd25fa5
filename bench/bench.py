#!/usr/bin/env python3
"""iron vs crun (and runc), side by side in one run: medians and ratios, as tables.

    bench/bench.py [--quick] [--runs N] [SECTION…]

Sections: passthrough, lifecycle, seccomp, landlock, hook, throughput, engines (default:
all). Run as root after install.sh. Numbers are wall-clock medians and p95 over N runs after
one warm-up; progress goes to stderr, tables to stdout.

- lifecycle (crun, runc, iron per mode, and a "python floor": a create that only starts
  iron's interpreter, round-trips config.json and execs crun, bench/python_floor.py) and
  engines (podman and docker, crun vs iron) interleave their runtimes run by run. docker
  uses the running dockerd if it has the runtimes registered, else starts a private one
  (bench/dockerd.py) and stops it afterwards.
- The seccomp and Landlock loops time themselves inside the container (bench/loops.c, built
  static here; the fastest of 20 batches, pinned to one CPU), run by crun from the
  config.json iron wrote with and without the layer only, interleaved round by round;
  overheads are medians of each round's difference.
- throughput sends TCP streams to a sink from two identical network namespaces of its own
  over veth pairs, one with iron's ruleset loaded by the real hook, alternating
  (bench/streams.py, bench/tcp.c).

Not covered yet: a maximum start with vs without the hook (the hook is timed directly).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from iron.hooks.nft_ruleset import render as render_ruleset  # noqa: E402
from iron.shim.bundlekit import build_rootfs, make_bundle  # noqa: E402
from iron.shim.table import render  # noqa: E402

from dockerd import docker_env  # noqa: E402  (bench/ is on sys.path when run as a script)
from streams import StreamHosts  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HELPER = "/usr/local/lib/iron/iron-landlock"
NETHOOK = "/usr/local/lib/iron/iron-nethook"
ONE_RULE_POLICY = "abi=1;r=/;x=/"   # one path, so one Landlock rule
NETNS_POLICY = '{"policy":"allowlist","allow":["10.0.0.1:80"],"dns":[],"inbound":[]}'
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]  # podman; no CAP_SYS_RESOURCE here
IMAGE = "localhost/iron-bench:latest"
ENGINE_RUNTIMES = {"crun": "", "iron-maximum": "≤ 1.10", "iron-standard": "(info)"}  # name → target

BIN = "/usr/local/bin"
MODES = ("minimal", "standard", "maximum")
LIFECYCLE_TARGETS = {"iron-minimal": "≤ 1.6"}
IRON_PYTHON = "/opt/iron/venv/bin/python3"      # the interpreter the launcher starts
PYTHON_FLOOR = "python floor (create: start Python, JSON round trip, exec crun)"
STREAM_MIB = 400


def timed(argv: list[str], **kw) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or ["no message"]
        raise RuntimeError(f"{' '.join(argv[:4])}… exit {done.returncode}: {lines[-1][-300:]}")
    return elapsed


def call(argv: list[str]) -> None:
    """Run argv; on failure raise with its last stderr line. stderr goes to a file, not a pipe:
    after `create` the container's process holds it open until it exits."""
    with tempfile.TemporaryFile() as err:
        if subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=err).returncode:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines() or ["no message"]
            raise RuntimeError(f"{os.path.basename(argv[0])}: {lines[-1][-300:]}")


def sample_ms(fn, runs: int) -> list[float]:
    fn()  # warm-up
    return sorted(fn() * 1000 for _ in range(runs))


def interleaved_ms(fns: dict, runs: int) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Each fn once to warm up, then round-robin, so a drift in host load hits every one alike.

    A fn that fails its warm-up is left out; its error comes back in the second dict."""
    failed = {}
    for name, fn in fns.items():
        try:
            fn()
        except (RuntimeError, subprocess.CalledProcessError) as err:
            failed[name] = str(err)
    samples = {name: [] for name in fns if name not in failed}
    for _ in range(runs):
        for name in samples:
            samples[name].append(fns[name]() * 1000)
    return {name: sorted(values) for name, values in samples.items()}, failed


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def failed_rows(failed: dict[str, str]) -> list[list[str]]:
    """A table row per runtime that could not be timed, saying why (also on stderr)."""
    for name, why in failed.items():
        progress(f"{name} not timed: {why}")
    return [[name, "not timed", "", "", why[:60]] for name, why in failed.items()]


def progress(text: str) -> None:
    sys.stderr.write(f"  … {text}\n")


def landlock_policy(spec: dict) -> str:
    """The Landlock policy iron wrote into a config.json: the helper's first argument."""
    args = spec["process"]["args"]
    if len(args) < 4 or args[2] != "--":
        raise RuntimeError(f"no Landlock helper prefix in process.args: {args[:3]}")
    return args[1]


def added(samples: dict[str, list[float]], name: str, base: str) -> tuple[float, float]:
    """What ``name`` adds to ``base`` in ns and in %: the median over rounds, each round's runs
    being seconds apart, so that a drift in the host's speed cancels out."""
    pairs = list(zip(samples[name], samples[base]))
    return (statistics.median(v - b for v, b in pairs), statistics.median((v / b - 1) * 100 for v, b in pairs))


def policy_paths(policy: str) -> int:
    """How many paths a helper policy names: each is one Landlock rule (if it exists)."""
    fields = (field.partition("=") for field in policy.split(";"))
    return len({path.lstrip("!") for key, _, value in fields if key in ("r", "w", "x", "d")
                for path in value.split(":") if path})


class Bench:
    def __init__(self, runs: int, loop_n: int, work: str):
        self.runs = runs
        self.loop_n = loop_n
        self.work = work
        self.root = os.path.join(work, "state")
        os.makedirs(self.root)
        loops = os.path.join(work, "loops")
        subprocess.run(["gcc", "-O2", "-static", "-o", loops, os.path.join(HERE, "loops.c")], check=True)
        self.rootfs = os.path.join(work, "rootfs")
        build_rootfs(self.rootfs, {loops: "/usr/bin/loops", HELPER: "/usr/bin/iron-landlock"})

    def bundle(self, args, edit=None) -> str:
        return make_bundle(os.path.join(self.work, uuid.uuid4().hex[:8]), self.rootfs, args, edit=edit)

    def lifecycle(self, runtime: str, bundle: str, create: list[str] | None = None) -> float:
        """create → start → wait → delete, as an engine drives it; ``create`` replaces the
        runtime for that one call."""
        cid = "bench-" + uuid.uuid4().hex[:8]
        base = [runtime, "--root", self.root]
        start = time.perf_counter()
        call((create or [runtime]) + ["--root", self.root, "create", "--bundle", bundle, cid])
        call(base + ["start", cid])
        while json.loads(subprocess.run(base + ["state", cid], capture_output=True, text=True,
                                        check=True).stdout)["status"] != "stopped":
            time.sleep(0.001)
        call(base + ["delete", cid])
        return time.perf_counter() - start

    def row(self, name: str, ms: list[float], base: list[float] | None, target: str = "") -> list[str]:
        med = statistics.median(ms)
        ratio = f"{med / statistics.median(base):.2f}" if base else "1.00"
        return [name, f"{med:.1f}", f"{p95(ms):.1f}", ratio, target]

    HEAD = ["median ms", "p95 ms", "× base", "target"]

    def section_passthrough(self):
        progress("pass-through: state of a running container")
        cid = "bench-pt-" + uuid.uuid4().hex[:6]
        bundle = self.bundle(["sleep", "600"])
        subprocess.run(["crun", "--root", self.root, "run", "-d", "--bundle", bundle, cid], check=True)
        try:
            crun = sample_ms(lambda: timed(["crun", "--root", self.root, "state", cid]), self.runs)
            iron = sample_ms(lambda: timed([f"{BIN}/iron", "--root", self.root, "state", cid]), self.runs)
        finally:
            subprocess.run(["crun", "--root", self.root, "delete", "-f", cid])
        extra = statistics.median(iron) - statistics.median(crun)
        return (["state (base crun)"] + self.HEAD + ["iron − crun"],
                [self.row("crun", crun, None) + [""],
                 self.row("iron", iron, crun, "≤ crun + 15 ms") + [f"+{extra:.1f} ms"]])

    def section_lifecycle(self):
        """A busybox bundle per runtime (iron rewrites config.json in place), runs interleaved."""
        runtimes = {"crun": "crun", "runc": shutil.which("runc"), **{f"iron-{m}": f"{BIN}/iron-{m}" for m in MODES}}
        failed = {name: "not installed" for name, path in runtimes.items() if not path}
        bundles = {name: self.bundle(["true"]) for name in runtimes if name not in failed}
        progress(f"lifecycle: {', '.join(bundles)} interleaved")
        fns = {name: lambda name=name: self.lifecycle(runtimes[name], bundles[name]) for name in bundles}
        site = subprocess.run([IRON_PYTHON, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        floor = [IRON_PYTHON, "-IS", os.path.join(HERE, "python_floor.py"), site, shutil.which("crun")]
        floor_bundle = self.bundle(["true"])
        fns[PYTHON_FLOOR] = lambda: self.lifecycle("crun", floor_bundle, create=floor)
        ms, errors = interleaved_ms(fns, self.runs)
        failed.update(errors)
        if "crun" in failed:
            raise RuntimeError(f"crun: {failed['crun']}")
        crun = ms.pop("crun")
        rows = [self.row("crun", crun, None)]
        rows += [self.row(name, ms[name], crun, LIFECYCLE_TARGETS.get(name, "(info)")) for name in ms]
        return ["create→start→wait→delete (base crun)"] + self.HEAD, rows + failed_rows(failed)

    def iron_spec(self, mode: str) -> dict:
        """config.json as iron-MODE writes it for a busybox bundle (created, then deleted unstarted)."""
        bundle = self.bundle(["true"])
        cid = "bench-spec-" + uuid.uuid4().hex[:6]
        runtime = f"{BIN}/iron-{mode}"
        call([runtime, "--root", self.root, "create", "--bundle", bundle, cid])
        call([runtime, "--root", self.root, "delete", "-f", cid])
        with open(os.path.join(bundle, "config.json")) as f:
            return json.load(f)

    def loop_ns(self, spec: dict, args: list[str]) -> float:
        """The loop's ns per iteration (its fastest batch) from one run of ``spec`` with ``args``.

        crun runs the config.json iron wrote, so variants differ only in what the caller changed."""
        bundle = os.path.join(self.work, uuid.uuid4().hex[:8])
        os.makedirs(bundle)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump({**spec, "process": {**spec["process"], "args": args}}, f)
        cid = "bench-loop-" + uuid.uuid4().hex[:6]
        try:
            out = subprocess.run(["crun", "--root", self.root, "run", "--bundle", bundle, cid],
                                 check=True, capture_output=True, text=True).stdout
        finally:
            subprocess.run(["crun", "--root", self.root, "delete", "-f", cid], capture_output=True)
        return float(out.split()[-1])

    def loop_rounds(self, loop: str, variants: dict[str, tuple[dict, list[str]]]) -> dict[str, list[float]]:
        """ns/iter of each variant (spec, argv prefix), one run each per round. Runs are pinned to
        one CPU (a VM's vCPUs can differ by 20 %) and each round starts with another variant."""
        n = self.loop_n // 5 if loop == "open" else self.loop_n   # open+close: ~10x a getppid
        args = ["loops", loop, str(n), str(max(os.sched_getaffinity(0)))]
        names = list(variants)
        samples: dict[str, list[float]] = {name: [] for name in names}
        for round_ in range(max(3, self.runs)):
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                spec, prefix = variants[name]
                samples[name].append(self.loop_ns(spec, prefix + args))
        return samples

    def section_seccomp(self):
        """iron-standard's config.json as written, without linux.seccomp, and with an allow-all
        filter instead: the last is the kernel's fixed cost of any filter (its entry path)."""
        spec = self.iron_spec("standard")
        bare = {**spec, "linux": {k: v for k, v in spec["linux"].items() if k != "seccomp"}}
        allow_all = {**spec, "linux": {**spec["linux"], "seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}}}
        rows = []
        for loop in ("getppid", "open"):
            progress(f"seccomp: {loop} loop without a filter, with an allow-all one, with iron's")
            ns = self.loop_rounds(loop, {"none": (bare, []), "allow": (allow_all, []), "iron": (spec, [])})
            added_ns, overhead = added(ns, "iron", "none")
            rows.append([loop, *(f"{statistics.median(ns[k]):.0f}" for k in ("none", "allow", "iron")),
                         f"{added_ns:+.0f} ns", f"{overhead:+.1f} %", f"{added(ns, 'iron', 'allow')[1]:+.1f} %",
                         "≤ 5 %"])
        return ["loop (iron-standard's config.json)", "ns/iter no filter", "allow-all filter", "iron's filter",
                "added", "overhead", "iron's vs allow-all", "target"], rows

    def section_landlock(self):
        """The helper with maximum's own policy (as iron-maximum writes it), in iron-minimal's
        container, against the same container without the helper; also one rule and two layers."""
        policy = landlock_policy(self.iron_spec("maximum"))
        progress("landlock: helper start-up on the host")
        plain = sample_ms(lambda: timed(["/bin/true"]), self.runs * 5)
        helper = sample_ms(lambda: timed([HELPER, policy, "--", "/bin/true"]), self.runs * 5)
        cost = statistics.median(helper) - statistics.median(plain)
        start_rows = [self.row("true", plain, None) + [""],
                      self.row("iron-landlock MAXIMUM-POLICY -- true", helper, plain, "≤ +2 ms") + [f"+{cost:.2f} ms"]]
        progress("landlock: open loop without and with the helper")
        spec = self.iron_spec("minimal")
        wrap = ["iron-landlock", policy, "--"]
        ns = self.loop_rounds("open", {"none": (spec, []), "one": (spec, ["iron-landlock", ONE_RULE_POLICY, "--"]),
                                       "max": (spec, wrap), "max2": (spec, wrap + wrap)})
        rows = [["no Landlock", f"{statistics.median(ns['none']):.0f}", "", "", ""]]
        for key, name, target in (("one", f"1 rule ({ONE_RULE_POLICY})", "(info)"),
                                  ("max", f"maximum's policy ({policy_paths(policy)} paths), 1 layer", "≤ 5 %"),
                                  ("max2", "maximum's policy, 2 layers", "(info)")):
            added_ns, overhead = added(ns, key, "none")
            rows.append([name, f"{statistics.median(ns[key]):.0f}", f"{added_ns:+.0f} ns", f"{overhead:+.1f} %", target])
        return [(["helper start-up (base true)"] + self.HEAD + ["added"], start_rows),
                (["open loop (iron-minimal's config.json)", "ns/iter", "added", "overhead", "target"], rows)]

    def section_hook(self):
        progress("hook: iron-nethook on a fresh netns")
        holder = subprocess.Popen(["unshare", "-n", "sleep", "600"])
        try:
            time.sleep(0.2)
            state = json.dumps({"pid": holder.pid, "status": "creating"}).encode()
            ruleset = render_ruleset(json.loads(NETNS_POLICY))       # as create renders it
            hook = sample_ms(lambda: timed([NETHOOK, "--ruleset", ruleset], input=state), self.runs)
            nft = sample_ms(lambda: timed(["nsenter", "-t", str(holder.pid), "-n", "nft", "list", "ruleset"]),
                            self.runs)
        finally:
            holder.kill()
            holder.wait()
        return (["network hook"] + self.HEAD,
                [self.row("nft list ruleset in the netns (floor)", nft, None),
                 self.row("iron-nethook (whole hook)", hook, nft, "≤ 50 ms")])

    def section_throughput(self):
        """An allowed TCP stream out of a container-like netns, without and with iron's ruleset.

        Rounds alternate which goes first, so a drift in host load hits both alike; the
        first round warms up (ARP, the sink's first accepts)."""
        tcp = os.path.join(self.work, "tcp")
        subprocess.run(["gcc", "-O2", "-static", "-o", tcp, os.path.join(HERE, "tcp.c")], check=True)
        rates: dict[bool, list[float]] = {False: [], True: []}
        with StreamHosts(tcp) as hosts:
            progress(f"throughput: {STREAM_MIB} MiB streams over veth pairs, without and with the ruleset")
            for round_ in range(self.runs + 1):
                for filtered in (False, True) if round_ % 2 else (True, False):
                    rate = hosts.stream_mb_s(STREAM_MIB, ruleset=filtered)
                    if round_:
                        rates[filtered].append(rate)
        base = statistics.median(rates[False])
        rows = [[name, f"{statistics.median(r):.0f}", f"{min(r):.0f}", f"{statistics.median(r) / base:.2f}", target]
                for name, r, target in (("no ruleset", rates[False], ""),
                                        ("iron ruleset (allowlist: the sink)", rates[True], "(info)"))]
        return [f"TCP stream, {STREAM_MIB} MiB (base: no ruleset)", "median MB/s", "min MB/s", "× base",
                "target"], rows

    def section_engines(self):
        """`run --rm IMAGE true` through each engine: crun vs iron, interleaved."""
        tar = os.path.join(self.work, "rootfs.tar")
        subprocess.run(["tar", "-C", self.rootfs, "-cf", tar, "."], check=True)
        return [self.engine_table("podman", self.podman_runner, "podman run --rm IMAGE true", tar),
                self.engine_table("docker", self.docker_runner, "docker run --rm --network none IMAGE true", tar)]

    def engine_table(self, engine: str, runner, title: str, tar: str):
        """One engine's table; an engine that is missing or does not start gets a row saying why."""
        headers = [f"{title} (base crun)"] + self.HEAD
        try:
            with runner(tar) as run:
                progress(f"engines: {engine} with {', '.join(ENGINE_RUNTIMES)} interleaved")
                ms, failed = interleaved_ms({name: lambda name=name: run(name) for name in ENGINE_RUNTIMES}, self.runs)
        except (RuntimeError, subprocess.CalledProcessError, OSError) as err:
            progress(f"engines: {engine} not run: {err}")
            return headers, [[engine, "not run", "", "", str(err)[:60]]]
        if "crun" in failed:
            raise RuntimeError(f"{engine} + crun: {failed['crun']}")
        crun = ms.pop("crun")
        rows = [self.row(f"{engine} + crun", crun, None)]
        rows += [self.row(f"{engine} + {name}", ms[name], crun, ENGINE_RUNTIMES[name]) for name in ms]
        return headers, rows + failed_rows({f"{engine} + {name}": why for name, why in failed.items()})

    @contextmanager
    def podman_runner(self, tar: str):
        """Yields run(runtime name) → seconds, with the image imported into podman's default store."""
        if not shutil.which("podman"):
            raise RuntimeError("podman not installed")
        subprocess.run(["podman", "import", "-q", "--change", 'CMD ["/bin/sh"]', tar, IMAGE], check=True,
                       stdout=subprocess.DEVNULL)
        try:
            yield lambda name: timed(["podman", "--runtime", runtime_path(name), "run", "--rm", *ULIMITS, IMAGE,
                                      "true"])
        finally:
            subprocess.run(["podman", "rmi", "-f", IMAGE], capture_output=True)

    @contextmanager
    def docker_runner(self, tar: str):
        """Yields run(runtime name) → seconds, through a dockerd that has the runtimes registered."""
        if not shutil.which("docker"):
            raise RuntimeError("docker CLI not installed")
        with docker_env(os.path.join(self.work, "docker"), {n: runtime_path(n) for n in ENGINE_RUNTIMES}) as env:
            subprocess.run(["docker", "import", "-c", 'CMD ["/bin/sh"]', tar, IMAGE], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            try:
                yield lambda name: timed(["docker", "run", "--rm", f"--runtime={name}", "--network", "none", IMAGE,
                                          "true"], env=env)
            finally:
                subprocess.run(["docker", "rmi", "-f", IMAGE], env=env, capture_output=True)


def runtime_path(name: str) -> str:
    return shutil.which("crun") if name == "crun" else f"{BIN}/{name}"


SECTIONS = ("passthrough", "lifecycle", "seccomp", "landlock", "hook", "throughput", "engines")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few runs and short loops, to check the script")
    parser.add_argument("--runs", type=int, help="timed runs per measurement (default 20, quick 3)")
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=f"any of {', '.join(SECTIONS)}")
    args = parser.parse_args()
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    runs = args.runs or (3 if args.quick else 20)
    loop_n = 20000 if args.quick else 300000
    started = time.perf_counter()
    work = tempfile.mkdtemp(prefix="iron-bench-")
    failed = []
    try:
        bench = Bench(runs, loop_n, work)
        for name in args.sections or SECTIONS:
            try:
                tables = getattr(bench, f"section_{name}")()
            except (subprocess.CalledProcessError, RuntimeError, OSError) as err:
                progress(f"{name}: FAILED: {err}")
                failed.append(name)
                continue
            print(f"\n## {name} ({runs} runs)\n", flush=True)
            for headers, rows in tables if isinstance(tables, list) else [tables]:
                print(render(headers, rows) + "\n", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress(f"done in {time.perf_counter() - started:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
