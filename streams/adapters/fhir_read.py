"""FHIR R4 input: documents from a stream, Bundle scopes, references and small accessors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson

Resource = dict[str, Any]


def read_documents(stream: BinaryIO) -> Iterator[tuple[bytes, Any]]:
    """Yield (original bytes, parsed JSON or the JSONDecodeError) for each document.

    Accepts one JSON document (a Bundle or a resource, pretty-printed or not) or NDJSON.
    A first line that is a whole JSON value means NDJSON; otherwise the stream is read as
    one document, and if that fails and it does not open with a lone brace, line by line.
    """
    first = b""
    for line in stream:
        if line.strip():
            first = line
            break
    if not first:
        return
    try:
        doc = orjson.loads(first)
    except orjson.JSONDecodeError:
        whole = first + stream.read()
        try:
            yield whole.strip(), orjson.loads(whole)
        except orjson.JSONDecodeError as exc:
            if first.strip() in (b"{", b"["):
                yield whole.strip(), exc
            else:
                yield from _lines(whole.splitlines())
        return
    yield first.rstrip(b"\r\n"), doc
    yield from _lines(stream)


def _lines(lines: Any) -> Iterator[tuple[bytes, Any]]:
    for line in lines:
        body = line.rstrip(b"\r\n")
        if body.strip():
            try:
                yield body, orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                yield body, exc


def obj(value: Any) -> Resource:
    """value if it is a JSON object, else an empty one (tolerates malformed optional parts)."""
    return value if isinstance(value, dict) else {}


def first_obj(value: Any) -> Resource:
    """The first element of a JSON array (or the object itself), as an object."""
    if isinstance(value, list):
        return obj(value[0]) if value else {}
    return obj(value)


def text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def codings(concept: Any) -> list[tuple[str | None, str | None, str | None]]:
    """(system, code, display) of each coding of a CodeableConcept, then (None, None, text)."""
    cc = obj(concept)
    out = [
        (text(c.get("system")), text(c.get("code")), text(c.get("display")))
        for c in cc.get("coding") or []
        if isinstance(c, dict)
    ]
    return [*out, (None, None, text(cc.get("text")))]


def concept_label(concept: Any) -> str | None:
    """Human label of a CodeableConcept: text, else the first display, else the first code."""
    rows = codings(concept)
    return (
        rows[-1][2]
        or next((d for _, _, d in rows if d), None)
        or next((c for _, c, _ in rows if c), None)
    )


def reference_id(ref: Any) -> str | None:
    """Id part of a Reference: "Patient/x" -> x, "urn:uuid:x" -> x, ".../Patient/x/_history/2" -> x,
    a conditional "Patient?identifier=sys|v" -> v."""
    value = text(obj(ref).get("reference"))
    if value is None:
        return None
    if value.startswith(("urn:uuid:", "urn:oid:")):
        return value.split(":", 2)[2] or None
    if "?" in value:
        return value.rsplit("|", 1)[-1].rsplit("=", 1)[-1] or None
    path = value.split("/_history/", 1)[0].rstrip("/")
    return path.rsplit("/", 1)[-1] or None


@dataclass
class Scope:
    """The resources one Bundle holds: references resolve within it (contained: per resource)."""

    by_key: dict[str, Resource] = field(default_factory=dict)
    parents: dict[int, Resource] = field(default_factory=dict)

    @classmethod
    def of_bundle(cls, bundle: Resource) -> Scope:
        scope = cls()
        for entry in bundle.get("entry") or []:
            res = obj(obj(entry).get("resource"))
            if not res:
                continue
            if text(obj(entry).get("fullUrl")):
                scope.by_key[entry["fullUrl"].strip()] = res
            if text(res.get("resourceType")) and text(res.get("id")):
                scope.by_key[f"{res['resourceType']}/{res['id']}"] = res
        for res in list(scope.by_key.values()):
            rtype = res.get("resourceType")
            links = res.get("result") if rtype == "DiagnosticReport" else res.get("hasMember")
            if rtype in ("DiagnosticReport", "Observation") and isinstance(links, list):
                for link in links:
                    target = scope.resolve(link)
                    if target is not None and target is not res:
                        scope.parents.setdefault(id(target), res)
        return scope

    def resolve(self, ref: Any, container: Resource | None = None) -> Resource | None:
        value = text(obj(ref).get("reference"))
        if value is None:
            return None
        if value.startswith("#"):
            contained = (container or {}).get("contained") or []
            return next((obj(c) for c in contained if obj(c).get("id") == value[1:]), None)
        if value in self.by_key:
            return self.by_key[value]
        tail = "/".join(value.split("/_history/", 1)[0].rstrip("/").split("/")[-2:])
        return self.by_key.get(tail)

    def lineage(self, res: Resource) -> list[Resource]:
        """res, then the panel Observation / DiagnosticReport that lists it, and so on up."""
        chain = [res]
        while len(chain) < 6 and id(chain[-1]) in self.parents:
            parent = self.parents[id(chain[-1])]
            if any(parent is seen for seen in chain):
                break
            chain.append(parent)
        return chain
