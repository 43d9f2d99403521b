"""`keyword-tagger`: the component side of the step. It adapts `tagger` (plain
Python) to the `weft:plugin/step` world; componentize-py generates the
`wit_world` bindings from ../../wit when it builds the component."""

import wit_world
from componentize_py_types import Err
from wit_world.imports import logging
from wit_world.imports.types import Item, Payload_Text, StepError_Fatal

import tagger


class WitWorld(wit_world.WitWorld):
    def run(self, ctx, input, config):
        try:
            settings = tagger.Config.from_json(config)
        except tagger.ConfigError as error:
            raise Err(StepError_Fatal(str(error)))
        tagged = []
        for index, item in enumerate(input):
            if not isinstance(item.payload, Payload_Text):
                raise Err(StepError_Fatal(f"keyword-tagger expects text items, got bytes (input item {index})"))
            added = tagger.tag(item.payload.value, settings)
            added_keys = {key for key, _ in added}
            # Keys stay unique: a value this step computes replaces an older one.
            metadata = [(k, v) for k, v in item.metadata if k not in added_keys] + added
            tagged.append(Item(payload=item.payload, metadata=metadata))
        logging.log(logging.Level.DEBUG, f"tagged {len(tagged)} item(s)")
        return tagged
