"""VietnameseTokenizer: word tokens with original offsets and normalized, accent-folded forms."""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.normalize import split_words


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class VietnameseTokenizer(Tokenizer):
    """Splits Vietnamese chat text into syllable tokens.

    token.start/end index the original message text, so entity spans stay valid; token.text is
    the accent-folded lower-case word and token.lemma the same after chat-abbreviation expansion
    ("ko" -> "khong"). CountVectorsFeaturizer reads the lemma (use_lemma=True), the lexical
    featurizer the text: every feature is the same with or without accents.
    """

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "intent_tokenization_flag": False,
            "intent_split_symbol": "_",
            "token_pattern": None,
            "prefix_separator_symbol": None,
        }

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> VietnameseTokenizer:
        return cls(config)

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        text = message.get(attribute)
        tokens = [
            Token(word.surface, word.start, end=word.end, lemma=word.lemma)
            for word in split_words(text)
        ]
        # Only punctuation or emoji: one token for the whole text, as Rasa's own tokenizers do.
        return tokens or [Token(text, 0, end=len(text))]
