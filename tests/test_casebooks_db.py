"""CaseBooks on real SQLite and PostgreSQL: the three modes, goal grouping, idempotency, the store."""

from __future__ import annotations

import copy
import json
import shutil
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.exc import IntegrityError

from stephanie_ray.casebooks.build import build_casebooks
from stephanie_ray.casebooks.progress import wilson_lower_bound
from stephanie_ray.casebooks.queries import list_casebooks, show_casebook
from stephanie_ray.casebooks.store import CaseBookStore
from stephanie_ray.db import Conversation, Message, Turn
from stephanie_ray.db.base import utcnow
from stephanie_ray.db.models import Case, CaseABResult, CaseBook, CaseScorable, Goal
from stephanie_ray.ingest.importer import run_import

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def serial(cfg):
    cfg = copy.deepcopy(cfg)
    cfg.ingest.parallel = False
    return cfg


def table_counts(db) -> dict[str, int]:
    with db.session() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m))
                for m in (Goal, CaseBook, Case, CaseScorable)}


def case_snapshot(db) -> list[tuple]:
    with db.session() as s:
        return sorted(s.execute(select(CaseBook.name, Case.case_key, Case.position, Case.goal_id, Case.prompt_text)
                                .join(CaseBook, CaseBook.id == Case.casebook_id)).all())


def assert_scorables_reference_rows(db) -> None:
    """Every scorable points at an imported row of its type (references, not copies)."""
    model = {"message": Message, "turn": Turn, "conversation": Conversation}
    with db.session() as s:
        for kind, m in model.items():
            ids = set(s.scalars(select(CaseScorable.scorable_id).where(CaseScorable.scorable_type == kind)))
            found = set(s.scalars(select(m.id).where(m.id.in_(ids)))) if ids else set()
            assert ids == found, f"{kind} scorables pointing nowhere: {ids - found}"


@pytest.fixture
def examples_db(cfg, db):
    s = run_import(serial(cfg), db, [str(EXAMPLES)])
    assert s.ok and s.conversations_new == 7
    return db


# ----------------------------------------------------------------------------- modes


def test_three_modes_on_examples_and_rebuild_changes_nothing(cfg, examples_db):
    db = examples_db
    turn = build_casebooks(cfg, db, mode="turn", group_by="conversation")
    assert (turn.conversations_converted, turn.casebooks_new, turn.failed) == (7, 7, 0)
    with db.session() as s:
        n_turns = s.scalar(select(func.count()).select_from(Turn))
        responses = s.scalar(select(func.count()).select_from(CaseScorable).where(CaseScorable.role == "response"))
        # the ChatGPT example's first prompt was regenerated: one case, two ranked answers
        gpt = s.scalars(select(CaseBook).where(CaseBook.name.like("chat/turn/chatgpt/%"))).all()
        first = min((c for cb in gpt for c in cb.cases), key=lambda c: c.created_at)
        assert sorted(sc.rank for sc in first.scorables if sc.role == "response") == [0, 1]
        # wherever one of a prompt's answers is on the active thread, it is ranked first
        multi = 0
        for case in s.scalars(select(Case)):
            answers = sorted((sc for sc in case.scorables if sc.role == "response"), key=lambda sc: sc.rank)
            flags = [s.get(Turn, sc.scorable_id).active for sc in answers]
            multi += len(answers) > 1
            if any(flags):
                assert flags[0] is True and flags.count(True) == 1
        assert multi == 2  # ChatGPT's and Claude's regenerated answers
    assert responses == n_turns == 14  # every turn is a scorable once, no duplicates in the examples
    conv = build_casebooks(cfg, db, mode="conversation", group_by="conversation")
    msg = build_casebooks(cfg, db, mode="message", group_by="conversation")
    assert conv.cases_new == 7 and msg.cases_new == 28 and msg.skipped == {"messages_hidden": 2}
    assert_scorables_reference_rows(db)

    before, snap = table_counts(db), case_snapshot(db)
    for mode in ("turn", "conversation", "message"):
        again = build_casebooks(cfg, db, mode=mode, group_by="conversation")
        assert (again.cases_new, again.scorables_new, again.casebooks_new, again.cases_reordered) == (0, 0, 0, 0)
    assert table_counts(db) == before and case_snapshot(db) == snap


def test_goal_grouping_links_the_same_goal_across_providers(cfg, examples_db):
    db = examples_db
    out = build_casebooks(cfg, db, mode="turn", group_by="goal")
    assert (out.goal_groups, out.cross_provider_groups, out.failed) == (2, 2, 0)
    with db.session() as s:
        books = list_casebooks(s, group_by="goal")
        assert sorted(tuple(b["providers"]) for b in books) == [
            ("chatgpt", "claude", "deepseek", "qwen"), ("chatgpt", "deepseek", "gemini")]
        for b in books:  # a trajectory: cases in time order, positions 0..n-1
            cases = CaseBookStore(s).get_cases(b["id"])
            assert [c.position for c in cases] == list(range(len(cases)))
            times = [c.created_at for c in cases]
            assert times == sorted(times)
            assert len({c.goal_id for c in cases}) == 1  # one goal per curriculum
    # a threshold of 1.0 only links identical goals: every conversation is its own group
    strict = copy.deepcopy(cfg)
    strict.casebooks.goal_threshold = 1.0
    strict.casebooks.tag = "strict"
    assert build_casebooks(strict, db, mode="turn", group_by="goal").goal_groups == 7
    # rebuilding changes nothing
    snap = case_snapshot(db)
    again = build_casebooks(cfg, db, mode="turn", group_by="goal")
    assert (again.cases_new, again.casebooks_new) == (0, 0) and case_snapshot(db) == snap


def test_goal_groups_are_stable_when_data_arrives_later(cfg, db, tmp_path):
    """Importing in two steps and building after each gives the same CaseBooks as one build at the end."""
    part1, part2 = tmp_path / "p1", tmp_path / "p2"
    shutil.copytree(EXAMPLES / "chatgpt", part1 / "chatgpt")
    for name in ("claude", "deepseek", "qwen", "gemini"):
        shutil.copytree(EXAMPLES / name, part2 / name)
    run_import(serial(cfg), db, [str(part1)])
    first = build_casebooks(cfg, db, mode="turn", group_by="goal")
    assert first.goal_groups == 2 and first.cross_provider_groups == 0
    run_import(serial(cfg), db, [str(part2)])
    second = build_casebooks(cfg, db, mode="turn", group_by="goal")
    assert second.casebooks_new == 0 and second.cross_provider_groups == 2  # newcomers joined the groups
    incremental = case_snapshot(db)

    fresh = copy.deepcopy(cfg)
    fresh.run.runs_dir = str(tmp_path / "fresh")
    fresh.db.url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    from stephanie_ray.db import Database

    db2 = Database.from_config(fresh)
    try:
        run_import(serial(fresh), db2, [str(EXAMPLES)])
        build_casebooks(fresh, db2, mode="turn", group_by="goal")
        assert case_snapshot(db2) == incremental
    finally:
        db2.dispose()


def test_turn_hash_dedup_inside_a_casebook(cfg, db, tmp_path):
    """The same exchange exported twice under different conversation ids enters a goal CaseBook once."""
    data = json.loads((EXAMPLES / "claude" / "conversations.json").read_text())
    twin = copy.deepcopy(data)
    for conv in twin:
        conv["uuid"] = conv["uuid"] + "-copy"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "conversations.json").write_text(json.dumps(data))
    (tmp_path / "b" / "conversations.json").write_text(json.dumps(twin))
    assert run_import(serial(cfg), db, [str(tmp_path / "a"), str(tmp_path / "b")]).conversations_new == 2
    out = build_casebooks(cfg, db, mode="turn", group_by="goal")
    with db.session() as s:
        n_turns = s.scalar(select(func.count()).select_from(Turn))
        keys = list(s.scalars(select(CaseScorable.dedup_key).where(CaseScorable.dedup_key.is_not(None))))
    assert out.goal_groups == 1 and out.duplicates_skipped == n_turns // 2 and out.cases_duplicate > 0
    assert len(keys) == len(set(keys)) == n_turns // 2
    # the database enforces it too: a second scorable with a key already in the CaseBook is refused
    with pytest.raises(IntegrityError):
        with db.session() as s:
            sc = s.scalars(select(CaseScorable).where(CaseScorable.dedup_key.is_not(None))).first()
            s.execute(insert(CaseScorable), [{"id": sc.id + 1, "case_id": sc.case_id, "casebook_id": sc.casebook_id,
                                              "scorable_type": "turn", "scorable_id": sc.scorable_id + 1,
                                              "role": "response", "dedup_key": sc.dedup_key, "meta": {},
                                              "created_at": utcnow()}])


def test_all_modes_on_every_sample(cfg, db, samples):
    s = run_import(serial(cfg), db, [str(samples)])
    assert s.ok, s.errors
    for mode in ("conversation", "turn", "message"):
        for group_by in ("conversation", "goal"):
            out = build_casebooks(cfg, db, mode=mode, group_by=group_by)
            assert out.failed == 0, out.errors
            assert out.cases_new > 0
            # every conversation is accounted for: converted, or skipped with a reason
            skipped_convs = sum(v for k, v in out.skipped.items() if k.startswith("conversations_"))
            assert out.conversations_converted + skipped_convs == out.conversations_seen, out.skipped
    assert_scorables_reference_rows(db)
    with db.session() as s:  # providers of the samples all present in turn-mode CaseBooks
        providers = {p for b in list_casebooks(s, limit=10_000, mode="turn", group_by="conversation")
                     for p in b["providers"]}
        assert providers == set(s.scalars(select(Conversation.provider).distinct()))


def test_bad_rows_are_skipped_never_a_crash(cfg, db):
    """Conversations written directly with no answer, empty texts, and a parent that does not exist."""
    now = utcnow()

    def m(i, conv, parent, role, text, pos):
        return {"id": i, "conversation_id": conv, "external_id": f"m{i}", "parent_id": parent, "role": role,
                "text": text, "content_type": "text", "blocks": [], "hidden": False, "active": True,
                "tool_call": False, "created_at": now + timedelta(seconds=pos), "model": None, "position": pos,
                "depth": pos, "meta": {}}

    with db.session() as s:
        s.execute(insert(Conversation), [
            {"id": c, "provider": "chatgpt", "external_id": f"c{c}", "title": t, "created_at": now, "updated_at": now,
             "models": [], "source_file": "", "message_count": 0, "meta": {}}
            for c, t in ((1, "no answer"), (2, "empty"), (3, "orphan"), (4, ""))])
        s.execute(insert(Message), [m(11, 1, None, "user", "anyone?", 0),
                                    m(21, 2, None, "user", "", 0), m(22, 2, 21, "assistant", "", 1),
                                    m(31, 3, None, "user", "fine", 0), m(32, 3, 31, "assistant", "ok", 1),
                                    m(33, 3, 999, "user", "lost", 2), m(34, 3, 33, "assistant", "lost too", 3)])
        s.execute(insert(Turn), [{"id": 2122, "conversation_id": 2, "user_message_id": 21, "assistant_message_id": 22,
                                  "turn_hash": "e", "active": True, "position": 0},
                                 {"id": 3132, "conversation_id": 3, "user_message_id": 31, "assistant_message_id": 32,
                                  "turn_hash": "f", "active": True, "position": 0},
                                 {"id": 3334, "conversation_id": 3, "user_message_id": 33, "assistant_message_id": 34,
                                  "turn_hash": "g", "active": True, "position": 1}])
    for group_by in ("conversation", "goal"):
        out = build_casebooks(cfg, db, mode="turn", group_by=group_by)
        assert out.failed == 0 and out.conversations_converted == 1 and out.cases_new == 1
        assert out.skipped["conversations_no_answer"] == 3  # no answer at all, or only empty/orphaned ones
        assert out.skipped["messages_missing_parent"] == 2  # the orphan and its answer below it


# ----------------------------------------------------------------------------- the store


@contextmanager
def count_statements(db):
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def _fill(store: CaseBookStore, cb_id: int, goal_id: int, n: int, start: int = 0) -> list[Case]:
    cases = []
    for i in range(start, start + n):
        cases.append(store.add_case(cb_id, prompt_text=f"attempt {i}", goal_id=goal_id, agent_name="tester",
                                    case_key=f"k{i}", created_at=utcnow() + timedelta(seconds=i),
                                    accepted=i % 2 == 0,
                                    scorables=[{"scorable_type": "message", "scorable_id": 1000 + i, "role": "prompt"},
                                               {"scorable_type": "turn", "scorable_id": 2000 + i, "role": "response",
                                                "rank": 0, "dedup_key": f"h{i}"}]))
    return cases


def test_store_scopes_cases_goal_state_and_ab(cfg, db):
    with db.session() as s:
        store = CaseBookStore.from_config(s, cfg)
        a = store.ensure_casebook_scope(pipeline_run_id=7, agent_name="pacs", tag="nightly")
        assert store.ensure_casebook_scope(pipeline_run_id=7, agent_name="pacs", tag="nightly").id == a.id
        b = store.ensure_casebook_scope(pipeline_run_id=8, agent_name="pacs", tag="nightly")
        assert b.id != a.id and (a.pipeline_run_id, a.agent_name, a.tag) == (7, "pacs", "nightly")
        goal = store.ensure_goal("Build a durable queue")
        assert store.ensure_goal("build a  durable queue").id == goal.id
        c0, c1, c2 = _fill(store, a.id, goal.id, 3)
        assert [c.position for c in (c0, c1, c2)] == [0, 1, 2]
        assert store.add_case(a.id, prompt_text="again", case_key="k1").id == c1.id  # idempotent by key
        got = store.get_case(c1.id)
        assert sorted((sc.role, sc.scorable_type, sc.scorable_id) for sc in got.scorables) == [
            ("prompt", "message", 1001), ("response", "turn", 2001)]
        # accepted-only: c0 and c2 were added accepted, c1 not (yet)
        assert {c.id for c in store.recent_cases(a.id, accepted_only=True)} == {c0.id, c2.id}

        st = store.upsert_goal_state(a.id, goal.id, c0.id, 0.5)
        assert (st.champion_case_id, st.champion_quality, st.run_ix, st.wins, st.losses) == (c0.id, 0.5, 1, 0, 0)
        st = store.upsert_goal_state(a.id, goal.id, c1.id, 0.4, only_if_better=True, improved=False, delta=-0.1)
        assert st.champion_case_id == c0.id and (st.wins, st.losses) == (0, 1) and st.avg_delta == pytest.approx(-0.1)
        st = store.upsert_goal_state(a.id, goal.id, c1.id, 0.4, only_if_better=False)  # forced promotion
        assert st.champion_case_id == c1.id
        st = store.upsert_goal_state(a.id, goal.id, c2.id, 0.9, only_if_better=True, delta=0.5)  # improved from delta
        alpha = cfg.casebooks.delta_ema_alpha
        assert st.champion_case_id == c2.id and (st.wins, st.losses) == (1, 1)
        assert st.avg_delta == pytest.approx((1 - alpha) * -0.1 + alpha * 0.5)
        assert st.trust == pytest.approx(wilson_lower_bound(1, 2, cfg.casebooks.trust_z))
        assert [h["case_id"] for h in st.meta["history"]] == [c0.id, c1.id, c2.id]

        ab, st = store.record_ab_result(a.id, goal.id, c2.id, c1.id, baseline_quality=0.9, candidate_quality=0.95)
        assert ab.improved and ab.delta == pytest.approx(0.05) and st.champion_case_id == c1.id
        assert store.get_case(c1.id).accepted is True
        ab, st = store.record_ab_result(a.id, goal.id, c1.id, c0.id, 0.95, 0.2)
        assert not ab.improved and st.champion_case_id == c1.id and (st.wins, st.losses) == (2, 2)
        assert s.scalar(select(func.count()).select_from(CaseABResult)) == 2

        # the same goal in another CaseBook is the pool
        (other,) = _fill(store, b.id, goal.id, 1, start=10)
        pool = store.pool_for_goal(goal.id, exclude_casebook_id=a.id)
        assert [c.id for c in pool] == [other.id] and pool[0].casebook.id == b.id

        recent = store.recent_cases(a.id, limit=2)
        assert recent[0].id == c1.id  # the champion first, then the newest
        assert recent[1].id == c2.id
        # the A/B win accepted c1; the champion (c1) still comes first among accepted cases
        assert [c.id for c in store.recent_cases(a.id, accepted_only=True)] == [c1.id, c2.id, c0.id]

        store.set_case_qualities({c0.id: 0.2, c1.id: 0.5, c2.id: 0.9})
        prog = store.progress(a.id)
        assert prog.scored == 3 and prog.slope == pytest.approx(0.35) and prog.improvement_rate == 1.0
        assert s.get(CaseBook, a.id).meta["progress"]["best"] == 0.9


def test_pool_and_recent_queries_do_not_grow_with_data(cfg, db):
    """No N+1: the statements for pool and recent-cases queries stay constant as cases grow."""
    with db.session() as s:
        store = CaseBookStore(s)
        goal = store.ensure_goal("a goal")
        books = [store.ensure_casebook(f"book-{i}", goal_id=goal.id) for i in range(3)]
        for i, cb in enumerate(books):
            _fill(store, cb.id, goal.id, 3, start=1000 * (i + 1))
        store.upsert_goal_state(books[0].id, goal.id, None, None)
    sizes = {}
    for round_, extra in enumerate((0, 60)):
        with db.session() as s:
            store = CaseBookStore(s)
            if extra:
                for i, cb in enumerate(books):
                    _fill(store, cb.id, goal.id, extra, start=100 * (i + 1))
        with db.session() as s:
            store = CaseBookStore(s)
            with count_statements(db) as seen:
                pool = store.pool_for_goal(goal.id, exclude_casebook_id=books[0].id, limit=1000)
                _ = [(c.casebook.name, [sc.role for sc in c.scorables]) for c in pool]
            n_pool = len(seen)
            with count_statements(db) as seen:
                recent = store.recent_cases(books[0].id, limit=1000)
                _ = [[sc.scorable_id for sc in c.scorables] for c in recent]
            sizes[round_] = (n_pool, len(seen), len(pool), len(recent))
    assert sizes[1][2] > sizes[0][2] and sizes[1][3] > sizes[0][3]  # more data came back ...
    assert sizes[0][:2] == sizes[1][:2]  # ... with the same number of statements
    assert sizes[0][0] <= 4 and sizes[0][1] <= 3  # (SQLite counts its BEGIN as a statement)


def test_show_casebook_lists_trajectory_with_texts(cfg, examples_db):
    build_casebooks(cfg, examples_db, mode="turn", group_by="goal")
    with examples_db.session() as s:
        name = max(list_casebooks(s), key=lambda b: b["cases"])["name"]
        book = show_casebook(s, name)
    assert book["mode"] == "turn" and len(book["cases"]) == 7
    assert [c["position"] for c in book["cases"]] == list(range(7))
    texts = [sc["text"] for c in book["cases"] for sc in c["scorables"] if sc["role"] == "response"]
    assert all(texts) and any("lease" in t for t in texts)
    assert book["progress"]["attempts"] == 7 and book["progress"]["scored"] == 0
