"""How deep a msgpack payload nests, without decoding it.

msgspec decodes nested containers recursively on the C stack, so a deep enough payload
raises RecursionError at a depth that depends on the caller's stack: a worker and a replay
could disagree about one entry. A fixed limit, far below Python's, decides alike
everywhere; no valid event nests more than a few levels.
"""

from __future__ import annotations

from typing import Final

MAX_NESTING: Final = 256
# Container headers: fixmap, fixarray, array 16/32, map 16/32.
_NOT_CONTAINER_HEADERS: Final = bytes(
    b for b in range(256) if not (0x80 <= b <= 0x9F or 0xDC <= b <= 0xDF)
)
# Bytes after a header byte that are not child items: (fixed size, size of a length prefix).
_SKIP: Final = {
    **{b: (0, 0) for b in (0xC0, 0xC2, 0xC3)},
    0xC4: (0, 1), 0xC5: (0, 2), 0xC6: (0, 4),  # bin
    0xC7: (1, 1), 0xC8: (1, 2), 0xC9: (1, 4),  # ext: type byte + data
    0xCA: (4, 0), 0xCB: (8, 0),  # float
    0xCC: (1, 0), 0xCD: (2, 0), 0xCE: (4, 0), 0xCF: (8, 0),  # uint
    0xD0: (1, 0), 0xD1: (2, 0), 0xD2: (4, 0), 0xD3: (8, 0),  # int
    0xD4: (2, 0), 0xD5: (3, 0), 0xD6: (5, 0), 0xD7: (9, 0), 0xD8: (17, 0),  # fixext
    0xD9: (0, 1), 0xDA: (0, 2), 0xDB: (0, 4),  # str
}  # fmt: skip


def nests_too_deep(payload: bytes) -> bool:
    """Whether msgpack ``payload`` nests containers deeper than MAX_NESTING.

    Each level needs a container header byte, so a payload with few such bytes is shallow
    (one C-speed pass); only the rare rest is walked. Malformed data is left to msgspec.
    """
    if len(payload.translate(None, _NOT_CONTAINER_HEADERS)) <= MAX_NESTING:
        return False
    try:
        return _depth_exceeds(payload, MAX_NESTING)
    except IndexError:  # truncated: msgspec reports it
        return False


def _depth_exceeds(data: bytes, limit: int) -> bool:
    pending = [1]  # items still to read in each open container, the root value first
    i, end = 0, len(data)
    while pending and i < end:
        pending[-1] -= 1
        head = data[i]
        i += 1
        children = 0
        if 0x80 <= head <= 0x9F:
            children = head & 0x0F if head >= 0x90 else 2 * (head & 0x0F)
        elif 0xDC <= head <= 0xDF:
            width = 2 if head in (0xDC, 0xDE) else 4
            children = int.from_bytes(data[i : i + width], "big") * (2 if head >= 0xDE else 1)
            i += width
        elif 0xA0 <= head <= 0xBF:
            i += head & 0x1F  # fixstr
            head = 0
        elif head in _SKIP:
            fixed, prefix = _SKIP[head]
            i += fixed + prefix + int.from_bytes(data[i : i + prefix], "big")
            head = 0
        else:
            head = 0  # fixint, or an invalid byte msgspec rejects
        if head:
            if len(pending) >= limit + 1:
                return True
            if children:
                pending.append(children)
        while pending and pending[-1] == 0:
            pending.pop()
    return False
