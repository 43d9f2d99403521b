// Test component: misbehaves as its config's `mode` says.
//
// - `loop`: never returns (the host's deadline or fuel must stop it);
// - `allocate`: allocates 1 MiB blocks until memory runs out;
// - `raise`: throws an Error the step does not handle;
// - `retryable` / `fatal`: returns a typed step error;
// - `echo`: returns its input (a healthy call, for comparison).
export function run(ctx, input, config) {
  const mode = JSON.parse(config || '{}').mode ?? 'echo';
  switch (mode) {
    case 'loop': {
      let counter = 0;
      for (;;) counter++;
    }
    case 'allocate': {
      const blocks = [];
      for (;;) blocks.push(new Uint8Array(1024 * 1024).fill(1));
    }
    case 'raise':
      throw new Error(`boom from javascript (attempt ${ctx.attempt})`);
    case 'retryable':
      throw { tag: 'retryable', val: `javascript says try again (attempt ${ctx.attempt})` };
    case 'fatal':
      throw { tag: 'fatal', val: 'javascript says this input can never work' };
    case 'echo':
      return input;
    default:
      throw { tag: 'fatal', val: `unknown mode \`${mode}\`` };
  }
}
