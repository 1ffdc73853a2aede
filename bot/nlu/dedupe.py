"""DuplicateEntityFilter: one entity per (type, span) when two extractors tag the same words.

Procedure codes are tagged by the CRF (it learns them from the annotated examples, which the
RegexEntityExtractor also needs) and by the regex: without this filter a message carries the same
code twice. The entity of the extractor listed first in `prefer` wins (the deterministic regex).
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES
from rasa.shared.nlu.training_data.message import Message


def dedupe_entities(entities: list[dict], prefer: list[str]) -> list[dict]:
    """Entities with unique (entity, start, end), keeping the preferred extractor's one."""

    def rank(entity: dict) -> int:
        extractor = entity.get("extractor")
        return prefer.index(extractor) if extractor in prefer else len(prefer)

    best: dict[tuple, dict] = {}
    for entity in entities:
        key = (entity.get("entity"), entity.get("start"), entity.get("end"))
        if key not in best or rank(entity) < rank(best[key]):
            best[key] = entity
    kept = {id(entity) for entity in best.values()}
    return [entity for entity in entities if id(entity) in kept]


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class DuplicateEntityFilter(GraphComponent):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"prefer": ["RegexEntityExtractor"]}

    def __init__(self, config: dict[str, Any]) -> None:
        self._prefer = list(config["prefer"])

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> DuplicateEntityFilter:
        return cls(config)

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            entities = message.get(ENTITIES)
            if entities:
                message.set(ENTITIES, dedupe_entities(entities, self._prefer), add_to_output=True)
        return messages
