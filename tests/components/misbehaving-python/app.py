"""Test component: misbehaves as its config's `mode` says.

- `loop`: never returns (the host's deadline or fuel must stop it);
- `allocate`: allocates 1 MiB blocks until memory runs out;
- `raise`: raises an exception the step does not handle;
- `retryable` / `fatal`: returns a typed step error;
- `echo`: returns its input (a healthy call, for comparison)."""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports.types import StepError_Fatal, StepError_Retryable


class WitWorld(wit_world.WitWorld):
    def run(self, ctx, input, config):
        mode = json.loads(config or "{}").get("mode", "echo")
        if mode == "loop":
            counter = 0
            while True:
                counter += 1
        if mode == "allocate":
            blocks = []
            while True:
                blocks.append(bytearray(1024 * 1024))
        if mode == "raise":
            raise RuntimeError(f"boom from python (attempt {ctx.attempt})")
        if mode == "retryable":
            raise Err(StepError_Retryable(f"python says try again (attempt {ctx.attempt})"))
        if mode == "fatal":
            raise Err(StepError_Fatal("python says this input can never work"))
        if mode == "echo":
            return input
        raise Err(StepError_Fatal(f"unknown mode `{mode}`"))
