"""The least a Python create can do: start the interpreter iron runs on, read config.json
through iron's JSON module (the C scanner and encoder), and exec crun. bench's lifecycle
section runs it as `create` (every other call goes to crun) to show how much of iron's
overhead is Python's own.

    python3 -IS bench/python_floor.py SITE_PACKAGES CRUN create --bundle DIR ID
"""
import os
import sys

site, crun, *args = sys.argv[1:]
sys.path.insert(0, site)
from iron.oci.jsonio import dumps, loads  # noqa: E402

bundle = args[args.index("--bundle") + 1]
with open(os.path.join(bundle, "config.json"), "rb") as f:
    dumps(loads(f.read()))
os.execv(crun, [crun, *args])
