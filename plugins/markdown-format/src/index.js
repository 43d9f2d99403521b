// `markdown-format`: the component side of the step. It adapts render.js
// (plain JavaScript) to the `weft:plugin/step` world; componentize-js builds
// it against ../../wit.
//
// How WIT maps to JavaScript here: `run` is an exported function; a
// `payload` variant arrives as `{ tag: 'text', val: '...' }`; returning a
// value is `ok`, and throwing `{ tag: 'fatal', val: '...' }` (any
// `step-error` case) is `err`. Anything else thrown becomes a trap.
import { log } from 'weft:plugin/logging@0.1.0';

import { FatalError, parseConfig, render } from './render.js';

export function run(ctx, input, config) {
  try {
    const settings = parseConfig(config);
    const items = input.map((item, index) => {
      if (item.payload.tag !== 'text') {
        throw new FatalError(`markdown-format expects text items, got bytes (input item ${index})`);
      }
      return { text: item.payload.val, metadata: item.metadata };
    });
    const { markdown, metadata } = render(items, settings);
    log('debug', `rendered ${markdown.length} characters of Markdown for job ${ctx.jobId}`);
    return [{ payload: { tag: 'text', val: markdown }, metadata }];
  } catch (error) {
    if (error instanceof FatalError) {
      throw { tag: 'fatal', val: error.message };
    }
    throw error;
  }
}
