"""A minimal CRI v1 (runtime.v1.RuntimeService) client: the few calls the e2e tests need.

No generated code: messages are encoded by hand from the field numbers in the published
k8s.io/cri-api api.proto, and sent as raw bytes through grpcio's generic unary calls.
"""

from __future__ import annotations

import grpc

SERVICE = "/runtime.v1.RuntimeService/"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def msg(*fields: tuple[int, object]) -> bytes:
    """Encode (number, value) pairs: str/bytes/nested message (bytes) as length-delimited,
    int as varint, list as repeated, dict as map<string,string>."""
    out = bytearray()
    for num, value in fields:
        if value is None:
            continue
        if isinstance(value, dict):
            for k, v in value.items():
                out += _len(num, msg((1, k), (2, v)))
        elif isinstance(value, list):
            for item in value:
                out += msg((num, item))
        elif isinstance(value, bool) or isinstance(value, int):
            out += _varint(num << 3) + _varint(int(value))
        else:
            out += _len(num, value.encode() if isinstance(value, str) else value)
    return bytes(out)


def _len(num: int, data: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def parse(data: bytes) -> dict[int, list]:
    """Top-level fields of a message: number -> values (bytes or int)."""
    fields: dict[int, list] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        shift = value = 0
        while True:
            b = data[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value
    while i < len(data):
        key = varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            value = varint()
        elif wire == 2:
            size = varint()
            value, i = data[i:i + size], i + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = data[i:i + size], i + size
        else:
            raise ValueError(f"wire type {wire} not handled")
        fields.setdefault(num, []).append(value)
    return fields


class RuntimeService:
    def __init__(self, socket: str):
        self.channel = grpc.insecure_channel(f"unix://{socket}")

    def call(self, method: str, request: bytes, timeout: float = 60) -> dict[int, list]:
        rpc = self.channel.unary_unary(SERVICE + method, request_serializer=None, response_deserializer=None)
        return parse(rpc(request, timeout=timeout))

    def run_pod(self, config: bytes, handler: str) -> str:
        return self.call("RunPodSandbox", msg((1, config), (2, handler)))[1][0].decode()

    def create_container(self, pod_id: str, config: bytes, pod_config: bytes) -> str:
        return self.call("CreateContainer", msg((1, pod_id), (2, config), (3, pod_config)))[1][0].decode()

    def start_container(self, cid: str) -> None:
        self.call("StartContainer", msg((1, cid)))

    def exec_sync(self, cid: str, cmd: list[str], timeout: int = 20) -> tuple[int, str, str]:
        out = self.call("ExecSync", msg((1, cid), (2, cmd), (3, timeout)), timeout=timeout + 10)
        return (out.get(3, [0])[0], out.get(1, [b""])[0].decode(), out.get(2, [b""])[0].decode())

    def remove_pod(self, pod_id: str) -> None:
        self.call("StopPodSandbox", msg((1, pod_id)))
        self.call("RemovePodSandbox", msg((1, pod_id)))

    def close(self) -> None:
        self.channel.close()


def pod_config(name: str, annotations: dict[str, str]) -> bytes:
    """PodSandboxConfig: metadata{name, uid, namespace}, annotations (7); pod network namespace."""
    return msg((1, msg((1, name), (2, f"{name}-uid"), (3, "default"))), (7, annotations))


def container_config(name: str, image: str, command: list[str], memory: int,
                     annotations: dict[str, str] | None = None) -> bytes:
    """ContainerConfig: metadata (1), image (2), command (3), annotations (10),
    linux (15) {resources (1) {memory_limit_in_bytes (4)}}."""
    return msg((1, msg((1, name))), (2, msg((1, image))), (3, command), (10, annotations or {}),
               (15, msg((1, msg((4, memory))))))
