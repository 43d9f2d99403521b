"""`{{name}}`: a Weft step. It upper-cases each text item, puts the config's
`prefix` in front and adds a `words` metadata entry.

componentize-py generates the `wit_world` bindings from wit/ when it builds
the component; run `componentize-py -d wit -w step bindings .` to get them as
files for your editor."""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import logging
from wit_world.imports.types import Item, Payload_Text, StepError_Fatal


class WitWorld(wit_world.WitWorld):
    def run(self, ctx, input, config):
        try:
            prefix = json.loads(config or "{}").get("prefix", "")
        except ValueError as error:
            # `fatal`: bad config, never retried. `StepError_Retryable` asks for a retry.
            raise Err(StepError_Fatal(f"config is not valid JSON: {error}"))
        output = []
        for index, item in enumerate(input):
            if not isinstance(item.payload, Payload_Text):
                raise Err(StepError_Fatal(f"{{name}} expects text items, got bytes (input item {index})"))
            text = item.payload.value
            metadata = item.metadata + [("words", str(len(text.split())))]
            output.append(Item(payload=Payload_Text(prefix + text.strip().upper()), metadata=metadata))
        logging.log(logging.Level.INFO, f"job {ctx.job_id}: handled {len(output)} item(s)")
        return output
