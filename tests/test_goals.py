"""Goal grouping: projects, not topics, in any language (pure linker; one build on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import pytest
from sqlalchemy import select

from stephanie_ray.casebooks.build import _slug, build_casebooks, casebook_name
from stephanie_ray.casebooks.goal_evidence import CJK, IDENT, NAME, WORD, extract_evidence, strength
from stephanie_ray.casebooks.goal_language import detect_language
from stephanie_ray.casebooks.goal_linker import GoalLinker
from stephanie_ray.db.models import Case, CaseBook, Conversation
from test_cli import REPO

sys.path.insert(0, str(REPO))
from benchmarks.goals import chatgpt_export  # noqa: E402

# (id, project, lang, title, user messages): one person's history, oldest first. Projects: a Dutch
# bakery's webshop moving from PHP to Django (Dutch and English), a SQLite job queue (two English
# paraphrases); everything else is its own goal: Korean and Dutch everyday questions, and
# unrelated Python questions that share nothing but the language and the topic.
HISTORY = [
    ("shop-nl-1", "webshop", "nl", "Webshop omzetten naar Django",
     ["Ik wil de webshop van bakkerij-jansen.nl omzetten van PHP naar Django. De bestellingen staan in de tabel "
      "`shop_orders` en worden geëxporteerd door bestellingen_export.php. Hoe begin ik?"]),
    ("ko-travel", "ko-travel", "ko", "제주도 여행",
     ["제주도 3박 4일 여행 일정을 추천해줘. 렌터카 없이 버스로 다니고 싶어."]),
    ("py-reverse", "py-reverse", "en", "Reverse a list",
     ["How do I reverse a list in Python without changing the original list?"]),
    ("queue-en-1", "queue", "en", "Durable job queue",
     ["How do I build a durable job queue on SQLite? The table is `jobs_queue` and workers run "
      "worker_loop.py; jobs must be retried with exponential backoff."]),
    ("nl-bread", "nl-bread", "nl", "Zuurdesembrood",
     ["Hoe maak ik een goed zuurdesembrood? Mijn deeg rijst niet genoeg en de korst is te zacht."]),
    ("ko-excel", "ko-excel", "ko", "엑셀 합계",
     ["엑셀에서 여러 시트의 합계를 한 번에 구하는 방법을 알려줘."]),
    ("py-sort", "py-sort", "en", "Sort a dictionary",
     ["How do I sort a dictionary by value in Python and keep the top five keys?"]),
    ("shop-en-2", "webshop", "en", "Migrating orders",
     ["I'm moving the bakkerij-jansen.nl shop to Django. How should the shop_orders table become a Django "
      "model, and what replaces bestellingen_export.php?"]),
    ("nl-tax", "nl-tax", "nl", "Belastingaangifte",
     ["Moet ik als zzp'er de kosten van mijn fiets opgeven bij de belastingaangifte?"]),
    ("ko-cook", "ko-cook", "ko", "김치찌개",
     ["김치찌개를 맛있게 끓이는 방법을 알려줘. 돼지고기 대신 참치를 넣어도 될까?"]),
    ("queue-en-2", "queue", "en", "Retries in my worker",
     ["Jobs in jobs_queue sometimes run twice when worker_loop.py crashes. How do I make the retry "
      "with backoff safe against a crash in the middle of a job?"]),
    ("py-csv", "py-csv", "en", "Read a CSV",
     ["What is the fastest way to read a large CSV file in Python?"]),
]


def _evidence(row):
    return extract_evidence(row[3], row[4])


def _link(rows, threshold=None):
    linker = GoalLinker(threshold or _default_threshold())
    for row in rows:
        linker.add(row[0], _evidence(row))
    return linker


def _default_threshold() -> float:
    from stephanie_ray.config import CaseBooksConfig

    return CaseBooksConfig().goal_threshold


def _groups(group_of: dict) -> list[set]:
    out = defaultdict(set)
    for key, group in group_of.items():
        out[group].add(key)
    return sorted((g for g in out.values()), key=lambda g: sorted(g))


# ----------------------------------------------------------------------------- language


@pytest.mark.parametrize("text,code", [
    ("How do I sort a dictionary by value in Python?", "en"),
    ("Hoe maak ik een goed zuurdesembrood? Mijn deeg rijst niet.", "nl"),
    ("Wie kann ich die Datei in Python öffnen und lesen?", "de"),
    ("엑셀에서 `SUMIF` 함수를 쓰는 방법을 알려줘", "ko"),  # code and Latin names do not decide the script
    ("如何在 Python 中读取 CSV 文件？", "zh"),
    ("Pythonでリストを逆順にする方法を教えてください", "ja"),
    ("Как отсортировать словарь по значению?", "ru"),
    ("", "und"),
])
def test_language_of_a_text(text, code):
    assert detect_language(text).code == code


def test_evidence_marks_cross_languages_and_words_stay_in_theirs():
    nl = extract_evidence("Webshop", ["Zet de tabel `shop_orders` en export.php van https://www.bakkerij-jansen.nl/admin "
                                      "over naar Django."])
    assert nl.lang.code == "nl"
    assert {"shop_orders", "export.php", "bakkerij-jansen.nl", "django"} <= set(nl.marks)
    assert "tabel" in nl.words and "de" not in nl.words  # stop-words are no evidence
    ko = extract_evidence("김치찌개", ["김치찌개 끓이는 방법, pandas 로 정리"])
    assert ko.lang.code == "ko" and "pandas" in ko.marks  # a Latin name in Korean prose is a mark
    assert "김치찌개" in ko.words and "끓이" in ko.words  # a Korean word is matched by its stem (particle off)


# ----------------------------------------------------------------------------- failure classes


def test_korean_words_are_stems_not_bigram_fragments():
    ev = extract_evidence("", ["네덜란드에서 결혼식을 준비하고 있어. 추천해줘"])
    assert "네덜란드" in ev.words and not {"네덜", "덜란", "란드"} & set(ev.words)  # one word, counted once
    assert "결혼식" in ev.words
    assert ev.words["네덜란드"] < 0.75 * WORD  # a common word of the language (Zipf > 4) counts for little


def test_japanese_bigrams_do_not_span_hiragana_and_unlisted_fragments_are_weak():
    ev = extract_evidence("", ["この文を直してください。文法を勉強中です。"])
    assert "くだ" not in ev.words and "ださ" not in ev.words  # hiragana is grammar, never a term
    assert ev.words.get("文法", 0) <= CJK < WORD  # CJK bigrams are the weakest evidence


def test_common_german_words_count_for_little():
    ev = extract_evidence("", ["Kannst du mir erklären, wie ich die Wohnung in Berlin anmelde? Mir fehlt die "
                               "Steuer-ID und ich heiße Daan."])
    assert ev.lang.code == "de"
    assert ev.words.get("kannst", 0) < 0.05 * WORD and ev.words.get("heiße", 0) < 0.75 * WORD  # (wordfreq folds ß)
    assert ev.words.get("erklären", 0) < 0.5 * WORD


def test_public_product_names_are_names_not_project_identifiers():
    # camel case alone does not make a project identifier: BigQuery and PostgreSQL are public products (a
    # general word list holds them, however rarely), LumenBot and FitTrack are a person's coined names
    assert strength("LumenBot", "en") == strength("FitTrack", "en") == IDENT
    assert strength("BigQuery", "en") < 0.5 * IDENT and strength("PostgreSQL", "en") < 0.5 * IDENT
    assert strength("bigquery", "en") == strength("BigQuery", "en") <= NAME  # one name, however it is cased
    assert strength("kubernetes", "en") < strength("traefik-lab", "en")


def test_spanish_question_openers_do_not_make_names():
    ev = extract_evidence("", ["Tengo una pregunta. ¿Qué hago con las entradas de la Alhambra? ¡Hola! "
                               "Voy con Minji."])
    assert "qué" not in ev.marks and "hola" not in ev.marks
    assert "minji" in ev.marks  # a name in mid-sentence still is one


def test_decimals_and_versions_are_no_evidence_but_order_numbers_are():
    ev = extract_evidence("", ["RMSLE went from 0.41 to 0.29 after upgrading to 3.11; order 20240517 failed, "
                               "KvK 87654321"])
    assert "0.41" not in ev.marks and "0.29" not in ev.marks and "3.11" not in ev.marks
    assert ev.marks["20240517"] > 0 and ev.marks["87654321"] > 0


def test_generic_product_names_weigh_less_than_coined_project_names():
    ev = extract_evidence("", ["I deploy it with Django on Ubuntu and the bot is called Lumenbot, written in Rust."])
    assert ev.marks["lumenbot"] > 1.5 * ev.marks["django"]  # in general word lists: public, not the project's
    assert ev.marks["lumenbot"] > 1.5 * ev.marks["ubuntu"] and ev.marks["rust"] < ev.marks["django"]  # nl: rust


def test_the_persons_own_name_in_many_unrelated_conversations_counts_for_nothing():
    # the person signs unrelated letters with their name: the only thing these conversations share
    letters = ["Bezwaar tegen een parkeerboete op de Coolsingel, kenteken en datum staan erin. Daan Visser",
               "Write my landlord that the heating broke on Monday and nobody came. Daan Visser",
               "Opzeggen van het sportschoolabonnement per februari graag formeel. Daan Visser",
               "Complaint to the railway about the delayed Eurostar, refund form attached. Daan Visser",
               "Aanvraag bewonersvergunning parkeren, tweede auto, Schiedam-Noord. Daan Visser",
               "Thank-you note for the neighbours who watered the plants. Daan Visser"]
    linker = GoalLinker(_default_threshold())
    for i, text in enumerate(letters):
        linker.add(f"letter-{i}", extract_evidence("", [text]))
    assert len(set(linker.group_of.values())) == len(letters)
    assert linker.score("letter-4", "letter-5") == 0.0  # in 3+ separate goals: it is about the person, not a goal
    assert linker.score("letter-0", "letter-1") == 0.0  # (scores use today's counts)


def test_an_echo_alone_founds_no_link_but_strengthens_one():
    user_a = extract_evidence("Store sales merge", ["Merge train.csv with oil.csv for the Kaggle Favorita data"],
                              ["df = train.merge(stores, on='store_nbr')"])
    user_b = extract_evidence("Lag features", ["My lag_7 per store_nbr leaks; the Favorita horizon is 16 days"])
    other = extract_evidence("Django admin", ["How do I register a model in the admin?"],
                             ["class Lid(models.Model): naam = models.CharField(max_length=100)"])
    pasted = extract_evidence("Legacy models", ["inspectdb gave me `naam = models.CharField(max_length=100)`"])
    linker = GoalLinker(_default_threshold())
    for key, ev in (("a", user_a), ("b", user_b), ("django", other), ("pasted", pasted)):
        linker.add(key, ev)
    assert linker.score("django", "pasted") == 0.0  # only the assistant's API names link them: no link
    no_echo = GoalLinker(_default_threshold(), echo_weight=0.0)
    for key, ev in (("a", user_a), ("b", user_b)):
        no_echo.add(key, ev)
    assert linker.score("a", "b") > no_echo.score("a", "b") > 0  # favorita began it, store_nbr echoes


# ----------------------------------------------------------------------------- linking


def test_projects_are_found_and_topics_stay_apart():
    got = _groups(_link(HISTORY).group_of)
    assert {"shop-nl-1", "shop-en-2"} in got  # Dutch and English, linked by shared identifiers
    assert {"queue-en-1", "queue-en-2"} in got  # an English paraphrase pair sharing file and table names
    assert len(got) == len(HISTORY) - 2  # everything else alone: no Korean, Dutch or Python topic groups


def test_unrelated_korean_and_dutch_chats_are_not_merged():
    rows = [r for r in HISTORY if r[2] in ("ko", "nl") and r[1] != "webshop"]
    linker = _link(rows)
    assert len(set(linker.group_of.values())) == len(rows)
    for a in rows:
        for b in rows:
            if a is not b:
                assert linker.score(a[0], b[0]) < linker.threshold


def test_two_unrelated_python_questions_stay_apart():
    rows = [r for r in HISTORY if r[0].startswith("py-")]
    linker = _link(rows)
    assert len(set(linker.group_of.values())) == 3
    # even on their own, with no history to tell that "python" is common
    alone = _link(rows[:2])
    assert alone.score("py-reverse", "py-sort") < alone.threshold


def test_incremental_equals_one_shot_and_sticky_groups_stay():
    one_shot = _link(HISTORY).group_of
    first = _link(HISTORY[:6]).group_of
    linker = GoalLinker(_default_threshold())
    for row in HISTORY:  # a later build: the first build's groups are given, the rest decided
        linker.add(row[0], _evidence(row), group=first.get(row[0]))
    assert linker.group_of == one_shot
    # a given group is kept even where the evidence would say otherwise
    forced = GoalLinker(_default_threshold())
    forced.add("a", _evidence(HISTORY[0]))
    assert forced.add("b", _evidence(HISTORY[7]), group="elsewhere").group == "elsewhere"


def test_linking_is_deterministic():
    assert _link(HISTORY).group_of == _link(HISTORY).group_of


def test_threshold_outside_unit_interval_is_refused_and_one_links_nothing():
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        GoalLinker(0.0)
    assert len(set(_link(HISTORY, threshold=1.0).group_of.values())) == len(HISTORY)


def test_a_language_without_a_word_list_degrades_to_a_middle_prior():
    from stephanie_ray.casebooks.goal_language import UNKNOWN_PRIOR, prior, zipf

    assert zipf("qwerty", "xx") is None and prior("qwerty", "xx") == UNKNOWN_PRIOR
    assert prior("the", "en") == 0.0 and prior("lumenbot", "en") == 1.0


# ----------------------------------------------------------------------------- names


def test_names_keep_their_script_and_stay_unique_and_short():
    assert _slug("제주도 3박 4일 여행 일정") == "제주도-3박-4일-여행-일정"
    assert _slug("如何在 Python 中读取 CSV 文件？") == "如何在-python-中读取-csv-文件"
    assert _slug("Как отсортировать словарь?") == "как-отсортировать-словарь"
    assert _slug("हिन्दी में लिखें") == "हिन्दी-में-लिखें"  # vowel signs are marks, kept
    assert _slug("SQLite job_queue: retries!") == "sqlite-job-queue-retries"
    assert _slug("???") == "goal" and len(_slug("가" * 100)) == 32
    a = casebook_name("chat", "turn", "goal", goal_text="제주도 여행 " * 50, goal_id=2**62 + 1)
    b = casebook_name("chat", "turn", "goal", goal_text="제주도 여행 " * 50, goal_id=2**62 + 2**40)
    assert a != b and a.startswith("chat/turn/goal/제주도-여행-제주도") and len(a) <= 512


# ----------------------------------------------------------------------------- database


def _write_export(path, rows):
    labelled = [{"id": r[0], "project": r[1], "lang": r[2], "created": f"2025-01-{i + 1:02d}T10:00:00Z",
                 "title": r[3], "messages": [m for u in r[4] for m in
                                             ({"role": "user", "text": u}, {"role": "assistant", "text": "OK."})]}
                for i, r in enumerate(HISTORY) if r in rows]
    path.mkdir(parents=True)
    (path / "conversations.json").write_text(json.dumps(chatgpt_export(labelled)), encoding="utf-8")


def _book_members(db) -> list[set]:
    with db.session() as s:
        rows = s.execute(select(CaseBook.name, Conversation.external_id)
                         .join(Case, Case.casebook_id == CaseBook.id)
                         .join(Conversation, Conversation.id == Case.conversation_id)
                         .where(CaseBook.group_by == "goal").distinct()).all()
    books = defaultdict(set)
    for name, ext in rows:
        books[name].add(ext)
    return sorted(books.values(), key=lambda g: sorted(g)), sorted(books)


def test_goal_build_finds_projects_and_incremental_equals_one_shot(cfg, db, tmp_path):
    import copy

    from stephanie_ray.db import Database
    from stephanie_ray.ingest.importer import run_import

    cfg = copy.deepcopy(cfg)
    cfg.ingest.parallel = False
    _write_export(tmp_path / "old", HISTORY[:6])
    _write_export(tmp_path / "new", HISTORY[6:])
    run_import(cfg, db, [str(tmp_path / "old")])
    build_casebooks(cfg, db, mode="turn", group_by="goal")
    run_import(cfg, db, [str(tmp_path / "new")])
    second = build_casebooks(cfg, db, mode="turn", group_by="goal")
    assert second.failed == 0
    members, names = _book_members(db)
    assert members == _groups(_link(HISTORY).group_of)  # the build uses the pure linker's decisions
    assert any(n.startswith("chat/turn/goal/제주도-여행") for n in names)

    fresh = copy.deepcopy(cfg)
    fresh.db.url = f"sqlite:///{tmp_path / 'one_shot.sqlite'}"
    db2 = Database.from_config(fresh)
    try:
        from stephanie_ray.db.migrate import upgrade

        upgrade(db2.engine)
        run_import(fresh, db2, [str(tmp_path / "old"), str(tmp_path / "new")])
        build_casebooks(fresh, db2, mode="turn", group_by="goal")
        assert _book_members(db2) == (members, names)
    finally:
        db2.dispose()


def test_the_embedding_model_links_paraphrased_requests_only_within_the_languages_it_covers():
    """The bundled MiniLM is English-only: it may raise the score of two English conversations that already share
    evidence (the same request asked again in other words), never of a Dutch pair or of an English-Dutch one."""
    from stephanie_ray.casebooks.build import GoalSemantic
    from stephanie_ray.config import load_config

    cfg = load_config(None, {}, env={})
    sem = GoalSemantic.from_config(cfg)
    a = "How do I implement a durable job queue on SQLite in Python, with retries and exponential backoff?"
    b = ("Write a complete Python module for a SQLite-backed job queue: enqueue, claim with lease, complete, "
         "fail with exponential backoff.")
    c = "What should I cook tonight with leeks and potatoes?"
    nl = "Hoe bouw ik een duurzame taakwachtrij op SQLite in Python, met herhalingen en exponentiële backoff?"
    short = ("Are you trained by Microsoft?", "Are you trained by IBM?")  # a kind of question, not a project
    sem.add([(1, "en", a), (2, "en", b), (3, "en", c), (4, "nl", nl), (5, "nl", nl), (6, "en", short[0]),
             (7, "en", short[1])])
    assert sem(1, 2) >= cfg.casebooks.goal_semantic_floor > sem(1, 3)
    assert sem(1, 4) is None and sem(4, 5) is None  # not across languages, not in one it does not cover
    assert sem(6, 7) is None  # fewer than 8 distinct words: not compared
    assert GoalSemantic.from_config(load_config(None, {"casebooks.goal_semantic_languages": ""}, env={})) is None

    linker = GoalLinker(0.5, sem, cfg.casebooks.goal_semantic_floor)
    for key, text, lang in ((1, a, "en"), (2, b, "en"), (3, c, "en")):
        linker.add(key, extract_evidence("", [text]))
    assert linker.group_of[2] == 1 and linker.group_of[3] == 3
