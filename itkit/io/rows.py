"""Reading raw rows (plain dicts) from files, stdin and the Hugging Face Hub.

Containers: JSON array, JSONL, Parquet, CSV, gzip-compressed JSON/JSONL,
stdin as ``-`` and ``hf://org/name[/config][:split]``. A UTF-8 byte-order mark at
the start of a JSON, JSONL or CSV file is dropped. JSONL, Parquet and CSV
stream; a JSON array is parsed whole (its errors carry line and column).

Each row comes with its :class:`Location`. A JSONL line that is not valid JSON
(or an object with a duplicate key) is yielded as a :class:`RawRow` with
``error`` set, so a caller that skips bad records can go on; every other
container problem raises at once. An empty input (no bytes, blank lines, ``[]``,
a CSV header alone, a Parquet file without rows) is an empty dataset: no rows.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import orjson

from itkit.errors import InputError, Location, ParseError, SourceError, UsageError
from itkit.io.json_keys import DUPLICATE_KEY_REASON, duplicate_key, duplicates_in_array, may_have_duplicates

CONTAINERS = ("jsonl", "json", "parquet", "csv")
NESTED_CSV_COLUMNS = ("conversations", "messages", "history", "instances", "metadata")
"""CSV cells of these columns hold JSON text and are decoded (and encoded on write); ``metadata`` is itkit's
(provenance, scores...), so that it survives a CSV between two commands."""
EMPTY_MEANS_ABSENT_CSV_COLUMNS = (*NESTED_CSV_COLUMNS, "id", "is_classification", "system")
"""CSV cannot tell an absent field from an empty one; in these columns an empty cell is an absent field."""
HF_PREFIX = "hf://"
BOM = b"\xef\xbb\xbf"
HUB_ENDPOINT = "https://huggingface.co"
"""The Hub, unless HF_ENDPOINT names another."""
HUB_CONNECT_TIMEOUT = 3.0
"""Seconds the reachability check of the Hub waits for a connection (instead of datasets' five retries)."""


@dataclass
class RawRow:
    data: object
    location: Location
    raw: str | None = None  # the verbatim text, when the container has one (JSONL line)
    error: InputError | None = None


def is_hub(source: str) -> bool:
    return source.startswith(HF_PREFIX)


def display_name(source: str) -> str:
    return "<stdin>" if source == "-" else source


def container_of(path: str, override: str | None = None) -> tuple[str | None, bool]:
    """(container, gzipped) from a file name; container None means: sniff the content."""
    name = path.lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    if override:
        return override, gz
    for ext, container in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "json"), (".parquet", "parquet"), (".csv", "csv")):
        if name.endswith(ext):
            return container, gz
    return None, gz


def iter_rows(source: str) -> Iterator[RawRow]:
    """Every row of ``source`` in order."""
    if is_hub(source):
        yield from _iter_hub(source)
        return
    name = display_name(source)
    if source == "-":
        yield from _iter_json_stream(sys.stdin.buffer, name)
        return
    path = Path(source)
    if path.is_dir():
        raise SourceError(f"{name}: is a directory; give a file (or hf://{name} for a dataset folder)")
    if not path.exists():
        raise SourceError(f"{name}: no such file")
    container, gz = container_of(source)
    if container == "parquet":
        if gz:
            raise SourceError(f"{name}: gzip-compressed Parquet is not supported; Parquet compresses itself")
        yield from _iter_parquet(path, name)
        return
    try:
        opened = gzip.open(path, "rb") if gz else open(path, "rb")
    except OSError as exc:
        raise SourceError(f"{name}: cannot open: {exc.strerror or exc}") from None
    with opened as fh:
        try:
            if container == "csv":
                yield from _iter_csv(fh, name)
            else:
                yield from _iter_json_stream(fh, name, container)
        except (gzip.BadGzipFile, EOFError) as exc:
            raise ParseError(f"is not a valid gzip file ({exc})", Location(name)) from None


# ---------------------------------------------------------------- JSON / JSONL


def _strip_bom(head: bytes) -> bytes:
    """Drop a UTF-8 byte-order mark (Windows editors, Excel) from the first bytes of a text file."""
    return head[len(BOM):] if head.startswith(BOM) else head


def _utf8_error(data: bytes, name: str, line: int | None) -> ParseError | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if line is None:
            line = data.count(b"\n", 0, exc.start) + 1
            column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        else:
            column = exc.start + 1
        return ParseError(
            f"is not valid UTF-8 (byte 0x{data[exc.start]:02x}); convert the file to UTF-8",
            Location(name, line=line, column=column),
        )
    return None


def _json_error(exc: orjson.JSONDecodeError, data: bytes, name: str, line: int | None) -> ParseError:
    bad_utf8 = _utf8_error(data, name, line)
    if bad_utf8 is not None:
        return bad_utf8
    message = exc.msg.split(":", 1)[0] if exc.msg else "invalid JSON"
    if line is None:
        return ParseError(f"invalid JSON: {message}", Location(name, line=exc.lineno, column=exc.colno))
    column = exc.colno
    if exc.lineno != 1:  # past the line's end (a truncated record): point just after its last character
        column = len(data.rstrip(b"\r\n").decode("utf-8")) + 1
    return ParseError(f"invalid JSON: {message}", Location(name, line=line, column=column))


def _iter_json_stream(fh: IO[bytes], name: str, container: str | None = None) -> Iterator[RawRow]:
    """JSONL line by line, or a whole JSON array; sniffed when ``container`` is None."""
    first = _strip_bom(fh.readline())
    line_no = 1
    while first and not first.strip():
        first = fh.readline()
        line_no += 1
    if not first:  # an empty dataset (a step that kept nothing, an empty pipe): 0 records
        return
    stripped = first.lstrip()
    if stripped.startswith(b"[") or (container == "json" and not stripped.startswith(b"{")):
        yield from _iter_json_document(first + fh.read(), name, line_no)
        return
    if not stripped.startswith(b"{") and container is None:
        # not JSON-looking at all: report it as invalid JSON at its first line
        yield from _iter_json_document(first + fh.read(), name, line_no)
        return
    # JSONL, or a single object where an array was expected
    try:
        orjson.loads(first)
        if container == "json":
            second = fh.readline()
            while second and not second.strip():
                second = fh.readline()
            if not second:  # a .json file holding one object
                raise ParseError(
                    "holds a single JSON object where an array of records (or JSONL, one record per line) was expected",
                    Location(name, line=line_no),
                )
            fh = io.BytesIO(first + second + fh.read())  # JSONL content in a .json file
            first = fh.readline()
    except orjson.JSONDecodeError:
        rest = fh.read()
        try:
            whole = orjson.loads(first + rest)
        except orjson.JSONDecodeError:
            pass
        else:
            if isinstance(whole, dict):
                raise ParseError(
                    "holds a single JSON object where an array of records (or JSONL, one record per line) was expected",
                    Location(name, line=line_no),
                ) from None
        fh = io.BytesIO(first + rest)
        first = fh.readline()
    yield from _iter_jsonl_lines(first, fh, name, line_no)


def _iter_jsonl_lines(first: bytes, fh: IO[bytes], name: str, line_no: int) -> Iterator[RawRow]:
    line = first
    while line:
        if line.strip():
            yield jsonl_row(line, name, line_no)
        line = fh.readline()
        line_no += 1


def jsonl_row(line: bytes, name: str, line_no: int) -> RawRow:
    """The row of one non-blank JSONL line: its data, or (invalid JSON, a duplicate key) the located error."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        err = _json_error(exc, line, name, line_no)
        return RawRow(None, err.location, line.decode("utf-8", "replace").rstrip("\r\n"), err)
    if may_have_duplicates(line, data) and (key := duplicate_key(line, data)) is not None:
        err = ParseError(DUPLICATE_KEY_REASON.format(key=key), Location(name, line=line_no))
        return RawRow(None, err.location, line.decode("utf-8").rstrip("\r\n"), err)
    return RawRow(data, Location(name, line=line_no), None)


def jsonl_lines(source: str) -> Iterator[tuple[int, bytes]] | None:
    """The non-blank lines of a JSONL file with their line numbers, exactly those :func:`iter_rows` reads
    as JSONL rows (the first without its byte-order mark); turn each into its row with :func:`jsonl_row`.

    For readers that look at the raw lines first (a fast path). None when ``source`` is not read as
    JSONL from a regular file: stdin, a pipe, the Hub, a JSON array, CSV, Parquet, a first line that is not
    a JSON object (the caller reads it with :func:`iter_rows`, which reports what is wrong). The file is
    opened at once and closed when the iterator is exhausted or closed.
    """
    if source == "-" or is_hub(source) or not os.path.isfile(source):
        return None
    container, gz = container_of(source)
    if container not in (None, "jsonl"):
        return None
    try:
        fh = gzip.open(source, "rb") if gz else open(source, "rb", buffering=1 << 20)
    except OSError:
        return None
    try:
        first = _strip_bom(fh.readline())
        line_no = 1
        while first and not first.strip():
            first = fh.readline()
            line_no += 1
        orjson.loads(first)  # what iter_rows checks before it reads the file as JSONL
        if not first.lstrip().startswith(b"{"):
            raise ValueError
    except (OSError, EOFError, ValueError):  # gzip.BadGzipFile and orjson's errors are ValueErrors
        fh.close()
        return None
    return _lines(fh, first, line_no, display_name(source))


def _lines(fh: IO[bytes], first: bytes, line_no: int, name: str) -> Iterator[tuple[int, bytes]]:
    with fh:
        yield line_no, first
        try:
            for line in fh:
                line_no += 1
                if line.strip():
                    yield line_no, line
        except (gzip.BadGzipFile, EOFError) as exc:
            raise ParseError(f"is not a valid gzip file ({exc})", Location(name)) from None


def _iter_json_document(data: bytes, name: str, start_line: int) -> Iterator[RawRow]:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _json_error(exc, data, name, None) from None
    if isinstance(doc, dict):
        raise ParseError(
            "holds a single JSON object where an array of records (or JSONL, one record per line) was expected",
            Location(name, line=start_line),
        )
    if not isinstance(doc, list):
        raise ParseError(f"holds a JSON {type(doc).__name__} where an array of records was expected", Location(name))
    if not doc:  # an empty dataset: 0 records
        return
    duplicated = duplicates_in_array(data) if may_have_duplicates(data, doc) else {}
    for index, row in enumerate(doc):
        if index in duplicated:
            line, key, text = duplicated[index]
            err = ParseError(DUPLICATE_KEY_REASON.format(key=key), Location(name, line=line, index=index))
            yield RawRow(None, err.location, text, err)
        else:
            yield RawRow(row, Location(name, index=index))


# ---------------------------------------------------------------- CSV / Parquet


def _iter_csv(fh: IO[bytes], name: str) -> Iterator[RawRow]:
    head = _strip_bom(fh.read(len(BOM)))
    text = io.TextIOWrapper(io.BufferedReader(_Prepend(head, fh)), encoding="utf-8", newline="")
    reader = csv.DictReader(text)
    try:
        if not reader.fieldnames:  # an empty file: an empty dataset
            return
        repeated = sorted({c for c in reader.fieldnames if reader.fieldnames.count(c) > 1})
        if repeated:
            raise ParseError(
                f"the header names column '{repeated[0]}' twice (CSV readers keep only the last); rename one",
                Location(name, line=1),
            )
        for row in reader:
            loc = Location(name, line=reader.line_num)
            if None in row:
                raise ParseError("has more cells than the header has columns", loc)
            data: dict = {}
            for key, value in row.items():
                if value is None or (value == "" and key in EMPTY_MEANS_ABSENT_CSV_COLUMNS):
                    continue
                if key in NESTED_CSV_COLUMNS and value[:1] in ("[", "{"):
                    try:
                        text = value.encode("utf-8")
                        value = orjson.loads(text)
                    except orjson.JSONDecodeError as exc:
                        raise ParseError(f"column '{key}' holds invalid JSON ({exc.msg})", loc) from None
                    dup = duplicate_key(text, value)
                    if dup is not None:
                        raise ParseError(f"column '{key}': " + DUPLICATE_KEY_REASON.format(key=dup), loc)
                data[key] = value
            yield RawRow(data, loc)
    except UnicodeDecodeError as exc:
        # the text layer decodes ahead in chunks, so the reader's line number is not where the bad byte is
        located = _locate_bad_utf8(fh, name)
        if located is not None:
            raise located from None
        raise ParseError(f"is not valid UTF-8 (byte 0x{exc.object[exc.start]:02x}); convert the file to UTF-8", Location(name)) from None
    except csv.Error as exc:
        raise ParseError(f"invalid CSV: {exc}", Location(name, line=reader.line_num)) from None


def _locate_bad_utf8(fh: IO[bytes], name: str) -> ParseError | None:
    """Rescan a seekable file line by line for its first invalid UTF-8 byte (None if it cannot be found)."""
    try:
        fh.seek(0)
        for line_no, line in enumerate(fh, 1):
            err = _utf8_error(line, name, line_no)
            if err is not None:
                return err
    except (OSError, ValueError):
        pass
    return None


class _Prepend(io.RawIOBase):
    """A raw stream that gives back bytes already read before the rest of ``fh``."""

    def __init__(self, head: bytes, fh: IO[bytes]):
        self._head = head
        self._fh = fh

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._fh.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _drop_nulls(value):
    """Columnar sources fill absent fields with null, in nested objects too (a message without ``name``
    gets ``name: null`` when another message has one); treat them as absent."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _unreadable_type(dtype) -> str | None:
    """What makes a Parquet column type unreadable as JSON (decimals, bytes, durations), also when nested."""
    import pyarrow as pa

    if pa.types.is_decimal(dtype):
        return "decimals"
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype) or pa.types.is_fixed_size_binary(dtype):
        return "bytes"
    if pa.types.is_duration(dtype):
        return "durations"
    if pa.types.is_dictionary(dtype):
        return _unreadable_type(dtype.value_type)
    for i in range(dtype.num_fields):  # struct fields, list/map items
        found = _unreadable_type(dtype.field(i).type)
        if found is not None:
            return found
    return None


def _iter_parquet(path: Path, name: str) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise ParseError(f"is not a valid Parquet file ({str(exc).splitlines()[0]})", Location(name)) from None
    columns = pf.schema_arrow.names
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise ParseError(f"names column '{repeated[0]}' twice (a row would keep only the last value); rename one", Location(name))
    for column in pf.schema_arrow:
        unreadable = _unreadable_type(column.type)
        if unreadable is not None:
            raise ParseError(
                f"is a Parquet column of {unreadable} ({column.type}), which has no JSON form itkit could keep "
                "exactly; cast it to a string (or a float) column first, e.g. with pyarrow or pandas",
                Location(name),
                field=column.name,
            )
    index = 0
    for batch in pf.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            yield RawRow(_drop_nulls(row), Location(name, index=index))
            index += 1


# ---------------------------------------------------------------- Hugging Face Hub


def parse_hub_uri(source: str) -> tuple[str, str | None, str]:
    """``hf://org/name[/config][:split]`` -> (path, config, split)."""
    rest = source[len(HF_PREFIX):]
    split = "train"
    if ":" in rest.rsplit("/", 1)[-1]:
        rest, split = rest.rsplit(":", 1)
    if not rest:
        raise UsageError(f"'{source}' names no dataset; use hf://org/name[/config][:split]")
    config = None
    if not (os.path.isabs(rest) or rest.startswith(".")):
        parts = rest.split("/")
        if len(parts) == 3:
            rest, config = "/".join(parts[:2]), parts[2]
        elif len(parts) > 3:
            raise UsageError(f"'{source}' is not a dataset name; use hf://org/name[/config][:split]")
    return rest, config, split or "train"


def hub_unreachable(endpoint: str | None = None, timeout: float = HUB_CONNECT_TIMEOUT) -> str | None:
    """None when a connection to the Hub (or to the proxy that reaches it) opens within ``timeout``;
    else why not, in a few words."""
    import urllib.request
    from urllib.parse import urlsplit

    url = urlsplit(endpoint or os.environ.get("HF_ENDPOINT") or HUB_ENDPOINT)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = via.hostname or host, via.port or 8080
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except socket.timeout:
        return f"no answer from {host}:{port} within {timeout:g} s"
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"
    return None


def _is_local_folder(path: str) -> bool:
    return os.path.isabs(path) or path.startswith(".") or os.path.isdir(path)


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """datasets and huggingface_hub in offline mode (the local cache only) for the block."""
    import datasets.config
    import huggingface_hub.constants as hub

    saved = (datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE = saved


def _iter_hub(source: str) -> Iterator[RawRow]:
    path, config, split = parse_hub_uri(source)
    offline = bool(os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE"))
    # no network: fail (or use the local cache) at once, not after datasets' five retries (~20 s)
    unreachable = None if offline or _is_local_folder(path) else hub_unreachable()
    try:
        import datasets

        datasets.logging.set_verbosity_error()
        datasets.disable_progress_bars()
        with _hub_offline() if unreachable else contextlib.nullcontext():
            ds = datasets.load_dataset(path, config, split=split)
    except Exception as exc:  # datasets raises many types: connection, not found, bad split
        if unreachable:
            raise SourceError(
                f"{source}: the Hugging Face Hub is unreachable ({unreachable}) and the dataset is not in the "
                "local cache; check your network (or HF_ENDPOINT, HTTPS_PROXY)"
            ) from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = (
            "it is not in the local cache (offline mode is on)"
            if offline
            else "check the name and split, and your network; when offline, download it first and set HF_HUB_OFFLINE=1"
        )
        raise SourceError(f"{source}: cannot load from the Hugging Face Hub: {type(exc).__name__}: {reason[:300]}; {hint}") from None
    for index, row in enumerate(ds):
        yield RawRow(_drop_nulls(row), Location(source, index=index))
