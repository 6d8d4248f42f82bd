// The book's KaTeX worker: book/_ext/gradlab_math.py starts one per build and sends it the
// formulas of each page as one line of JSON; it answers one line of JSON, in the same order.
//
//   node gradlab_katex.js /path/to/node_modules/katex
//   in:  {"options": {...KaTeX options...}, "items": [{"tex": "a^2", "display": false}, ...]}
//   out: [{"html": "<span class=\"katex\">...", "warnings": []}, {"error": "KaTeX parse error: ..."}, ...]
//
// Every formula is rendered as HTML (what a reader sees) plus MathML (what a screen reader
// reads). A formula KaTeX cannot parse comes back as an error, and a construct that is not
// standard LaTeX (KaTeX's "strict" checks) as a warning, for the build to report.
"use strict";

const readline = require("readline");

const katexDir = process.argv[2];
if (!katexDir) {
  process.stderr.write("usage: node gradlab_katex.js <folder of the katex package>\n");
  process.exit(2);
}
const katex = require(katexDir);

function render(item, options) {
  const warnings = [];
  const settings = {
    ...options,
    // KaTeX mutates macros that \gdef defines: each formula starts from the configured set.
    macros: { ...(options.macros || {}) },
    displayMode: !!item.display,
    output: "htmlAndMathml",
    throwOnError: true,
    strict: (code, message) => {
      warnings.push(`${code}: ${message}`);
      return "ignore";
    },
  };
  try {
    return { html: katex.renderToString(item.tex, settings), warnings };
  } catch (err) {
    return { error: String((err && err.message) || err), warnings };
  }
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
lines.on("line", (line) => {
  if (!line.trim()) return;
  let answer;
  try {
    const request = JSON.parse(line);
    answer = request.items.map((item) => render(item, request.options || {}));
  } catch (err) {
    answer = { fatal: String((err && err.stack) || err) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
process.stdout.write(JSON.stringify({ ready: katex.version }) + "\n");
