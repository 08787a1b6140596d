"""Parse the text dumps of CloudEvents receivers into events (one per request or response).

Two dumps are what people keep when they point KServe's (or Seldon's) payload logger at a
debugging sink:

* knative ``event_display`` ("message dumper"): one block per event, opened by a
  ``☁️  cloudevents.Event`` banner, with ``Context Attributes,``, ``Extensions,`` and ``Data,``
  sections;
* an HTTP echo server (Node ``util.inspect`` style): one ``{ path: '/', headers: {...},
  body: '...' }`` block per POST, the CloudEvent attributes in ``ce-*`` headers (old KFServing
  builds JSON-quote extension values: ``'ce-namespace': '"default"'``).

Each event becomes a dict with the line where its block starts, the block's text, its
attributes (``id``, ``type``, ``time``, ``requestid``, ``inferenceservicename`` ...) and the
body text. Interpreting the bodies is left to SQL (:mod:`._payload`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa

__all__ = ["EVENT_COLUMNS", "parse_event_display", "parse_http_echo", "events_table",
           "is_event_display", "is_http_echo"]

#: Columns of the events table every KServe / Seldon source is brought to.
EVENT_COLUMNS = ("_row", "_raw", "_perr", "_pcol", "ce_id", "ce_type", "ce_time", "ce_requestid",
                 "isvc", "namespace", "component", "endpoint", "modelid", "content_type",
                 "body", "_timed")

_BANNER = re.compile(r"^\W*cloudevents\.Event\s*$")
_SECTION = re.compile(r"^(Context Attributes|Extensions|Data(?: \(binary\))?),\s*$")
_SEPARATOR = re.compile(r"^-{5,}\s*$")
_QUOTED = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_HEADER = re.compile(rf"(?:^|[\s{{,])({_QUOTED}|[A-Za-z][\w.-]*)\s*:\s*({_QUOTED})")
_BODY = re.compile(r"(?:^|[\s{,])['\"]?body['\"]?\s*:\s*")


def is_event_display(text: str) -> bool:
    """Whether ``text`` (the head of a file) is a knative event_display dump."""
    lines = text.splitlines()
    return any(_BANNER.match(line) for line in lines[:5]) and "Context Attributes," in text


def is_http_echo(text: str) -> bool:
    """Whether ``text`` is an HTTP echo dump of CloudEvents in binary mode (``ce-*`` headers)."""
    return bool(re.search(r"['\"]ce-type['\"]\s*:", text)) and bool(
        re.search(r"['\"]ce-id['\"]\s*:", text)
    ) and not text.lstrip().startswith(("[", '{"'))


def parse_event_display(text: str) -> list[dict[str, Any]]:
    """Events of a knative ``event_display`` dump.

    Examples
    --------
    >>> dump = ("☁️  cloudevents.Event\\nValidation: valid\\nContext Attributes,\\n"
    ...         "  type: org.kubeflow.serving.inference.request\\n  id: abc\\n"
    ...         "Extensions,\\n  endpoint:\\n  inferenceservicename: iris\\nData,\\n"
    ...         '  {"instances": [[1, 2]]}\\n')
    >>> event = parse_event_display(dump)[0]
    >>> event["line"], event["attributes"]["id"], event["attributes"]["endpoint"], event["body"]
    (1, 'abc', '', '{"instances": [[1, 2]]}')
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _BANNER.match(line)]
    events = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        block = lines[start:end]
        attributes: dict[str, str] = {}
        section, data = None, []
        for line in block[1:]:
            header = _SECTION.match(line)
            if header:
                section = header.group(1)
                continue
            if section is None:
                continue
            if section.startswith("Data"):
                data.append(line[2:] if line.startswith("  ") else line)
            elif line.strip():
                key, _, value = line.strip().partition(":")
                attributes[key.strip()] = value.strip()
        body = "\n".join(data).strip()
        events.append({
            "line": start + 1,
            "raw": "\n".join(block).rstrip(),
            "attributes": attributes,
            "body": body or None,
        })
    return events


def parse_http_echo(text: str) -> list[dict[str, Any]]:
    """Events of an HTTP echo dump (one block per POST, attributes in ``ce-*`` headers).

    Examples
    --------
    >>> dump = ("{ path: '/',\\n  headers: \\n   { 'ce-id': 'abc',\\n"
    ...         "     'ce-inferenceservice': '\\"iris\\"',\\n"
    ...         "     'ce-type': 'org.kubeflow.serving.inference.response' },\\n"
    ...         "  body: '{\\"predictions\\": [1]}' }\\n")
    >>> event = parse_http_echo(dump)[0]
    >>> event["attributes"]["inferenceservicename"], event["body"]
    ('iris', '{"predictions": [1]}')
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("{")]
    bounds = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        for i in range(start + 1, end):
            if _SEPARATOR.match(lines[i]):
                end = i
                break
        bounds.append((start, end))
    events = []
    for start, end in bounds:
        block = "\n".join(lines[start:end]).rstrip()
        headers = {}
        for key, value in _HEADER.findall(block):
            key = _unquote(key) if key[0] in "'\"" else key
            headers[key.lower()] = _unquote(value)
        if "ce-id" not in headers and "ce-type" not in headers:
            continue
        attributes = {}
        for key, value in headers.items():
            if key.startswith("ce-"):
                name = key[3:]
                if value.startswith('"') and value.endswith('"') and len(value) >= 2:
                    try:
                        value = json.loads(value)
                    except ValueError:
                        pass
                attributes[name] = value
        if "inferenceservice" in attributes:
            attributes.setdefault("inferenceservicename", attributes.pop("inferenceservice"))
        if "content-type" in headers:
            attributes.setdefault("datacontenttype", headers["content-type"])
        events.append({
            "line": start + 1,
            "raw": block,
            "attributes": attributes,
            "body": _body(block),
        })
    return events


def _unquote(text: str) -> str:
    """The value of a single- or double-quoted JavaScript string literal."""
    inner = text[1:-1]
    escapes = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), inner)


def _body(block: str) -> str | None:
    match = _BODY.search(block)
    if match is None:
        return None
    rest = block[match.end():]
    quoted = re.match(_QUOTED, rest)
    if quoted:
        return _unquote(quoted.group(0))
    if rest.startswith(("{", "[")):
        # a body printed as an object: JSON when it was logged as JSON text
        depth, quote = 0, None
        for i, char in enumerate(rest):
            if quote:
                if char == "\\":
                    continue
                if char == quote:
                    quote = None
            elif char in "'\"":
                quote = char
            elif char in "{[":
                depth += 1
            elif char in "}]":
                depth -= 1
                if depth == 0:
                    return rest[: i + 1]
    return None


_UNDECODED = re.compile("[\udc80-\udcff]")


def _text(value: str | None) -> str | None:
    """A value for Arrow: bytes that were not UTF-8 (kept as surrogates) become U+FFFD."""
    if value is None or not _UNDECODED.search(value):
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def events_table(events: list[dict[str, Any]]) -> pa.Table:
    """The events as an Arrow table with :data:`EVENT_COLUMNS`.

    A dump decoded with ``errors="surrogateescape"`` marks bytes that are not UTF-8; an event
    holding any is rejected ("not valid UTF-8 text") rather than loaded with altered values.
    """
    rows: dict[str, list] = {c: [] for c in EVENT_COLUMNS}
    for event in events:
        undecodable = bool(_UNDECODED.search(event["raw"]))
        event = {**event, "raw": _text(event["raw"]), "body": _text(event["body"]),
                 "attributes": {k: _text(v) for k, v in event["attributes"].items()}}
        a = event["attributes"]
        rows["_row"].append(event["line"])
        rows["_raw"].append(event["raw"])
        rows["_perr"].append("not valid UTF-8 text" if undecodable else None)
        rows["_pcol"].append(None)
        rows["ce_id"].append(a.get("id"))
        rows["ce_type"].append(a.get("type"))
        rows["ce_time"].append(a.get("time"))
        rows["ce_requestid"].append(a.get("requestid"))
        rows["isvc"].append(a.get("inferenceservicename") or None)
        rows["namespace"].append(a.get("namespace") or None)
        rows["component"].append(a.get("component") or None)
        rows["endpoint"].append(a.get("endpoint") or None)
        rows["modelid"].append(a.get("modelid") or None)
        rows["content_type"].append(a.get("datacontenttype"))
        rows["body"].append(event["body"])
        rows["_timed"].append(True)
    types = {"_row": pa.int64(), "_timed": pa.bool_()}
    return pa.table({c: pa.array(v, type=types.get(c, pa.string())) for c, v in rows.items()})
