"""JSON of any nesting depth: orjson first, an iterative parser when the input nests too deep.

Call trees are attacker-controlled: a 32-byte self-recursive contract makes a callTracer answer
nest thousands of levels deep, past orjson's limit (1,024 levels: ~510 frames) and Python's
recursion limit. Such an answer is still read, by a parser with an explicit stack (slow, but
only ever used for those answers); the mappers then cap the tree's depth (``MAX_FRAME_DEPTH``).

>>> loads(b'{"a": [1, 2.5, "x", null, true]}')
{'a': [1, 2.5, 'x', None, True]}
>>> deep = b'[' * 5000 + b']' * 5000
>>> v = loads(deep); n = 0
>>> while v: v = v[0]; n += 1
>>> n
4999
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
_LITERALS = {"true": True, "false": False, "null": None}


def loads(data: bytes | str) -> Any:
    """``orjson.loads``, without its nesting limit. Raises ``orjson.JSONDecodeError`` (a ``ValueError``)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        if "depth" not in str(err) and "recursion" not in str(err):
            raise
    text = data.decode() if isinstance(data, bytes | bytearray | memoryview) else data
    return _parse(text)


def _fail(text: str, pos: int, what: str) -> orjson.JSONDecodeError:
    return orjson.JSONDecodeError(what, text, pos)


def _skip(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]  # matches the empty string


def _key(text: str, pos: int) -> tuple[str, int]:
    m = _STRING.match(text, pos)
    if m is None:
        raise _fail(text, pos, "expected an object key")
    pos = _skip(text, m.end())
    if not text.startswith(":", pos):
        raise _fail(text, pos, "expected ':'")
    return json.loads(m.group()), _skip(text, pos + 1)


def _scalar(text: str, pos: int) -> tuple[Any, int]:
    if text.startswith('"', pos):
        m = _STRING.match(text, pos)
        if m is None:
            raise _fail(text, pos, "malformed string")
        return json.loads(m.group()), m.end()
    m = _NUMBER.match(text, pos)
    if m is not None:
        return (float(m.group()) if m.group(1) or m.group(2) else int(m.group())), m.end()
    for word, value in _LITERALS.items():
        if text.startswith(word, pos):
            return value, pos + len(word)
    raise _fail(text, pos, "expected a value")


def _parse(text: str) -> Any:
    stack: list[Any] = []  # the open containers, outermost first
    keys: list[str] = []  # per open container: the key its next value goes to (lists: unused)
    pos = _skip(text, 0)
    while True:
        # one value starts at pos: open a container, or read a scalar
        if text.startswith("{", pos) or text.startswith("[", pos):
            closer = "}" if text[pos] == "{" else "]"
            pos = _skip(text, pos + 1)
            if text.startswith(closer, pos):
                value: Any = {} if closer == "}" else []
                pos += 1
            else:
                stack.append({} if closer == "}" else [])
                key = ""
                if closer == "}":
                    key, pos = _key(text, pos)
                keys.append(key)
                continue
        else:
            value, pos = _scalar(text, pos)
        # a value is complete: store it, then close every container that ends here
        while True:
            if not stack:
                if _skip(text, pos) != len(text):
                    raise _fail(text, pos, "trailing characters")
                return value
            top = stack[-1]
            if type(top) is dict:
                top[keys[-1]] = value
            else:
                top.append(value)
            pos = _skip(text, pos)
            if text.startswith(",", pos):
                pos = _skip(text, pos + 1)
                if type(top) is dict:
                    keys[-1], pos = _key(text, pos)
                break
            if not text.startswith("}" if type(top) is dict else "]", pos):
                raise _fail(text, pos, "expected ',' or the end of the container")
            pos += 1
            value = stack.pop()
            keys.pop()
