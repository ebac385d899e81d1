"""HL7 v2 framing and parsing: byte stream -> message blocks -> segments, fields, components.

A message starts at an MSH segment; segments end with CR, LF or CRLF; MLLP framing bytes
(0x0B, 0x1C) are treated as segment ends; batch segments FHS/BHS/BTS/FTS end a message
and are otherwise ignored. Separators come from MSH-1/MSH-2 of each message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

_ENDS = b"\r\n\x0b\x1c"
_BOUNDARY = re.compile(rb"(?:\A|(?<=[\r\n\x0b\x1c]))(?:MSH|FHS|BHS|BTS|FTS)")
_SEGMENT_SPLIT = re.compile(r"[\r\n\x0b\x1c]+")
_SEGMENT_NAME = re.compile(r"[A-Z][A-Z0-9]{2}")
BATCH_SEGMENTS = ("FHS", "BHS", "BTS", "FTS")


class Hl7ParseError(ValueError):
    pass


def split_blocks(stream: BinaryIO, chunk_size: int = 1 << 16) -> Iterator[bytes]:
    """Yield the blocks of a stream, each starting at MSH/FHS/BHS/BTS/FTS (the first block may
    be a preamble), with trailing segment terminators and framing bytes removed."""
    buf = b""
    started = False
    while True:
        data = stream.read(chunk_size)
        buf += data
        if not started and (len(buf) >= 3 or not data):
            started = True
            buf = buf.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
        prev = 0
        for match in _BOUNDARY.finditer(buf):
            if match.start() > prev:
                block = buf[prev : match.start()].rstrip(_ENDS)
                if block.strip(_ENDS + b" \t"):
                    yield block
                prev = match.start()
        buf = buf[prev:]
        if not data:
            block = buf.rstrip(_ENDS)
            if block.strip(_ENDS + b" \t"):
                yield block
            return


def decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@dataclass
class Message:
    """A parsed message; seg[n] is field n of a segment for every segment, MSH included."""

    raw: bytes
    segments: list[list[str]]
    component: str
    repetition: str
    escape: str
    subcomponent: str

    @property
    def msh(self) -> list[str]:
        return self.segments[0]

    def type(self) -> tuple[str, str]:
        """(message code, trigger event) from MSH-9, e.g. ("ORU", "R01")."""
        return self.get(self.msh, 9).upper(), self.get(self.msh, 9, 2).upper()

    def raw_field(self, seg: list[str] | None, n: int) -> str:
        if seg is None or n >= len(seg):
            return ""
        value = seg[n]
        return "" if value == '""' else value  # "" is HL7's explicit null

    def get(self, seg: list[str] | None, n: int, comp: int = 1, sub: int = 1) -> str:
        """Unescaped component `comp`, subcomponent `sub`, of the first repetition of field n."""
        value = self.raw_field(seg, n).split(self.repetition, 1)[0]
        parts = value.split(self.component)
        value = parts[comp - 1] if comp <= len(parts) else ""
        subs = value.split(self.subcomponent)
        value = subs[sub - 1] if sub <= len(subs) else ""
        return self.unescape(value).strip() if value != '""' else ""

    def first(self, *candidates: tuple[list[str] | None, int, int]) -> tuple[str, str]:
        """First non-empty (segment, field, component): returns (value, its label like OBR-7)."""
        for seg, n, comp in candidates:
            value = self.get(seg, n, comp)
            if value:
                return value, f"{seg[0]}-{n}" if seg else ""
        return "", ""

    def unescape(self, text: str) -> str:
        esc = self.escape
        if not esc or esc not in text:
            return text
        out: list[str] = []
        pieces = text.split(esc)
        out.append(pieces[0])
        i = 1
        while i < len(pieces):
            if i + 1 >= len(pieces):  # unmatched escape character: keep it literally
                out.append(esc + pieces[i])
                break
            seq = pieces[i]
            simple = {"F": "|", "S": self.component, "T": self.subcomponent}
            simple |= {"R": self.repetition, "E": esc}
            if seq in simple:
                out.append(simple[seq])
            elif seq[:1] == "X" and re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", seq[1:]):
                out.append(bytes.fromhex(seq[1:]).decode("latin-1"))
            elif seq in ("H", "N") or seq[:1] in (".", "C", "M", "Z"):
                pass  # highlighting, formatting and charset escapes: dropped
            else:
                out.append(esc + seq + esc)
            out.append(pieces[i + 1])
            i += 2
        return "".join(out)


def parse_message(raw: bytes) -> Message:
    """Parse one block starting with MSH; Hl7ParseError says what is wrong."""
    text = decode(raw)
    if not text.startswith("MSH") or len(text) < 8:
        raise Hl7ParseError("message does not start with an MSH segment")
    sep = text[3]
    if sep.isalnum() or sep in "\r\n":
        raise Hl7ParseError(f"MSH-1 field separator {sep!r} is not usable")
    lines = [line for line in _SEGMENT_SPLIT.split(text) if line.strip()]
    msh = lines[0].split(sep)
    encoding = msh[1] if len(msh) > 1 else ""
    if len(encoding) < 2 or sep in encoding[:4]:
        raise Hl7ParseError(f"MSH-2 encoding characters {encoding!r} are not usable")
    component, repetition = encoding[0], encoding[1]
    escape = encoding[2] if len(encoding) > 2 else ""
    subcomponent = encoding[3] if len(encoding) > 3 else "&"
    segments = [["MSH", sep, *msh[1:]]]
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split(sep)
        if not _SEGMENT_NAME.fullmatch(fields[0]):
            raise Hl7ParseError(f"segment {number} has no valid name: {line[:20]!r}")
        segments.append(fields)
    return Message(raw, segments, component, repetition, escape, subcomponent)
