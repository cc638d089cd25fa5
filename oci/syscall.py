"""Layer 2, syscalls: iron's seccomp profile merged with the engine's ``linux.seccomp``.

The result denies a syscall wherever either profile denies it, and keeps the engine's rules
and argument filters. iron's profile (P) is an allowlist; the engine's (E) may be anything,
or absent (no filter). Only P's names can run, so the merge walks P's names:

- P only denies it (clone3 → ENOSYS): P's rules.
- P allows it outright: E's rules unchanged, plus allow rules for the argument values
  that reached E's default when that default let the call run (the merged default is
  the stricter of the two and would deny them).
- P allows it under conditions: allow rules for exactly the argument values both profiles
  let run (the AND of both sides' conditions, minus every deny/TRACE/NOTIFY rule's values).

Why not just concatenate the two rule lists: libseccomp does not let the strictest
matching rule win. An unconditional ALLOW swallows conditional ERRNO rules for the same
syscall, and for overlapping conditional rules the shape of its decision tree decides
(seen with ``export_pfc`` on libseccomp 2.5.4). So allow rules iron adds never overlap a
deny rule: they are built from the complement of each deny rule's conditions. Where a
condition pair cannot be written as OCI args (one condition per index), or a syscall
would need more than _MAX_RULES rules, the allow is dropped: the merge may deny more
than both profiles would, never less.

crun also skips a rule whose action equals the default action. An engine deny rule that
overlaps one of the engine's allow rules would vanish that way, so such rule sets are not
copied; only the computed, non-overlapping allow rules remain.
"""

from __future__ import annotations

import itertools
import os

from .context import Context
from .decision import Decision
from .errors import IronError, Refused
from .digest import sha256_hex
from .jsonio import copy_tree, dumps
from .seccomp_names import (ERRNO_ACTIONS, cache_dir, check_shape, load_seccomp_profile, read_cache, scmp_arch,
                            write_cache)

LAYER, FIELD = "syscall", "linux.seccomp"
ALLOW, LOG, NOTIFY = "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"
RUNS = frozenset({ALLOW, LOG})
# The syscall never runs. TRACE and NOTIFY hand the choice to another process.
HARD_DENY = frozenset({"SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD",
                       "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO"})
STRICTNESS = {"SCMP_ACT_KILL_PROCESS": 7, "SCMP_ACT_KILL": 6, "SCMP_ACT_KILL_THREAD": 6,
              "SCMP_ACT_TRAP": 5, "SCMP_ACT_ERRNO": 4, "SCMP_ACT_TRACE": 3, NOTIFY: 2,
              LOG: 1, ALLOW: 0}
# crun annotations that replace the filter (bpf_data), hand decisions to another process
# (receiver, plugins) or may appear later: all refused, except this one, which only makes
# crun stricter about unknown names.
HARMLESS_ANNOTATIONS = frozenset({"run.oci.seccomp_fail_unknown_syscall"})
_EPERM = 1
_U64 = 2**64 - 1
_MAX_RULES = 256
MASKED_EQ = "SCMP_CMP_MASKED_EQ"
_NEGATE = {"SCMP_CMP_EQ": "SCMP_CMP_NE", "SCMP_CMP_NE": "SCMP_CMP_EQ", "SCMP_CMP_LT": "SCMP_CMP_GE",
           "SCMP_CMP_GE": "SCMP_CMP_LT", "SCMP_CMP_LE": "SCMP_CMP_GT", "SCMP_CMP_GT": "SCMP_CMP_LE"}

Cond = tuple[int, str, int, int]   # (index, op, value, valueTwo); valueTwo only for MASKED_EQ


class Rule:
    """One libseccomp rule as crun adds it: an action and conditions ANDed, one per index.
    A plain immutable class: dataclasses costs ~15 ms of import on every create."""

    __slots__ = ("action", "errno", "args", "_key")

    def __init__(self, action: str, errno: int | None = None, args: tuple[Cond, ...] = ()):
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "errno", errno)   # ERRNO and TRACE only; EPERM when omitted, as in crun
        object.__setattr__(self, "args", args)     # sorted by index
        object.__setattr__(self, "_key", (action, errno, args))

    def __setattr__(self, name, value):
        raise AttributeError("Rule is immutable")

    def __eq__(self, other):
        return type(other) is Rule and self._key == other._key

    def __hash__(self):
        return hash(self._key)

    def __repr__(self):
        return f"Rule(action={self.action!r}, errno={self.errno!r}, args={self.args!r})"


def apply(spec: dict, section: dict | None, ctx: Context) -> tuple[dict, list[Decision]]:
    if section is None:
        return spec, []
    _refuse_annotations(spec, ctx)
    path = _profile_path(section, ctx)
    iron = load_seccomp_profile(path, ctx.host.arch)
    if iron["defaultAction"] not in HARD_DENY:
        raise IronError("iron's seccomp profile must be an allowlist", file=str(path),
                        field="defaultAction", expected="a denying action such as SCMP_ACT_ERRNO",
                        got=iron["defaultAction"])
    out = copy_tree(spec)
    linux = out.setdefault("linux", {})
    if not isinstance(linux, dict):
        raise IronError("invalid spec", field="linux", expected="an object", got=linux)
    engine = linux.get("seccomp")
    if engine is not None:
        check_shape(engine, None, prefix="linux.seccomp.", repeated_index_ok=True)
    merged = remembered_merge(iron, engine, scmp_arch(ctx.host.arch))
    linux["seccomp"] = merged
    before = summarize(engine, "engine") if engine is not None else "none (unconfined)"
    reason = ("iron's profile merged with the engine's: a syscall runs only where both allow it"
              if engine is not None else "iron's profile; the engine set no seccomp filter")
    return out, [Decision(LAYER, FIELD, before, summarize(merged, os.path.basename(path)), reason)]


def summarize(profile: dict, label: str) -> str:
    """e.g. ``agent-standard.json: 352 allowed, default ERRNO(1)`` (allowed: has an ALLOW/LOG rule)."""
    allowed = {n for e in profile.get("syscalls", []) if e["action"] in RUNS for n in e["names"]}
    default = profile["defaultAction"].removeprefix("SCMP_ACT_")
    if profile["defaultAction"] in ERRNO_ACTIONS:
        default += f"({profile.get('defaultErrnoRet', _EPERM)})"
    return f"{label}: {len(allowed)} allowed, default {default}"


def _refuse_annotations(spec: dict, ctx: Context) -> None:
    annotations = spec.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise IronError("must be an object", field="annotations", expected="an object", got=annotations)
    keys = set(annotations) | set(ctx.annotations)
    for key in sorted(keys):
        if key.startswith("run.oci.seccomp") and key not in HARMLESS_ANNOTATIONS:
            raise Refused("this annotation would replace or weaken iron's seccomp filter",
                          field=f'annotations["{key}"]', hint="remove it from the container")


def _profile_path(section: dict, ctx: Context) -> str:
    name = section.get("seccomp") if isinstance(section, dict) else None
    if not isinstance(name, str) or not name:
        raise IronError("invalid profile", field="syscall.seccomp",
                        expected="a seccomp profile path", got=name)
    return name if os.path.isabs(name) else os.path.join(str(ctx.profiles_root), name)


# ---- the merge -------------------------------------------------------------------------

def remembered_merge(iron: dict, engine: dict | None, native: str) -> dict:
    """merge(), kept in the seccomp cache under a digest of its whole input. An engine sends
    the same profile for every container, and the merge walks every name (~15 ms)."""
    key = sha256_hex(dumps([iron, engine, native], compact=True, sort_keys=True).encode())
    entry = os.path.join(cache_dir(), f"merged-{key}")
    merged = read_cache(entry, key)
    if merged is None:
        merged = merge(iron, engine, native)
        write_cache(entry, key, merged)
    return merged


def merge(iron: dict, engine: dict | None, native: str) -> dict:
    """A profile denying whatever ``iron`` or ``engine`` denies. ``engine`` None: no filter."""
    p_default = _default(iron)
    e_default = _default(engine) if engine is not None else Rule(ALLOW)
    e_rules = _rules_by_name(engine) if engine is not None else {}
    # Equal strength: iron's errno, so the result does not depend on which engine ran it.
    default = e_default if STRICTNESS[e_default.action] > STRICTNESS[p_default.action] else p_default
    rules = {name: _merge_syscall(p, e_rules.get(name), e_default, default)
             for name, p in _rules_by_name(iron).items()}

    out: dict = {"defaultAction": default.action}
    if default.errno is not None:
        out["defaultErrnoRet"] = default.errno
    p_arches = iron.get("architectures") or [native]
    e_arches = (engine.get("architectures") or [native]) if engine is not None else p_arches
    out["architectures"] = [a for a in p_arches if a in e_arches] or list(e_arches)
    flags = sorted(set(iron.get("flags", [])) | set((engine or {}).get("flags", [])))
    if flags:
        out["flags"] = flags
    if engine is not None and any(r.action == NOTIFY for rs in rules.values() for r in rs):
        for key in ("listenerPath", "listenerMetadata"):
            if key in engine:
                out[key] = engine[key]
    out["syscalls"] = _entries(rules)
    return out


def _merge_syscall(p: set[Rule], e: set[Rule] | None, e_default: Rule, default: Rule) -> set[Rule]:
    """The rules for one syscall that iron's rules ``p`` allow; ``e`` None: the engine has none."""
    if all(r.action in HARD_DENY for r in p):
        return p                       # iron never runs it (clone3 → ENOSYS): keep its errno
    e = e or set()
    p_act = _runs_only(p)
    if p_act and _unconditional(p):
        # iron allows it outright: the engine's rules as they are, plus the engine's default
        # where it let the call run (now the stricter default would catch it).
        kept = _crun_safe(e, default)
        return _reduce_runs(kept | _region(e, e_default, {Rule(p_act)}))
    # iron allows it under conditions: only where both profiles let it run. (iron's default
    # denies, checked in apply, so which deny is passed here does not matter.)
    return _region(e, e_default, _region(p, Rule("SCMP_ACT_ERRNO", _EPERM), {Rule(ALLOW)}))


def _region(rules: set[Rule], default: Rule, within: set[Rule]) -> set[Rule]:
    """Allowing rules that cover the part of ``within`` where ``rules`` (one syscall's) and
    ``default`` let the call run: an allowing rule or the default, and no other rule."""
    allow = {r for r in rules if r.action in RUNS}
    if default.action in RUNS:
        allow.add(Rule(default.action))
    out = _product(within, allow)
    for r in sorted(rules - allow, key=_key):
        out = _product(out, _complement(r))
    return out


def _product(rules: set[Rule], alternatives: set[Rule]) -> set[Rule]:
    """Every pair ANDed. Past _MAX_RULES the syscall is denied rather than the filter bloated."""
    pairs = {m for a in rules for b in alternatives for m in _meet(a, b)}
    if len(pairs) > 4 * _MAX_RULES:
        return set()
    out = _reduce(pairs)
    return out if len(out) <= _MAX_RULES else set()


def _complement(r: Rule) -> set[Rule]:
    """Single-condition ALLOW rules that together match exactly where ``r`` does not."""
    out: set[Rule] = set()
    for index, op, value, value_two in r.args:
        if op == MASKED_EQ:
            if value_two & ~value:
                return {Rule(ALLOW)}   # can never match
            out |= {Rule(ALLOW, None, ((index, MASKED_EQ, 1 << b, (1 << b) & ~value_two),))
                    for b in range(64) if value >> b & 1}
        else:
            out.add(Rule(ALLOW, None, ((index, _NEGATE[op], value, 0),)))
    return out


def _crun_safe(rules: set[Rule], default: Rule) -> set[Rule]:
    """Empty (deny) if crun would skip a deny rule here (its action is the default) that
    overlaps a rule letting the call run."""
    skipped = [r for r in rules if (r.action, r.errno) == (default.action, default.errno)]
    running = [r for r in rules if r.action not in HARD_DENY]
    if any(not _rules_disjoint(s, r) for s in skipped for r in running):
        return set()
    return rules


def _runs_only(rules: set[Rule]) -> str | None:
    actions = {r.action for r in rules}
    return actions.pop() if len(actions) == 1 and actions <= RUNS else None


def _unconditional(rules: set[Rule]) -> bool:
    return any(not r.args for r in rules)


def _meet(a: Rule, b: Rule) -> list[Rule]:
    """Rules matching exactly where both match (none when that is empty), or none at all when
    a pair of conditions cannot be written down: dropping an allow only ever denies more."""
    per_index: dict[int, list[Cond]] = {c[0]: [c] for c in a.args}
    for c in b.args:
        if c[0] in per_index:
            both = _intersect(per_index[c[0]][0], c)
            if not both:
                return []
            per_index[c[0]] = both
        else:
            per_index[c[0]] = [c]
    action = max(a.action, b.action, key=STRICTNESS.__getitem__)
    return [Rule(action, None, tuple(sorted(conds)))
            for conds in itertools.product(*per_index.values())]


# ---- one argument's conditions --------------------------------------------------------

def holds(cond: Cond, value: int) -> bool:
    _, op, v, w = cond
    return {"SCMP_CMP_NE": value != v, "SCMP_CMP_LT": value < v, "SCMP_CMP_LE": value <= v,
            "SCMP_CMP_EQ": value == v, "SCMP_CMP_GE": value >= v, "SCMP_CMP_GT": value > v,
            MASKED_EQ: value & v == w}[op]


def _intervals(c: Cond) -> list[tuple[int, int]] | None:
    """The values ``c`` matches as closed intervals; None for a mask that is no aligned block."""
    _, op, v, w = c
    spans = {"SCMP_CMP_EQ": [(v, v)], "SCMP_CMP_NE": [(0, v - 1), (v + 1, _U64)],
             "SCMP_CMP_LT": [(0, v - 1)], "SCMP_CMP_LE": [(0, v)],
             "SCMP_CMP_GT": [(v + 1, _U64)], "SCMP_CMP_GE": [(v, _U64)]}.get(op)
    if spans is None:                  # MASKED_EQ: an interval when the mask is high bits only
        low = _U64 ^ v
        if low & (low + 1) or w & low:
            return None
        spans = [(w, w | low)]
    return [(lo, hi) for lo, hi in spans if 0 <= lo <= hi <= _U64]


def _cond_implies(c1: Cond, c2: Cond) -> bool:
    """Every value matching ``c1`` matches ``c2`` (same index assumed)."""
    if c1 == c2:
        return True
    i1, i2 = _intervals(c1), _intervals(c2)
    if i1 is not None and i2 is not None:
        return all(any(l2 <= lo and hi <= h2 for l2, h2 in i2) for lo, hi in i1)
    if c1[1] == "SCMP_CMP_EQ":
        return holds(c2, c1[2])
    if c1[1] == c2[1] == MASKED_EQ:    # c2's mask within c1's, and c1's datum agrees on it
        return c2[2] & ~c1[2] == 0 and c1[3] & c2[2] == c2[3]
    return False


def _cond_disjoint(c1: Cond, c2: Cond) -> bool:
    """No value matches both (False when unsure)."""
    i1, i2 = _intervals(c1), _intervals(c2)
    if i1 is not None and i2 is not None:
        return not _overlap(i1, i2)
    for x, y in ((c1, c2), (c2, c1)):
        if x[1] == "SCMP_CMP_EQ":
            return not holds(y, x[2])
    if c1[1] == c2[1] == MASKED_EQ:
        return bool((c1[3] ^ c2[3]) & c1[2] & c2[2])
    return False


def _intersect(c1: Cond, c2: Cond) -> list[Cond] | None:
    """Conditions (ORed) matching where both match: [] when nothing does, None when unsure."""
    if _cond_implies(c1, c2):
        return [c1]
    if _cond_implies(c2, c1):
        return [c2]
    if _cond_disjoint(c1, c2):
        return []
    i1, i2 = _intervals(c1), _intervals(c2)
    if i1 is None or i2 is None:
        return None
    return [c for lo, hi in _overlap(i1, i2) for c in _span_conds(c1[0], lo, hi)]


def _overlap(i1: list[tuple[int, int]], i2: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(max(a, c), min(b, d)) for a, b in i1 for c, d in i2 if max(a, c) <= min(b, d)]


def _span_conds(index: int, lo: int, hi: int) -> list[Cond]:
    """[lo, hi] as one comparison, or as aligned power-of-two blocks (MASKED_EQ) between bounds."""
    if lo == hi:
        return [(index, "SCMP_CMP_EQ", lo, 0)]
    if lo == 0:
        return [(index, "SCMP_CMP_LE", hi, 0)]
    if hi == _U64:
        return [(index, "SCMP_CMP_GE", lo, 0)]
    out = []
    while lo <= hi:
        size = lo & -lo
        while size > hi - lo + 1:
            size >>= 1
        out.append((index, MASKED_EQ, _U64 ^ (size - 1), lo))
        lo += size
    return out


def _rules_disjoint(a: Rule, b: Rule) -> bool:
    mine = {c[0]: c for c in a.args}
    return any(c[0] in mine and _cond_disjoint(mine[c[0]], c) for c in b.args)


def _rule_implies(r: Rule, o: Rule) -> bool:
    """``r`` matches only where ``o`` matches, with the same action."""
    if (r.action, r.errno) != (o.action, o.errno):
        return False
    return all(any(cr[0] == co[0] and _cond_implies(cr, co) for cr in r.args) for co in o.args)


def _reduce(rules: set[Rule]) -> set[Rule]:
    """Drop rules another rule with the same action already covers, so merging again is a no-op."""
    return {r for r in rules if not any(
        o != r and _rule_implies(r, o) and (not _rule_implies(o, r) or _key(o) < _key(r))
        for o in rules)}


def _reduce_runs(rules: set[Rule]) -> set[Rule]:
    """``_reduce`` on the rules that let the call run; deny rules stay exactly as written."""
    running = {r for r in rules if r.action in RUNS}
    return (rules - running) | _reduce(running)


# ---- JSON ⇄ rules ----------------------------------------------------------------------

def _default(profile: dict) -> Rule:
    action = profile["defaultAction"]
    return Rule(action, profile.get("defaultErrnoRet", _EPERM) if action in ERRNO_ACTIONS else None)


def _rules_by_name(profile: dict) -> dict[str, set[Rule]]:
    out: dict[str, set[Rule]] = {}
    for entry in profile.get("syscalls", []):
        action = entry["action"]
        errno = entry.get("errnoRet", _EPERM) if action in ERRNO_ACTIONS else None
        for args in _split(entry.get("args", [])):
            for name in entry["names"]:
                out.setdefault(name, set()).add(Rule(action, errno, args))
    return out


def _split(args: list[dict]) -> list[tuple[Cond, ...]]:
    """crun's reading of an entry's args: ANDed, but if an index repeats, one rule per arg (OR)."""
    conds = [(a["index"], a["op"], a["value"],
              a.get("valueTwo", 0) if a["op"] == "SCMP_CMP_MASKED_EQ" else 0) for a in args]
    if len({c[0] for c in conds}) == len(conds):
        return [tuple(sorted(conds))]
    return [(c,) for c in conds]


def _key(r: Rule) -> tuple:
    return (bool(r.args), r.action, -1 if r.errno is None else r.errno, r.args)


def _entries(rules: dict[str, set[Rule]]) -> list[dict]:
    """One entry per distinct rule, names sorted: the output is the same for the same input."""
    names: dict[Rule, list[str]] = {}
    for name, rs in rules.items():
        for r in rs:
            names.setdefault(r, []).append(name)
    entries = []
    for r in sorted(names, key=_key):
        entry: dict = {"names": sorted(names[r]), "action": r.action}
        if r.errno is not None:
            entry["errnoRet"] = r.errno
        if r.args:
            entry["args"] = [_arg_json(c) for c in r.args]
        entries.append(entry)
    return entries


def _arg_json(c: Cond) -> dict:
    index, op, value, value_two = c
    arg = {"index": index, "value": value}
    if value_two:
        arg["valueTwo"] = value_two
    arg["op"] = op
    return arg
