"""The vocabulary files (procedures_db/vocabulary/*.yml) and their one loader."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from procedures_db.settings import PROJECT_ROOT, get_settings
from procedures_db.text import fold_accents
from procedures_db.vocabulary import (
    FACTS,
    SCHEMA,
    VOCABULARY_DIR,
    Vocabulary,
    VocabularyError,
    load_vocabulary,
    read_vocabulary,
)


@pytest.fixture(scope="module")
def shipped() -> Vocabulary:
    return read_vocabulary()


def test_every_file_loads_with_a_header(shipped: Vocabulary) -> None:
    assert sorted(path.name for path in VOCABULARY_DIR.glob("*.yml")) == sorted(SCHEMA)
    for name in SCHEMA:
        first = (VOCABULARY_DIR / name).read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# "), f"{name} needs a comment header saying how it is used"


def test_types(shipped: Vocabulary) -> None:
    for field in ("concepts", "citizen_terms", "default_action_terms", "residence_terms"):
        table = getattr(shipped, field)
        assert table and all(isinstance(k, str) and isinstance(v, str) for k, v in table.items())
    assert shipped.citizen_terms["gplx"] == "giấy phép lái xe"
    assert shipped.chat_abbreviations["ko"] == "không"
    assert isinstance(shipped.stop_words, frozenset) and "ạ" in shipped.stop_words
    assert isinstance(shipped.actions, tuple) and "cấp lại" in shipped.actions
    assert shipped.narrow_variants["có yếu tố nước ngoài"] == ("nước ngoài", "yếu tố")
    assert shipped.ordinals["hai"] == 2
    with pytest.raises(TypeError):
        shipped.citizen_terms["x"] = "y"  # read-only: one process-wide copy
    with pytest.raises(AttributeError):
        shipped.code_pattern = "x"  # frozen


def test_one_question_phrase_list_with_facts(shipped: Vocabulary) -> None:
    asked = set(shipped.question_phrases.values())
    assert asked <= {*FACTS, None}
    assert shipped.question_phrases["ở đâu"] == "place"
    assert shipped.question_phrases["lệ phí"] == "fee"
    assert shipped.question_phrases["cho em hỏi"] is None
    cues = shipped.fact_cues()
    assert "overview" not in cues and set(cues) == set(FACTS) - {"overview"}
    assert all(cues.values()), "every fact needs at least one cue"
    assert shipped.kept_by_search <= set(shipped.question_phrases)
    assert set(shipped.search_question_phrases()) == set(shipped.question_phrases) - set(
        shipped.kept_by_search
    )


def test_life_events(shipped: Vocabulary) -> None:
    events = shipped.life_events
    assert len(events) >= 5
    assert any(fold_accents(phrase) != phrase for phrase in events), "written with accents"
    by_alternative = {alt: words for key, words in events.items() for alt in key.split("|")}
    assert all(by_alternative), "no empty alternative"
    assert by_alternative["mới sinh"] == "đăng ký khai sinh"
    assert by_alternative["qua đời"] == "đăng ký khai tử"


def test_code_pattern_is_the_nlu_regex(shipped: Vocabulary) -> None:
    data = yaml.safe_load((PROJECT_ROOT / "data" / "nlu" / "regex.yml").read_text("utf-8"))
    entry = next(item for item in data["nlu"] if item.get("regex") == "procedure_code")
    examples = [line.removeprefix("- ").strip() for line in entry["examples"].splitlines()]
    assert examples == [shipped.code_pattern]
    # The plain pattern works as it is in Rasa's extractor (re.finditer) ...
    assert re.search(examples[0], "mã 1.001193 ạ").group(0) == "1.001193"
    # ... and the compiled one keeps codes whole.
    text = "1.001193, 12.000001. 1.0011934 321.001193 3.000347?"
    assert shipped.codes_in(text) == ["1.001193", "12.000001", "3.000347"]
    assert shipped.labelled_code_re.sub("#", "mã số thủ tục: 1.001193 ạ") == "# ạ"


def _copy_shipped(tmp_path: Path) -> Path:
    folder = tmp_path / "vocabulary"
    shutil.copytree(VOCABULARY_DIR, folder)
    return folder


def test_extra_folder_is_merged_over_the_shipped_files(tmp_path: Path) -> None:
    extra = tmp_path / "province"
    extra.mkdir()
    (extra / "citizen_terms.yml").write_text(
        'citizen_terms:\n  "giấy xác nhận cư trú": "xác nhận thông tin về cư trú"\n'
        '  "gplx": "giấy phép lái xe quốc tế"\ngoods_words: [xe, "gạo"]\n',
        encoding="utf-8",
    )
    (extra / "question_phrases.yml").write_text('phrases:\n  "ở mô": place\n', "utf-8")
    (extra / "life_events.yml").write_text("", encoding="utf-8")  # empty: nothing to merge

    merged = read_vocabulary(VOCABULARY_DIR, extra)
    shipped = read_vocabulary()
    assert merged.citizen_terms["giấy xác nhận cư trú"] == "xác nhận thông tin về cư trú"
    assert merged.citizen_terms["gplx"] == "giấy phép lái xe quốc tế"  # replaced
    assert len(merged.citizen_terms) == len(shipped.citizen_terms) + 1
    assert merged.goods_words == shipped.goods_words | {"gạo"}
    assert merged.question_phrases["ở mô"] == "place"
    assert "ở mô" in merged.fact_cues()["place"]
    assert merged.default_action_terms == shipped.default_action_terms  # not in the extra file
    assert merged.life_events == shipped.life_events


def test_extra_folder_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "abbreviations.yml").write_text('chat:\n  "ckc": "chứng khoán"\n', "utf-8")
    monkeypatch.setenv("VOCABULARY_EXTRA_DIR", str(tmp_path))
    get_settings.cache_clear()
    load_vocabulary.cache_clear()
    try:
        assert get_settings().vocabulary_extra_dir == tmp_path
        assert load_vocabulary().chat_abbreviations["ckc"] == "chứng khoán"
    finally:
        monkeypatch.delenv("VOCABULARY_EXTRA_DIR")
        get_settings.cache_clear()
        load_vocabulary.cache_clear()
    assert "ckc" not in load_vocabulary().chat_abbreviations


def test_search_uses_the_province_words(tmp_path: Path) -> None:
    """End to end in a fresh process: a word only the extra folder knows finds its procedure."""
    (tmp_path / "citizen_terms.yml").write_text(
        'citizen_terms:\n  "giấy chào đời": "đăng ký khai sinh"\n', encoding="utf-8"
    )
    script = (
        "import json\n"
        "from procedures_db.search import IndexRow, build_index\n"
        "rows = [IndexRow('1.000001', 'Đăng ký khai sinh', 'Hộ tịch', ('xa',), None),\n"
        "        IndexRow('1.000002', 'Đăng ký kết hôn', 'Hộ tịch', ('xa',), None)]\n"
        "hits = build_index(rows).search('làm giấy chào đời', 3, None, None, None)\n"
        "print(json.dumps([h.code for h in hits]))\n"
    )

    def codes(extra: str | None) -> list[str]:
        env = {k: v for k, v in os.environ.items() if k != "VOCABULARY_EXTRA_DIR"}
        if extra:
            env["VOCABULARY_EXTRA_DIR"] = extra
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(done.stdout)

    assert codes(None) == []  # "giấy chào đời" names no procedure in the shipped words
    assert codes(str(tmp_path))[:1] == ["1.000001"]


@pytest.mark.parametrize(
    ("name", "text", "entry", "problem"),
    [
        (
            "question_phrases.yml",
            'phrases:\n  "ở đâu": "where"\nkept_by_search: []\naccented_only: []\n'
            "online_level_words: []\n",
            "phrases: ở đâu",
            "unknown fact 'where'",
        ),
        ("citizen_terms.yml", "citizen_terms: [gplx]\n", "citizen_terms", "expected a mapping"),
        ("concepts.yml", 'concepts:\n  "tnhh": ""\n', "concepts: tnhh", "empty text"),
        ("stop_words.yml", "stop_words: [ạ, [x]]\n", "stop_words[1]", "expected a text"),
        ("codes.yml", "pattern: '(\\d'\nlabel: 'mã'\n", "pattern", "not a valid regular"),
        ("choices.yml", "ordinals:\n  hai: two\n", "ordinals: hai", "expected a number"),
        ("actions.yml", "actions: [xóa]\nverbs: []\n", "verbs", "unknown section"),
        ("life_events.yml", "life_events: {a: b\n", "file", "not valid YAML"),
    ],
)
def test_bad_shipped_file_names_file_entry_and_problem(
    tmp_path: Path, name: str, text: str, entry: str, problem: str
) -> None:
    folder = _copy_shipped(tmp_path)
    (folder / name).write_text(text, encoding="utf-8")
    with pytest.raises(VocabularyError) as raised:
        read_vocabulary(folder)
    message = str(raised.value)
    assert str(folder / name) in message
    assert entry in message
    assert problem in message


def test_missing_section_and_bad_extra_file(tmp_path: Path) -> None:
    folder = _copy_shipped(tmp_path)
    (folder / "abbreviations.yml").write_text('chat:\n  "ko": "không"\n', encoding="utf-8")
    with pytest.raises(VocabularyError, match=r"abbreviations\.yml: final_particles: missing"):
        read_vocabulary(folder)

    extra = tmp_path / "province"
    extra.mkdir()
    (extra / "narrow_variants.yml").write_text(
        'narrow_variants:\n  "lưu động": "lưu động"\n', encoding="utf-8"
    )
    with pytest.raises(VocabularyError) as raised:
        read_vocabulary(VOCABULARY_DIR, extra)
    assert str(extra / "narrow_variants.yml") in str(raised.value)
    assert "narrow_variants: lưu động: expected a list" in str(raised.value)

    with pytest.raises(VocabularyError, match="not a folder"):
        read_vocabulary(VOCABULARY_DIR, tmp_path / "nowhere")
