"""Unit tests of the custom NLU components (no model training: fast)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import (
    CountVectorsFeaturizer,
)
from rasa.nlu.featurizers.sparse_featurizer.lexical_syntactic_featurizer import (
    LexicalSyntacticFeaturizer,
)
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.loading import load_data
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.normalize import normalized_text, split_words
from bot.nlu.tokenizer import VietnameseTokenizer
from procedures_db.text import canonical, fold_accents

ROOT = Path(__file__).resolve().parent.parent


def tokenize(text: str) -> list:
    tokenizer = VietnameseTokenizer(VietnameseTokenizer.get_default_config())
    return tokenizer.tokenize(Message(data={TEXT: text}), TEXT)


@pytest.mark.parametrize(
    "text",
    [
        "Cho em hỏi ĐỔI BẰNG LÁI mất bao lâu ạ?",
        unicodedata.normalize("NFD", "Đăng ký khai sinh ở đâu, cần giấy tờ gì?"),
        "thủ tục 1.001193 lp bn vậy ad :)",
    ],
)
def test_token_offsets_index_the_original_text(text):
    tokens = tokenize(text)
    assert len(tokens) >= 6
    previous_end = 0
    for token in tokens:
        word = text[token.start : token.end]
        # The span is the word as typed; the token carries its normalized form.
        assert word.strip() == word and token.start >= previous_end
        assert token.text == fold_accents(canonical(word))
        previous_end = token.end


def test_accented_unaccented_and_nfd_give_the_same_tokens():
    accented = "Đổi bằng lái mất bao lâu"
    forms = [accented, "doi bang lai mat bao lau", unicodedata.normalize("NFD", accented)]
    token_forms = [[(t.text, t.lemma) for t in tokenize(f)] for f in forms]
    assert token_forms[0] == token_forms[1] == token_forms[2]
    assert normalized_text(accented) == "doi bang lai mat bao lau"


def test_tone_placement_and_case_do_not_matter():
    assert normalized_text("Hoà giải THUỶ lợi") == normalized_text("hòa giải thủy lợi")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("lam onl dc ko", "lam online duoc khong"),
        ("lệ phí bn vậy ad", "le phi bao nhieu vay admin"),
        ("cần giấy tờ j hok", "can giay to gi khong"),
        ("làm ở đâu đc k", "lam o dau duoc khong"),
        ("dk khai sinh", "dang ky khai sinh"),
        ("lm ở đâu trc", "lam o dau truoc"),
    ],
)
def test_chat_abbreviations_expand(message, expected):
    assert normalized_text(message) == expected


def test_final_particle_a_stays_a_particle():
    # "ạ" and an unaccented final "a" are the polite particle, never "anh".
    assert normalized_text("cho em hỏi ạ") == normalized_text("cho e hoi a") == "cho em hoi a"
    assert normalized_text("a ơi cho e hỏi") == "anh oi cho em hoi"


def test_procedure_code_is_one_token():
    assert [w.surface for w in split_words("thủ tục 1.001193 nộp ở đâu")][2] == "1.001193"


def test_only_punctuation_gives_one_token():
    tokens = tokenize("?!")
    assert [(t.start, t.end) for t in tokens] == [(0, 2)]


def _features(featurizer_class, config: dict, texts: list[str], tmp_path: Path) -> list:
    """Train one featurizer on a tiny corpus and return dense sequence features per text."""
    tokenizer = VietnameseTokenizer(VietnameseTokenizer.get_default_config())
    corpus = TrainingData(
        [Message(data={TEXT: t, "intent": "x"}) for t in ["đổi bằng lái", *texts]]
    )
    tokenizer.process_training_data(corpus)
    featurizer = featurizer_class.create(
        {**featurizer_class.get_default_config(), **config},
        LocalModelStorage(tmp_path),
        Resource(featurizer_class.__name__),
        ExecutionContext(GraphSchema({}), "test"),
    )
    featurizer.train(corpus)
    messages = tokenizer.process([Message(data={TEXT: t}) for t in texts])
    featurizer.process(messages)
    return [m.get_sparse_features(TEXT)[0].features.toarray().tolist() for m in messages]


@pytest.mark.parametrize(
    ("featurizer_class", "config"),
    [
        (CountVectorsFeaturizer, {"analyzer": "word", "max_ngram": 2}),
        (CountVectorsFeaturizer, {"analyzer": "char_wb", "min_ngram": 2, "max_ngram": 5}),
        (LexicalSyntacticFeaturizer, {}),
    ],
)
def test_featurizers_see_the_same_features_with_or_without_accents(
    featurizer_class, config, tmp_path
):
    accented = "Cấp lại CCCD mất bao lâu ạ"
    texts = [accented, "cap lai cccd mat bao lau a", unicodedata.normalize("NFD", accented)]
    features = _features(featurizer_class, config, texts, tmp_path)
    assert features[0] == features[1] == features[2]


@pytest.mark.parametrize("path", [ROOT / "data" / "nlu", ROOT / "tests" / "nlu" / "nlu_dev.yml"])
def test_annotated_entities_align_with_token_boundaries(path):
    """An entity span that cut a token would be dropped by Rasa at training time."""
    examples = load_data(str(path)).entity_examples
    assert examples
    for message in examples:
        tokens = tokenize(message.get(TEXT))
        starts, ends = {t.start for t in tokens}, {t.end for t in tokens}
        for entity in message.get("entities"):
            assert entity["start"] in starts and entity["end"] in ends, (message.get(TEXT), entity)


def test_config_resolves_to_a_training_graph_with_our_tokenizer():
    """config.yml names real, registered components (catches typos without training)."""
    from rasa.engine.recipes.recipe import Recipe
    from rasa.shared.data import TrainingType
    from rasa.shared.utils.io import read_config_file

    config = read_config_file(str(ROOT / "config.yml"))
    assert config["assistant_id"] == "tthc-assistant" and config["language"] == "vi"
    recipe = Recipe.recipe_for_name(config["recipe"])
    graph = recipe.graph_config_for_recipe(config, {}, training_type=TrainingType.NLU)
    classes = {node.uses for node in graph.train_schema.nodes.values()}
    assert VietnameseTokenizer in classes


def test_dev_sentences_are_not_in_the_training_data():
    def texts(path: Path) -> set[str]:
        return {normalized_text(m.get(TEXT)) for m in load_data(str(path)).intent_examples}

    dev = texts(ROOT / "tests" / "nlu" / "nlu_dev.yml")
    assert len(dev) > 150
    assert not dev & texts(ROOT / "data" / "nlu")


def test_duplicate_entities_keep_the_preferred_extractor():
    from bot.nlu.dedupe import dedupe_entities

    crf = {"entity": "procedure_code", "start": 8, "end": 16, "extractor": "CRFEntityExtractor"}
    regex = {**crf, "extractor": "RegexEntityExtractor"}
    name = {"entity": "procedure", "start": 0, "end": 7, "extractor": "CRFEntityExtractor"}
    kept = dedupe_entities([name, crf, regex], ["RegexEntityExtractor"])
    assert kept == [name, regex]
    # Different spans or types are not duplicates.
    other = {**crf, "start": 20, "end": 28}
    assert dedupe_entities([crf, other], ["RegexEntityExtractor"]) == [crf, other]
