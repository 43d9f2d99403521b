// `{{name}}`: a Weft step. It upper-cases each text item, puts the config's
// `prefix` in front and adds a `words` metadata entry.
//
// WIT in JavaScript: `run` is an exported function; a `payload` arrives as
// `{ tag: 'text', val: '...' }`; returning is `ok`, and throwing
// `{ tag: 'fatal' | 'retryable', val: '...' }` is a typed `step-error`.
// Any other exception is a trap (the attempt fails, not retried).
import { log } from 'weft:plugin/logging@0.1.0';

export function run(ctx, input, config) {
  let prefix;
  try {
    prefix = JSON.parse(config || '{}').prefix ?? '';
  } catch (error) {
    throw { tag: 'fatal', val: `config is not valid JSON: ${error.message}` };
  }
  const output = input.map((item, index) => {
    if (item.payload.tag !== 'text') {
      throw { tag: 'fatal', val: `{{name}} expects text items, got bytes (input item ${index})` };
    }
    const text = item.payload.val;
    const words = text.split(/\s+/).filter(Boolean).length;
    return {
      payload: { tag: 'text', val: prefix + text.trim().toUpperCase() },
      metadata: [...item.metadata, ['words', String(words)]],
    };
  });
  log('info', `job ${ctx.jobId}: handled ${output.length} item(s)`);
  return output;
}
