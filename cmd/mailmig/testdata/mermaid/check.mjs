// check.mjs DIR: parses every ```mermaid block read from standard input
// with Mermaid's own parser (mermaid.parse, the grammar the code-review
// sites use to render the block), loading mermaid and jsdom from
// DIR/node_modules (testdata/peers/install-mermaid.sh). Prints one line
// per block, "ok TYPE" or "ERROR message", and exits 1 when any block
// fails, 2 when there is none.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const require = createRequire(process.argv[2].replace(/\/?$/, '/'));
const { JSDOM } = require('jsdom');
// mermaid sanitises labels with DOMPurify, which needs a window.
const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const mermaid = (await import(pathToFileURL(require.resolve('mermaid')).href)).default;
mermaid.initialize({ startOnLoad: false });

const text = readFileSync(0, 'utf8');
const blocks = [...text.matchAll(/```mermaid\n([\s\S]*?)```/g)].map((m) => m[1]);
if (blocks.length === 0) {
  console.log('no mermaid block');
  process.exit(2);
}
let bad = 0;
for (const b of blocks) {
  try {
    const r = await mermaid.parse(b);
    console.log('ok', r.diagramType);
  } catch (e) {
    bad++;
    console.log('ERROR', String(e.message || e).split('\n').slice(0, 4).join(' | '));
  }
}
process.exit(bad ? 1 : 0);
