"""The changes to Rasa's own code (bot/production/rasa_patches.py) and the tracker store's
re-implemented parts (bot/production/stores.py): the Rasa code under them is still the code they
were written against, and each behaves as Rasa's own does."""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
import sqlite3

import pytest
import sqlalchemy as sa
from aiohttp import web
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import ClientResponseError, EndpointConfig

from bot.production import rasa_patches
from bot.production.stores import ResilientSQLTrackerStore

VALID = {
    "events": [{"event": "slot", "timestamp": None, "name": "procedure_code", "value": "1.1"}],
    "responses": [{"text": "Lệ phí 135.000 đồng", "buttons": [{"title": "a", "payload": "/b"}]}],
}
INVALID = [
    {"events": [{"event": "slot", "name": 3}]},  # a slot name must be text
    {"events": [{"event": "no-such-event"}]},
    {"events": "not a list"},
    {"responses": [1, 2]},
    [],
    # Each event against its own branch (EventDispatch): the errors stay Rasa's.
    {"events": [{"event": "slot", "value": 1}]},  # a slot without its name
    {"events": [{"name": "x", "value": 1}]},  # no event name
    {"events": [{"event": 3}]},
    {"events": [{"event": ["slot"]}]},
    {"events": [{"event": "bot", "timestamp": "now"}]},
    {"events": [{"event": "action", "name": "x", "confidence": "high"}]},
    {"events": [{"event": "entities", "entities": [{"entity": "x"}]}]},
    {"events": [{"event": "user", "parse_data": {"intent": {"name": 1}}}]},
    {"events": [VALID["events"][0], {"event": "active_loop", "metadata": []}]},
    {"events": [VALID["events"][0], "slot"]},
    {"events": [{"event": "slot", "name": "a", "value": 1}], "responses": {"text": "x"}},
]


def test_the_rasa_code_under_the_changes_is_unchanged() -> None:
    # A Rasa upgrade changed code that bot/production/rasa_patches.py replaces or that
    # bot/production/stores.py re-implements: check each change still fits, then update.
    assert rasa_patches.current_fingerprints() == rasa_patches.FINGERPRINTS


def test_the_rasa_processes_install_the_changes(tmp_path) -> None:
    store = ResilientSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "t.db"))
    store.engine.dispose()
    assert RemoteAction._validate_action_result is rasa_patches._validate_action_result
    assert EndpointConfig.session is rasa_patches._session


# --- 1. the action server's answer -------------------------------------------------------------


def test_a_valid_answer_passes_as_with_rasa() -> None:
    action = RemoteAction("action_x", None)
    assert rasa_patches._ORIGINAL_VALIDATE(action, copy.deepcopy(VALID)) is True
    assert rasa_patches._validate_action_result(action, copy.deepcopy(VALID)) is True


@pytest.mark.parametrize("answer", INVALID)
def test_an_invalid_answer_raises_rasa_s_error(answer) -> None:
    action = RemoteAction("action_x", None)
    with pytest.raises(ValidationError) as rasa_error:
        rasa_patches._ORIGINAL_VALIDATE(action, copy.deepcopy(answer))
    with pytest.raises(ValidationError) as our_error:
        rasa_patches._validate_action_result(action, copy.deepcopy(answer))
    assert our_error.value.message == rasa_error.value.message
    assert list(our_error.value.path) == list(rasa_error.value.path)
    assert "Failed to validate Action server response" in our_error.value.message


def _every_rasa_event() -> list[dict]:
    """One event of each of Rasa's event types, as an action server would send it."""
    from rasa.shared.core import events as rasa_events

    parse = {"text": "x", "intent": {"name": "greet", "confidence": 1.0}, "entities": []}
    made = [
        rasa_events.UserUttered("xin chào", parse["intent"], [], parse, input_channel="rest"),
        rasa_events.BotUttered("chào", {"buttons": []}, {"utter_action": "utter_greet"}),
        rasa_events.SlotSet("procedure_code", "1.001193"),
        rasa_events.SlotSet("facts", ["fee"]),
        rasa_events.ActionExecuted("action_x", policy="RulePolicy", confidence=1.0),
        rasa_events.EntitiesAdded([{"entity": "place", "value": "Huế", "start": 0, "end": 3}]),
        rasa_events.ActiveLoop("form"),
        rasa_events.ActiveLoop(None),
        rasa_events.LoopInterrupted(True),
        rasa_events.FollowupAction("action_y"),
        rasa_events.ReminderScheduled("intent", datetime.datetime(2026, 12, 5)),
        rasa_events.ReminderCancelled("name"),
        rasa_events.AllSlotsReset(),
        rasa_events.Restarted(),
        rasa_events.UserUtteranceReverted(),
        rasa_events.ActionReverted(),
        rasa_events.StoryExported(),
        rasa_events.ConversationPaused(),
        rasa_events.ConversationResumed(),
        rasa_events.AgentUttered("agent"),
        rasa_events.SessionStarted(),
        rasa_events.ActionExecutionRejected("action_x"),
        rasa_events.DefinePrevUserUtteredFeaturization(False),
    ]
    return [event.as_dict() for event in made]


def test_every_event_type_is_judged_as_by_rasa() -> None:
    # Valid events of every type, alone and together, and each with a field made wrong.
    action = RemoteAction("action_x", None)
    events = _every_rasa_event()
    answers = [{"events": events, "responses": VALID["responses"]}]
    answers += [{"events": [event]} for event in events]
    for event in events:
        for key in event:
            for wrong in (None, 3, "x", [], {}):
                answers.append({"events": [{**event, key: wrong}]})
    verdicts = {"rasa": [], "ours": []}
    for answer in answers:
        for name, validate in (
            ("rasa", rasa_patches._ORIGINAL_VALIDATE),
            ("ours", rasa_patches._validate_action_result),
        ):
            try:
                verdicts[name].append(validate(action, copy.deepcopy(answer)))
            except ValidationError as error:
                verdicts[name].append((error.message, list(error.path)))
    assert verdicts["ours"] == verdicts["rasa"]
    assert verdicts["rasa"].count(True) > len(events)  # valid ones among them too
    dispatch = rasa_patches.event_dispatch()
    assert dispatch.branches is not None and len(dispatch.branches) >= 20
    assert dispatch.is_valid({"events": events}) is True  # the branch path, not the fallback


# --- event classes by name ------------------------------------------------------------------------


def _resolved(resolve, names: list) -> list:
    answers = []
    for name in names:
        for default in (None, SlotSet):
            try:
                answers.append(resolve(name, default))
            except ValueError as error:
                answers.append(str(error))
    return answers


def test_event_classes_are_resolved_as_by_rasa() -> None:
    from rasa.shared.core.events import Event
    from rasa.shared.utils.common import all_subclasses

    rasa_patches.install()
    assert Event.resolve_by_type is rasa_patches._resolve_by_type
    names = [cls.type_name for cls in all_subclasses(Event)]
    names += ["topic", "no-such-event", "", None, 3, ["slot"], "slot"]
    expected = _resolved(rasa_patches._ORIGINAL_RESOLVE, names)
    assert _resolved(Event.resolve_by_type, names) == expected
    assert _resolved(Event.resolve_by_type, names) == expected  # from what was kept
    assert Event.from_parameters({"event": "slot", "name": "a", "value": 1}) == SlotSet("a", 1)


def test_a_new_event_class_is_seen() -> None:
    import gc

    from rasa.shared.core.events import Event

    rasa_patches.install()
    assert Event.resolve_by_type("tthc_test_event", SlotSet) is SlotSet

    class TestEvent(SlotSet):
        type_name = "tthc_test_event"

    assert Event.resolve_by_type("tthc_test_event") is TestEvent
    assert rasa_patches._ORIGINAL_RESOLVE("tthc_test_event") is TestEvent

    # A new class under the same name: Rasa's walk finds the first one; so do we.
    class Shadow(SlotSet):
        type_name = "tthc_test_event"

    assert Event.resolve_by_type("tthc_test_event") is rasa_patches._ORIGINAL_RESOLVE(
        "tthc_test_event"
    )
    del TestEvent, Shadow
    gc.collect()
    assert Event.resolve_by_type("tthc_test_event", SlotSet) is rasa_patches._ORIGINAL_RESOLVE(
        "tthc_test_event", SlotSet
    )


# --- 2. keep-alive to the action server ----------------------------------------------------------


async def _server(answer_status: int = 200):
    peers: list[tuple] = []

    async def webhook(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))
        body = await request.json()
        return web.json_response({"echo": body}, status=answer_status)

    app = web.Application()
    app.add_routes([web.post("/webhook", webhook)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}/webhook", peers


async def test_action_calls_reuse_one_connection() -> None:
    runner, url, peers = await _server()
    endpoint = EndpointConfig(url=url, headers={"X-Test": "1"})
    try:
        answers = [await rasa_patches_request(endpoint, {"n": n}, kept=True) for n in range(3)]
        assert answers == [{"echo": {"n": n}} for n in range(3)]
        assert len(set(peers)) == 1  # one TCP connection for the three calls
        for n in range(2):
            await rasa_patches_request(endpoint, {"n": n}, kept=False)
        assert len(set(peers)) == 3  # Rasa's own: a new connection per call
    finally:
        await rasa_patches.close_sessions()
        await runner.cleanup()
    assert endpoint.__dict__["_tthc_session"].closed


async def rasa_patches_request(endpoint: EndpointConfig, body: dict, kept: bool):
    session = rasa_patches._session if kept else rasa_patches._ORIGINAL_SESSION
    endpoint.session = lambda: session(endpoint)  # this instance only
    return await endpoint.request(json=body, method="post")


async def test_an_error_status_still_raises() -> None:
    runner, url, _ = await _server(answer_status=500)
    endpoint = EndpointConfig(url=url)
    try:
        with pytest.raises(ClientResponseError):
            await rasa_patches_request(endpoint, {"n": 1}, kept=True)
        # The session survives an error answer.
        with pytest.raises(ClientResponseError):
            await rasa_patches_request(endpoint, {"n": 2}, kept=True)
    finally:
        await rasa_patches.close_sessions()
        await runner.cleanup()


async def test_a_new_event_loop_gets_a_new_session() -> None:
    endpoint = EndpointConfig(url="http://127.0.0.1:9/webhook")
    first = rasa_patches._session(endpoint)._session

    def in_other_loop():
        async def borrow():
            session = rasa_patches._session(endpoint)._session
            await rasa_patches.close_sessions()
            return session

        return asyncio.run(borrow())

    other = await asyncio.to_thread(in_other_loop)
    assert other is not first and other.closed
    await rasa_patches.close_sessions()


# --- 3. the tracker store ------------------------------------------------------------------------


def _turn(text: str, intent: str, answer: str) -> list:
    parse = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": []}
    return [
        UserUttered(text, parse["intent"], [], parse, input_channel="rest"),
        ActionExecuted("action_answer_procedure", policy="RulePolicy", confidence=1.0),
        BotUttered(answer, {"buttons": [{"title": "Phí", "payload": "/ask_fee"}]}),
        SlotSet("procedure_code", "1.001193"),
        ActionExecuted("action_listen"),
    ]


TURNS = [
    [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")],
    _turn("đổi bằng lái cần gì, sđt 0912345678", "ask_documents", "Cần ... CCCD 001203004567"),
    _turn("còn lệ phí thì sao?", "ask_fee", "Lệ phí 135.000 đồng"),
    # A new session within the conversation: later saves count from its start.
    [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")],
    _turn("nộp ở đâu", "ask_place", "Bộ phận một cửa"),
]

THANKS = UserUttered("cảm ơn", {"name": "thank", "confidence": 1.0})


def _rows(store: ResilientSQLTrackerStore) -> list[tuple]:
    with store.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM events ORDER BY id")).mappings().all()
    columns = ("sender_id", "type_name", "timestamp", "intent_name", "action_name")
    return [(*(r[c] for c in columns), json.loads(r["data"])) for r in rows]


async def _converse(store: ResilientSQLTrackerStore, domain: Domain) -> None:
    """Turn by turn as Rasa does (retrieve, add the turn, save), two conversations
    interleaved; one turn saved twice, one tracker saved that was not retrieved."""
    for index, events in enumerate(TURNS):
        for sender in ("a", "b"):
            tracker = await store.get_or_create_tracker(sender, append_action_listen=False)
            for event in events:
                tracker.update(event, domain)
            await store.save(tracker)
            if index == 2:
                await store.save(tracker)  # nothing new: nothing stored
    copy_of_b = DialogueStateTracker.from_events("b", list((await store.retrieve("b")).events))
    copy_of_b.update(THANKS)
    await store.save(copy_of_b)


async def test_the_store_writes_what_rasa_s_save_writes(tmp_path, monkeypatch) -> None:
    domain = Domain.load("domain.yml")
    rows = {}
    for patches in ("none", "all"):
        monkeypatch.setenv(rasa_patches.PATCHES_ENV, patches)
        store = ResilientSQLTrackerStore(domain, dialect="sqlite", db=str(tmp_path / patches))
        try:
            await _converse(store, domain)
            rows[patches] = _rows(store)
            restored = await store.retrieve("a")
        finally:
            store.engine.dispose()
        assert restored.events[0].type_name == "session_started"  # the latest session only
    assert rows["all"] == rows["none"]
    stored = json.dumps([row[-1] for row in rows["all"]], ensure_ascii=False)
    assert "0912345678" not in stored and "001203004567" not in stored  # masked
    assert len(rows["all"]) == 2 * sum(len(t) for t in TURNS) + 1


async def test_the_prepared_statements_read_what_rasa_s_query_reads(tmp_path) -> None:
    domain = Domain.load("domain.yml")
    store = ResilientSQLTrackerStore(domain, dialect="sqlite", db=str(tmp_path / "t.db"))
    try:
        await _converse(store, domain)  # "a", "b": two sessions each
        no_session = await store.get_or_create_tracker("c", append_action_listen=False)
        for event in TURNS[1]:  # a conversation that never started a session
            no_session.update(event, domain)
        await store.save(no_session)
        checked = 0
        with store.session_scope() as session:
            for sender in ("a", "b", "c", "nobody"):
                for all_sessions in (False, True):
                    query = store._event_query(session, sender, all_sessions)
                    expected = [row.data for row in query.all()]
                    assert store._statements.data(session, sender, all_sessions) == expected
                    checked += len(expected)
                latest = store._event_query(session, sender, False).count()
                assert store._statements.count(session, sender) == latest
            assert len(store._statements.data(session, "a", False)) < len(
                store._statements.data(session, "a", True)
            )
        assert checked > 0
    finally:
        store.engine.dispose()


async def test_the_sqlite_store_keeps_one_connection_in_wal_mode(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(rasa_patches.PATCHES_ENV, "all")
    database = tmp_path / "tracker.sqlite3"
    store = ResilientSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(database))
    connections = []
    sa.event.listen(store.engine, "connect", lambda *_: connections.append(1))
    try:
        for n in range(3):
            tracker = await store.get_or_create_tracker(f"s{n}")
            tracker.update(UserUttered("xin chào"))
            await store.save(tracker)
        with store.engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            synchronous = connection.exec_driver_sql("PRAGMA synchronous").scalar()
    finally:
        store.engine.dispose()
    assert mode == "wal" and synchronous == 1  # NORMAL
    assert len(connections) <= 1  # the kept connection (opened at start) serves every turn
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM events").fetchone()[0] > 0


# --- the model's graph, run sequentially ----------------------------------------------------------


def test_the_sequential_runner_computes_what_dask_computes() -> None:
    import dask

    calls: list[str] = []

    def node(name: str):
        def run(*inputs):
            calls.append(name)
            return (name, [value for _, value in inputs])

        return run

    graph = {
        "a": (node("a"), "__input__"),
        "b": (node("b"), "a"),
        "c": (node("c"), "a", "b"),
        "d": (node("d"), "c", "b"),
        "__input__": ("__input__", {"unhashable": ["message"]}),
        "unused": (node("unused"), "a"),
    }
    expected = dask.get(graph, ["d", "b"])
    calls.clear()
    assert rasa_patches.run_sequentially(graph, ["d", "b"]) == list(expected)
    assert sorted(calls) == ["a", "b", "c", "d"]  # each needed node once, nothing else


async def test_the_model_answers_as_with_dask(monkeypatch) -> None:
    """The trained model (`make train`): the same parse and the same next actions."""
    from rasa.core.agent import Agent
    from rasa.engine.runner.dask import DaskGraphRunner

    from scripts.stack import DEFAULT_MODEL

    if not DEFAULT_MODEL.exists():
        pytest.fail(f"no trained model at {DEFAULT_MODEL}: `make test` trains it first")
    agent = Agent.load(str(DEFAULT_MODEL))
    texts = ["đổi bằng lái xe cần giấy tờ gì", "lệ phí bao nhiêu", "xin chào", "asdfgh"]
    results = {}
    for runner in ("dask", "sequential"):
        run = rasa_patches._ORIGINAL_RUN if runner == "dask" else rasa_patches._run
        monkeypatch.setattr(DaskGraphRunner, "run", run)
        parses = [await agent.parse_message(text) for text in texts]
        tracker = DialogueStateTracker.from_events("t", [ActionExecuted("action_listen")])
        predictions = []
        for text, parse in zip(texts, parses, strict=True):
            tracker.update(UserUttered(text, parse["intent"], parse["entities"], parse))
            prediction = agent.processor.predict_next_with_tracker(tracker)
            predictions.append((prediction["scores"], prediction["policy"]))
            tracker.update(ActionExecuted("action_listen"))
        results[runner] = (parses, predictions)
    assert results["sequential"] == results["dask"]
