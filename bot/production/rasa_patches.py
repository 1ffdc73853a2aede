"""The only changes to Rasa's own code (Rasa 3.6.21), each measured to pay (BENCHMARKS.md, "Cost
per message"). Installed once per Rasa process by bot/production/stores.py, which every Rasa
server of this project loads (its tracker store class); `install()` is idempotent.

1. The action server's answer is checked against Rasa's response schema with a validator built
   once. Rasa 3.6 calls `jsonschema.validate` for every custom action, which first checks the
   schema itself against the JSON Schema meta-schema: about half of the Rasa process's CPU time
   per message went there. Same schema, same errors, same message.
2. The model's graph (NLU, then each prediction of the next action: three runs per message) is
   run by a plain sequential evaluator instead of dask's synchronous scheduler, whose
   bookkeeping cost about 1 ms per message. Same graph, same nodes, each run once, in an order
   that respects every dependency (the dask scheduler also runs them one at a time).
3. Keep-alive to the action server (and any other endpoint Rasa calls through
   `EndpointConfig.request`): Rasa 3.6 opens a new aiohttp session, so a new TCP connection,
   for every call. Each endpoint now keeps one session per event loop. Idle connections are
   dropped after KEEPALIVE_S, shorter than Sanic's own keep-alive (5 s by default, 75 s in the
   production profile), so a connection the action server is closing is never reused.
4. Each event of the answer is checked against the one branch of the events schema its `event`
   names (`EventDispatch`), not against the oneOf over all ~23 event schemas. An answer that
   does not pass (or an event whose name is unknown or missing) goes through the full validator
   as before, so the error raised is the same.
5. `Event.resolve_by_type` (every event read from the tracker store, every event of an action's
   answer) walks all of Event's subclasses for each event: the class found for a name is kept
   (`EventClasses`), forgotten whenever a new Event subclass is defined.

The tracker store's own changes (a kept SQLite connection in WAL mode, a cheaper save) are in
bot/production/stores.py: they re-implement parts of Rasa's SQLTrackerStore, so their Rasa
originals are fingerprinted here too. tests/test_rasa_patches.py fails when any of this Rasa code
changes (source fingerprints) and checks the behaviour of each change against Rasa's own.
TTHC_RASA_PATCHES switches changes off for measurements only (`enabled`).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
import weakref
from typing import Any

import aiohttp
from rasa.core.actions.action import RemoteAction
from rasa.core.tracker_store import SQLTrackerStore
from rasa.engine.exceptions import GraphRunError
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.events import Event
from rasa.shared.utils.common import all_subclasses
from rasa.shared.utils.schemas.events import EVENTS_SCHEMA
from rasa.utils.endpoints import DEFAULT_REQUEST_TIMEOUT, EndpointConfig

# The Rasa code replaced here or re-implemented in bot/production/stores.py, as it is in Rasa
# 3.6.21 (sha256 of its source): tests/test_rasa_patches.py fails when it changes.
FINGERPRINTS = {
    "RemoteAction._validate_action_result": (
        "f8cdb4be6812396167ced74161b2ccd65c5ea676ad86d7d359d8c322d9d8dc42"
    ),
    "RemoteAction.action_response_format_spec": (
        "091b74aa3738d1262cf3c028386aaf9dd4f0d5c1374b62392411d70a79104a46"
    ),
    # Data, not code: EventDispatch splits this schema by its branches.
    "EVENTS_SCHEMA": "ca0f9bedb17650dbea770790ecd015d45200346d4788619d367ca32d187f69ee",
    "EndpointConfig.session": "e55aa13d9d4fb4bc440ac33b870a97ee162b76dda7ccb6bf68433567475fdffb",
    "EndpointConfig.request": "ccdb778aed8208e23cde3c3f47eac7fbbbb735dac8f7ef7254d54451c64ad608",
    "DaskGraphRunner.run": "45f0f52f574f3aa9546a552bf671183e171092c18b66e97f5771a7fa295de37e",
    "Event.resolve_by_type": "b5cf570fa7f286c7059ec73d8880528d03a78b28cf4e80285a46079c0fa65968",
    "all_subclasses": "28c2e6df9c15daea296f630b83d0b2391636581164056082458a32647d6761d1",
    "SQLTrackerStore._retrieve": "c8adbf6f4b61ddd1124690944ebdf2ebc82d0723bd07c6704caab0b80120a0ef",
    "SQLTrackerStore.save": "57165e46eab3de0866e77f03df0bf7fd5eac2c1de617ed431b934c9a4edfeef6",
    "SQLTrackerStore._additional_events": (
        "d22f99eb863acb07afee63d9fe3a04ca8464251e67a43eb7d36c2d65ffc1653f"
    ),
    "SQLTrackerStore._event_query": (
        "cd44f7901b860bfd598a813bde17d0d5b0d7bab129feaf76bb2dca87d628625b"
    ),
}
KEEPALIVE_S = 4.0
PATCHES_ENV = "TTHC_RASA_PATCHES"
_INSTALLED = False
_ORIGINAL_VALIDATE = RemoteAction._validate_action_result
_ORIGINAL_SESSION = EndpointConfig.session
_ORIGINAL_RUN = DaskGraphRunner.run
_ORIGINAL_RESOLVE = Event.resolve_by_type  # a staticmethod: the plain function


def fingerprint(function: Any) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


def data_fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def current_fingerprints() -> dict[str, str]:
    """The fingerprints of the Rasa code installed now (the originals, also once patched)."""
    store = SQLTrackerStore
    return {
        "RemoteAction._validate_action_result": fingerprint(_ORIGINAL_VALIDATE),
        "RemoteAction.action_response_format_spec": fingerprint(
            RemoteAction.action_response_format_spec
        ),
        "EVENTS_SCHEMA": data_fingerprint(EVENTS_SCHEMA),
        "EndpointConfig.session": fingerprint(_ORIGINAL_SESSION),
        "EndpointConfig.request": fingerprint(EndpointConfig.request),
        "DaskGraphRunner.run": fingerprint(_ORIGINAL_RUN),
        "Event.resolve_by_type": fingerprint(_ORIGINAL_RESOLVE),
        "all_subclasses": fingerprint(all_subclasses),
        "SQLTrackerStore._retrieve": fingerprint(store._retrieve),
        "SQLTrackerStore.save": fingerprint(store.save),
        "SQLTrackerStore._additional_events": fingerprint(store._additional_events),
        "SQLTrackerStore._event_query": fingerprint(store._event_query),
    }


# --- 1. the action server's answer, validated with a validator built once --------------------

_validator: Any = None


def response_validator() -> Any:
    global _validator
    if _validator is None:
        from jsonschema.validators import validator_for

        schema = RemoteAction.action_response_format_spec()
        cls = validator_for(schema)
        cls.check_schema(schema)  # once, as jsonschema.validate did on every call
        _validator = cls(schema)
    return _validator


class EventDispatch:
    """Validity of an action server answer under Rasa's response schema, each event checked
    against the branch of the events schema its `event` names.

    The events schema is an array of objects with a common part (`event` a required string,
    `timestamp`, `metadata`) and a oneOf of one branch per event type, each fixing `event` with a
    distinct `const`. An object whose `event` is one of those names fails every other branch
    (the const), so it passes the oneOf exactly when it passes its own branch: the answer is
    valid exactly when it passes the response schema without the oneOf and each event passes
    its branch. `is_valid` answers None (ask the full validator) for a name no branch has, or
    when the schema is not of that shape (a Rasa upgrade: the fingerprint test fails too)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        from jsonschema.validators import validator_for

        cls = validator_for(schema)
        self.branches: dict[str, Any] | None = None
        try:
            items = schema["properties"]["events"]["items"]
            names = [branch["properties"]["event"]["const"] for branch in items["oneOf"]]
        except (KeyError, TypeError):
            return
        if len(set(names)) != len(names):
            return
        common = {key: value for key, value in items.items() if key != "oneOf"}
        events = {**schema["properties"]["events"], "items": common}
        reduced = {**schema, "properties": {**schema["properties"], "events": events}}
        self.reduced = cls(reduced)
        self.branches = {
            name: cls(branch) for name, branch in zip(names, items["oneOf"], strict=True)
        }

    def is_valid(self, result: Any) -> bool | None:
        """True when valid; None when the full validator must decide (also on any error)."""
        if self.branches is None or not self.reduced.is_valid(result):
            return None
        for event in result.get("events", ()):
            branch = self.branches.get(event["event"])  # a dict with a string "event" here
            if branch is None or not branch.is_valid(event):
                return None
        return True


_dispatch: EventDispatch | None = None


def event_dispatch() -> EventDispatch:
    global _dispatch
    if _dispatch is None:
        _dispatch = EventDispatch(RemoteAction.action_response_format_spec())
    return _dispatch


def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    """`jsonschema.validate(result, schema)` without checking the schema again each time; the
    error raised is the one `validate` raises (best match), with Rasa's text appended. A valid
    answer is recognised branch by branch first (`EventDispatch`)."""
    from jsonschema import exceptions

    if enabled("events") and event_dispatch().is_valid(result):
        return True
    error = exceptions.best_match(response_validator().iter_errors(result))
    if error is None:
        return True
    error.message += (
        ". Failed to validate Action server response from API, "
        "make sure your response from the Action endpoint is valid. "
        f"For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


# --- 2. the graph, run sequentially ------------------------------------------------------------


def run_sequentially(graph: dict[str, Any], targets: list[str]) -> list[Any]:
    """`dask.get(graph, targets)` for Rasa's graphs: a task is a tuple whose first item is
    callable, the others its arguments (keys of the graph are replaced by their values); any
    other value is a literal. Each key is computed once."""
    values: dict[str, Any] = {}

    def argument(item: Any) -> Any:
        if isinstance(item, str) and item in graph:
            return value(item)
        return item

    def value(key: str) -> Any:
        if key not in values:
            task = graph[key]
            if type(task) is tuple and task and callable(task[0]):
                values[key] = task[0](*(argument(item) for item in task[1:]))
            else:
                values[key] = task
        return values[key]

    return [value(target) for target in targets]


def _run(
    self: DaskGraphRunner,
    inputs: dict[str, Any] | None = None,
    targets: list[str] | None = None,
) -> dict[str, Any]:
    """Rasa's `DaskGraphRunner.run` with `run_sequentially` in place of `dask.get`."""
    run_targets = targets if targets else self._graph_schema.target_names
    minimal_schema = self._graph_schema.minimal_graph_schema(run_targets)
    run_graph = self._build_dask_graph(minimal_schema)
    if inputs:
        self._add_inputs_to_graph(inputs, run_graph)
    try:
        return dict(run_sequentially(run_graph, run_targets))
    except RuntimeError as e:
        raise GraphRunError("Error running runner.") from e


# --- 5. event classes by name -------------------------------------------------------------------


class EventClasses:
    """What `Event.resolve_by_type` finds for a name: the first of `all_subclasses(Event)` with
    that `type_name`. Kept per name (weakly: a class that is gone is looked up again) and
    forgotten whenever a subclass of Event is defined (`Event.__init_subclass__`), the only
    way the answer can change. Names no class has are not kept (Rasa's walk, then its
    "topic" / default / ValueError rules)."""

    def __init__(self) -> None:
        self.found: dict[str, weakref.ref] = {}

    def forget(self) -> None:
        self.found.clear()

    def resolve(self, type_name: Any, default: Any = None) -> Any:
        try:
            reference = self.found.get(type_name)
        except TypeError:  # an unhashable name from stored or received data
            return _ORIGINAL_RESOLVE(type_name, default)
        cls = reference() if reference is not None else None
        if cls is not None:
            return cls
        for candidate in all_subclasses(Event):
            if candidate.type_name == type_name:
                self.found[type_name] = weakref.ref(candidate)
                return candidate
        return _ORIGINAL_RESOLVE(type_name, default)


EVENT_CLASSES = EventClasses()


def _resolve_by_type(type_name: Any, default: Any = None) -> Any:
    return EVENT_CLASSES.resolve(type_name, default)


def _forget_event_classes(cls: type, **kwargs: Any) -> None:
    EVENT_CLASSES.forget()
    super(Event, cls).__init_subclass__(**kwargs)


# --- 3. keep-alive sessions ---------------------------------------------------------------------


class _BorrowedSession:
    """What `EndpointConfig.session()` returns: `async with` yields the endpoint's long-lived
    session and leaves it open; any other use goes to that session."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def __aenter__(self) -> aiohttp.ClientSession:
        return self._session

    async def __aexit__(self, *_exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _session(self: EndpointConfig) -> Any:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no loop: Rasa's own behaviour (a fresh session)
        return _ORIGINAL_SESSION(self)
    kept = self.__dict__.get("_tthc_session")
    if kept is None or kept.closed or kept._loop is not loop:
        auth = None
        if self.basic_auth:
            auth = aiohttp.BasicAuth(self.basic_auth["username"], self.basic_auth["password"])
        kept = aiohttp.ClientSession(
            headers=self.headers,
            auth=auth,
            timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
            connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_S),
        )
        self.__dict__["_tthc_session"] = kept
        _KEPT.add(kept)
    return _BorrowedSession(kept)


_KEPT: weakref.WeakSet[aiohttp.ClientSession] = weakref.WeakSet()


async def close_sessions(*_args: Any) -> None:
    """Close the kept sessions of the running loop (a Sanic "before_server_stop" listener:
    bot/production/channel.py registers it)."""
    loop = asyncio.get_running_loop()
    kept = [s for s in _KEPT if not s.closed and s._loop is loop]
    await asyncio.gather(*(s.close() for s in kept), return_exceptions=True)


def enabled(name: str) -> bool:
    """Whether the change `name` is on: all are, unless TTHC_RASA_PATCHES lists some, joined by
    "+" ("none": none). Only for measuring each change on its own (scripts/bench_throughput.py);
    names: validator, graph, keepalive, sqlite, save, events, statements, holds,
    eventclasses."""
    chosen = os.environ.get(PATCHES_ENV, "all").replace(" ", "").split("+")
    return "all" in chosen or name in chosen


def install() -> None:
    global _INSTALLED
    if _INSTALLED:
        return
    if enabled("validator"):
        RemoteAction._validate_action_result = _validate_action_result
    if enabled("graph"):
        DaskGraphRunner.run = _run
    if enabled("keepalive"):
        EndpointConfig.session = _session
    if enabled("eventclasses"):
        Event.__init_subclass__ = classmethod(_forget_event_classes)
        Event.resolve_by_type = staticmethod(_resolve_by_type)
    _INSTALLED = True
