// Native tests of the rendering logic: `node --test plugins/markdown-format/src/`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FatalError, parseConfig, render } from './render.js';

const summary = { text: 'Shipments grew by *twelve* percent.', metadata: [['summary_sentences', '1']] };
const chunk = (page, keywords) => ({
  text: '...',
  metadata: [['page', page], ['title', 'Quarterly report'], ['keywords', keywords], ['language', 'en']],
});

test('renders the title, facts, escaped summary and ranked keywords', () => {
  const out = render([chunk('1', 'shipments,routing'), chunk('2', 'fuel,shipments'), summary], parseConfig('{}'));
  assert.match(out.markdown, /^# Quarterly report\n/);
  assert.match(out.markdown, /\*\*Language:\*\* en · \*\*Pages:\*\* 2 · \*\*Chunks:\*\* 2/);
  assert.match(out.markdown, /## Summary\n\nShipments grew by \\\*twelve\\\* percent\./);
  assert.match(out.markdown, /## Keywords\n\n`shipments` · `routing` · `fuel`/);
  assert.deepEqual(out.metadata[0], ['content_type', 'text/markdown']);
});

test('a missing summary or a bad config is a fatal error', () => {
  assert.throws(() => render([chunk('1', 'a')], parseConfig('{}')), FatalError);
  assert.throws(() => parseConfig('{"titel": "x"}'), /unknown config field `titel`/);
  assert.throws(() => parseConfig('{"max_keywords": -1}'), /must be a whole number/);
  assert.equal(parseConfig('{"title": "Digest"}').title, 'Digest');
});
