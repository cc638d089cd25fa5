"""The least a Python create can do: start the interpreter iron runs on, read config.json
through the C JSON scanner and encoder, and exec crun. bench's lifecycle section runs it as
`create` (every other call goes to crun) to show how much of iron's overhead is Python's own.

    python3 -IS bench/python_floor.py CRUN create --bundle DIR ID
"""
import os
import sys
from _json import encode_basestring_ascii, make_encoder, make_scanner


class Settings:
    strict = True
    object_hook = object_pairs_hook = None
    parse_float = parse_constant = float
    parse_int = int
    memo: dict = {}


crun, *args = sys.argv[1:]
bundle = args[args.index("--bundle") + 1]
with open(os.path.join(bundle, "config.json"), "rb") as f:
    spec, _ = make_scanner(Settings)(f.read().decode(), 0)
"".join(make_encoder(None, None, encode_basestring_ascii, None, ": ", ", ", False, False, False)(spec, 0))
os.execv(crun, [crun, *args])
