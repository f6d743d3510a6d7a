"""Reading the unit directory (SPEC §4.3, reference-domain §6.1).

Two sources, chosen by the shape of ``UNIT_SOURCE_URL``:

- ``http(s)://…``: an Accred-compatible API, ``GET {source}/units?pageindex=N&pagesize=100``
  with HTTP basic auth, answering ``{"units": [...], "count": N}``;
- anything else: the path of a JSON file ``{"units": [...]}`` (the bundled demo directory).

Each raw unit is validated and mapped to a ``UnitRecord``; the distinct ``responsible``
objects become ``PrincipalRecord``s. Nothing here touches the database.

One deliberate difference from the reference mapping: ``parent_institutional_id`` is read
from ``level{L-1}cf`` (the ancestor one level up, i.e. the parent), not ``level{L}cf``, which
in the directory is the unit's own cf — the reference stored every unit as its own parent.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PAGE_SIZE = 100
REQUEST_TIMEOUT_SECONDS = 30.0
# 100,000 units: far above any real directory; a server that never stops paging fails here.
MAX_PAGES = 1000
ACTIVE_END_DATE = "0001-01-01T00:00:00Z"
# Longest value of the code columns of Unit / User (institutional_code, cf, SCIPER).
CODE_MAX_LENGTH = 32
# Unit.level is constrained to 1..10 in the database.
LEVEL_RANGE = range(1, 11)

# Called after each page: (page index, units read so far, units announced or None).
PageCallback = Callable[[int, int, int | None], None]


class DirectoryError(Exception):
    """The unit directory could not be read, or sent something unusable."""


@dataclass(frozen=True)
class UnitRecord:
    institutional_code: str
    institutional_id: str | None
    name: str
    label_fr: str
    label_en: str
    level: int
    parent_institutional_code: str | None
    parent_institutional_id: str | None
    path_institutional_code: str
    path_institutional_id: str
    path_name: str
    unit_type_id: int | None
    unit_type_label: str
    principal_user_institutional_id: str | None
    is_active: bool


@dataclass(frozen=True)
class PrincipalRecord:
    institutional_id: str
    email: str
    first_name: str
    last_name: str

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


def is_http_source(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def source_display(source: str) -> str:
    """SOURCE without any credentials embedded in it (``https://user:pw@host`` → ``https://host``)."""
    if not is_http_source(source):
        return source
    parts = urllib.parse.urlsplit(source)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


# --- Mapping -------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _code(value: Any) -> str | None:
    """A directory key as text; None when absent, empty or "0" (the directory's "none")."""
    text = _text(value)
    return None if text in {"", "0"} else text


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def unit_record_from_raw(raw: Mapping[str, Any], *, index: int) -> UnitRecord:
    """Validate and map one raw directory unit; INDEX (0-based position) names it in errors."""
    where = f"unit #{index + 1}"
    if not isinstance(raw, Mapping):
        raise DirectoryError(f"{where}: expected an object, got {type(raw).__name__}")
    code = _text(raw.get("id"))
    if code == "":
        raise DirectoryError(f"{where}: missing 'id'")
    where = f"unit #{index + 1} (id {code})"
    for required in ("name", "level"):
        if _text(raw.get(required)) == "":
            raise DirectoryError(f"{where}: missing {required!r}")
    try:
        level = int(raw["level"])
    except (TypeError, ValueError):
        raise DirectoryError(f"{where}: 'level' must be an integer, got {raw['level']!r}") from None
    if level not in LEVEL_RANGE:
        raise DirectoryError(f"{where}: 'level' must be between 1 and 10, got {level}")
    cf = _code(raw.get("cf"))
    responsible_id = _code(raw.get("responsibleid"))
    for field_name, value in (("id", code), ("cf", cf), ("responsibleid", responsible_id)):
        if value is not None and len(value) > CODE_MAX_LENGTH:
            raise DirectoryError(f"{where}: {field_name!r} is longer than {CODE_MAX_LENGTH} characters")
    ancestors_raw = raw.get("ancestors") or []
    if not isinstance(ancestors_raw, list):
        raise DirectoryError(f"{where}: 'ancestors' must be a list, got {type(ancestors_raw).__name__}")
    ancestors = [_text(a) for a in ancestors_raw if _text(a)]
    parent_code = _code(raw.get("parentid"))
    unit_type = raw.get("unittype")
    return UnitRecord(
        institutional_code=code,
        institutional_id=cf,
        name=_text(raw["name"])[:255],
        label_fr=_text(raw.get("labelfr"))[:512],
        label_en=_text(raw.get("labelen"))[:512],
        level=level,
        # A root that names itself as parent would become its own ancestor.
        parent_institutional_code=parent_code if parent_code != code else None,
        parent_institutional_id=_code(raw.get(f"level{level - 1}cf")) if level > 1 else None,
        path_institutional_code=" ".join([*ancestors, code]),
        path_institutional_id=_text(raw.get("pathcf")),
        path_name=_text(raw.get("path"))[:1024],
        unit_type_id=_int_or_none(raw.get("unittypeid")),
        unit_type_label=_text(unit_type.get("label") if isinstance(unit_type, Mapping) else None)[:128],
        principal_user_institutional_id=responsible_id,
        is_active=_text(raw.get("enddate")) == ACTIVE_END_DATE,
    )


def principal_record_from_raw(raw: Any) -> PrincipalRecord | None:
    """The unit's ``responsible`` object, or None when it has none (or one without an id)."""
    if not isinstance(raw, Mapping):
        return None
    sciper = _code(raw.get("id"))
    if sciper is None or len(sciper) > CODE_MAX_LENGTH:
        return None
    return PrincipalRecord(
        institutional_id=sciper,
        email=_text(raw.get("email"))[:254],
        first_name=_text(raw.get("firstname"))[:150],
        last_name=_text(raw.get("lastname"))[:150],
    )


class _Collector:
    """Maps raw units as they arrive, keeping the principals distinct by SCIPER."""

    def __init__(self) -> None:
        self.units: list[UnitRecord] = []
        self.principals: dict[str, PrincipalRecord] = {}
        self.codes: set[str] = set()

    def add(self, raw_units: list[Any]) -> int:
        """Map RAW_UNITS; returns how many of them were not seen before."""
        new = 0
        for raw in raw_units:
            record = unit_record_from_raw(raw, index=len(self.units))
            self.units.append(record)
            if record.institutional_code not in self.codes:
                self.codes.add(record.institutional_code)
                new += 1
            principal = principal_record_from_raw(raw.get("responsible"))
            if principal is not None:
                self.principals.setdefault(principal.institutional_id, principal)
        return new


# --- Sources -------------------------------------------------------------------------------------


def directory_fetch(
    *,
    source: str,
    user: str | None = None,
    password: str | None = None,
    on_page: PageCallback | None = None,
) -> tuple[list[UnitRecord], list[PrincipalRecord]]:
    """Read every unit of the directory at SOURCE and the distinct principals among them.

    HTTP source:
    1. GET pages 1, 2, … of PAGE_SIZE units (basic auth when USER is given, 30 s timeout),
       calling ON_PAGE after each.
    2. Stop when ``count`` units have been read, on an empty page, or after a short page when
       the directory gives no count.
    3. Refuse a page that brings no unit not already seen (a server ignoring ``pageindex``
       would otherwise be paged forever) and more than MAX_PAGES pages.
    File source: read ``{"units": [...]}`` (UTF-8, BOM accepted).
    Every unit is validated (``id``, ``name``, ``level``); any problem raises DirectoryError
    naming the page, the unit or the HTTP status — never the password.
    """
    collector = _Collector()
    if is_http_source(source):
        _fetch_http(source, user, password, collector, on_page)
    else:
        _fetch_file(source, collector, on_page)
    return collector.units, list(collector.principals.values())


def _fetch_file(source: str, collector: _Collector, on_page: PageCallback | None) -> None:
    path = Path(source)
    try:
        body = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise DirectoryError(f"unit directory file {source} does not exist") from None
    except OSError as exc:
        raise DirectoryError(f"cannot read unit directory file {source}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DirectoryError(f"unit directory file {source} is not valid UTF-8 JSON: {exc}") from None
    units = body.get("units") if isinstance(body, dict) else None
    if not isinstance(units, list):
        raise DirectoryError(f'unit directory file {source}: expected an object {{"units": [...]}}')
    collector.add(units)
    if on_page is not None:
        on_page(1, len(collector.units), len(collector.units))


def _page_url(source: str, page: int) -> str:
    query = urllib.parse.urlencode({"pageindex": page, "pagesize": PAGE_SIZE})
    return f"{source.rstrip('/')}/units?{query}"


def _fetch_http(
    source: str, user: str | None, password: str | None, collector: _Collector, on_page: PageCallback | None
) -> None:
    authorization = None
    embedded = urllib.parse.urlsplit(source)
    if user is None and embedded.username:
        # Credentials written into the URL itself (https://user:pw@host) are honoured too.
        user, password = urllib.parse.unquote(embedded.username), urllib.parse.unquote(embedded.password or "")
    if user is not None:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode("ascii")
        authorization = f"Basic {token}"
    total: int | None = None
    page = 1
    while True:
        if page > MAX_PAGES:
            raise DirectoryError(f"unit directory {source_display(source)}: still paging after {MAX_PAGES} pages")
        body = _get_page(source, page, authorization)
        count = body.get("count")
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            total = count
        units = body.get("units")
        if not isinstance(units, list):
            raise DirectoryError(f"unit directory page {page}: the answer has no 'units' list")
        if not units:
            break
        try:
            new_units = collector.add(units)
        except DirectoryError as exc:
            raise DirectoryError(f"unit directory page {page}: {exc}") from None
        if new_units == 0:
            raise DirectoryError(
                f"unit directory page {page}: every unit on it was already read on an earlier page "
                "(does the directory honour pageindex?)"
            )
        if on_page is not None:
            on_page(page, len(collector.units), total)
        if total is not None and len(collector.units) >= total:
            break
        if total is None and len(units) < PAGE_SIZE:
            break
        page += 1
    if total is not None and len(collector.units) < total:
        logger.warning(
            "unit directory %s announced %s units but sent %s", source_display(source), total, len(collector.units)
        )


def _get_page(source: str, page: int, authorization: str | None) -> dict[str, Any]:
    """GET one page. http.client, not urllib: it never follows a redirect, so the credentials
    cannot be replayed to another host, and a redirect is reported like any other status."""
    parts = urllib.parse.urlsplit(_page_url(source, page))
    shown = _page_url(source_display(source), page)
    connection_class = http.client.HTTPSConnection if parts.scheme.lower() == "https" else http.client.HTTPConnection
    headers = {"Accept": "application/json", "User-Agent": "carbon-pipeline unit_sync"}
    if authorization is not None:
        headers["Authorization"] = authorization
    target = f"{parts.path or '/'}?{parts.query}"
    try:
        connection = connection_class(parts.hostname or "", parts.port, timeout=REQUEST_TIMEOUT_SECONDS)
        try:
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
    except TimeoutError:
        raise DirectoryError(
            f"unit directory page {page} ({shown}): no answer within {REQUEST_TIMEOUT_SECONDS:g} s"
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        reason = str(exc) or exc.__class__.__name__
        raise DirectoryError(f"unit directory page {page} ({shown}): cannot connect: {reason}") from None
    if response.status != HTTPStatus.OK:
        raise DirectoryError(f"unit directory page {page} ({shown}): HTTP {response.status} {response.reason}")
    try:
        body = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DirectoryError(f"unit directory page {page} ({shown}): the answer is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise DirectoryError(f"unit directory page {page} ({shown}): expected a JSON object")
    return body
