// Drives the official @actions/cache toolkit the way actions/cache does, so the tests can
// check that our backends and our test server interoperate with it byte for byte.
//
//   node actions-cache.js save <path> <key>
//   node actions-cache.js restore <path> <key> [restoreKeys...]
//
// The toolkit is an ES module; its entry file comes from ACTIONS_CACHE_MODULE (an absolute
// path to node_modules/@actions/cache/lib/cache.js). Runner variables (ACTIONS_CACHE_URL,
// ACTIONS_RESULTS_URL, ACTIONS_RUNTIME_TOKEN, ACTIONS_CACHE_SERVICE_V2, GITHUB_WORKSPACE,
// RUNNER_TEMP, ...) come from the environment; cwd is the workspace. The last stdout line is
// `RESULT saved <id>`, `RESULT restored <matched key>` or `RESULT miss`.
'use strict';
const { pathToFileURL } = require('node:url');

(async () => {
  const cache = await import(pathToFileURL(process.env.ACTIONS_CACHE_MODULE).href);
  const [command, path, key, ...restoreKeys] = process.argv.slice(2);
  if (command === 'save') {
    const id = await cache.saveCache([path], key);
    if (id === -1) {
      console.log('RESULT failed');
      process.exit(1);
    }
    console.log(`RESULT saved ${id}`);
  } else if (command === 'restore') {
    const matched = await cache.restoreCache([path], key, restoreKeys);
    console.log(matched === undefined ? 'RESULT miss' : `RESULT restored ${matched}`);
  } else {
    console.error(`unknown command ${command}`);
    process.exit(2);
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
