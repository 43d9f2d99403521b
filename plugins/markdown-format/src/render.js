// Markdown rendering in plain JavaScript (no component imports), so it runs
// natively under `node --test` as well as inside the component.
//
// Input: the items of the steps this one needs. The summary is the item
// with `summary_sentences` metadata (from `summarize`); items with
// `keywords` metadata (from `keyword-tagger`) contribute the keyword list,
// the language and the page numbers. Output: one Markdown text item.

/** Thrown for bad configuration or input: retrying cannot help. */
export class FatalError extends Error {}

const CONFIG_FIELDS = ['title', 'max_keywords'];

/** Parses and checks the step's JSON config. */
export function parseConfig(text) {
  let raw;
  try {
    raw = JSON.parse(text || '{}');
  } catch (error) {
    throw new FatalError(`config is not valid JSON: ${error.message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new FatalError('config must be a JSON object');
  }
  for (const key of Object.keys(raw)) {
    if (!CONFIG_FIELDS.includes(key)) {
      throw new FatalError(`unknown config field \`${key}\` (expected one of ${CONFIG_FIELDS.join(', ')})`);
    }
  }
  const config = { title: null, maxKeywords: 10 };
  if (raw.title !== undefined) {
    if (typeof raw.title !== 'string' || raw.title.trim() === '') {
      throw new FatalError('`title` must be a non-empty string');
    }
    config.title = raw.title;
  }
  if (raw.max_keywords !== undefined) {
    const n = raw.max_keywords;
    if (!Number.isInteger(n) || n < 0 || n > 100) {
      throw new FatalError(`\`max_keywords\` must be a whole number from 0 to 100, got ${JSON.stringify(n)}`);
    }
    config.maxKeywords = n;
  }
  return config;
}

/** The value of `key` in an item's metadata (a list of [key, value] pairs). */
export function meta(item, key) {
  const pair = item.metadata.find(([k]) => k === key);
  return pair ? pair[1] : undefined;
}

/** Escapes the characters that would start Markdown markup inside a line. */
export function escapeMarkdown(text) {
  return text.replace(/([\\`*_[\]<>#|])/g, '\\$1');
}

/**
 * Renders `items` (plain objects `{ text, metadata }`) as Markdown.
 * Returns `{ markdown, metadata }`.
 */
export function render(items, config) {
  const summaries = items.filter((item) => meta(item, 'summary_sentences') !== undefined);
  if (summaries.length === 0) {
    throw new FatalError(
      'markdown-format needs a summary item (one with `summary_sentences` metadata); ' +
        'list the summarize step in `needs`',
    );
  }
  const tagged = items.filter((item) => meta(item, 'keywords') !== undefined);
  const title = config.title ?? tagged.map((item) => meta(item, 'title')).find(Boolean) ?? 'Summary';

  // Keywords ranked by how many chunks name them, then by first appearance.
  const score = new Map();
  for (const item of tagged) {
    for (const word of meta(item, 'keywords').split(',').filter(Boolean)) {
      score.set(word, (score.get(word) ?? 0) + 1);
    }
  }
  const keywords = [...score.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, config.maxKeywords)
    .map(([word]) => word);
  const languages = [...new Set(tagged.map((item) => meta(item, 'language')).filter((l) => l && l !== 'und'))];
  const pages = [...new Set(tagged.map((item) => meta(item, 'page')).filter(Boolean))];

  const lines = [`# ${escapeMarkdown(title)}`, ''];
  const facts = [];
  if (languages.length > 0) facts.push(`**Language:** ${languages.join(', ')}`);
  if (pages.length > 0) facts.push(`**Pages:** ${pages.length}`);
  if (tagged.length > 0) facts.push(`**Chunks:** ${tagged.length}`);
  if (facts.length > 0) lines.push(facts.join(' · '), '');
  lines.push('## Summary', '');
  for (const summary of summaries) lines.push(escapeMarkdown(summary.text.trim()), '');
  if (keywords.length > 0) {
    lines.push('## Keywords', '', keywords.map((word) => `\`${word}\``).join(' · '), '');
  }
  return {
    markdown: lines.join('\n'),
    metadata: [
      ['content_type', 'text/markdown'],
      ['title', title],
      ['keywords', keywords.join(',')],
    ],
  };
}
