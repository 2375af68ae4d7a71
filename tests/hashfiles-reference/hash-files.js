// Reference hashFiles for the conformance tests (tests/it/hash_files.rs): does what the
// runner's bundled hashFiles script does, on top of the runner's @actions/glob 0.4.0.
// See docs/hashfiles.md §2.2.
//
// Like the runner:
//   cwd = the workspace; env `patterns` = the pattern arguments joined with "\n";
//   env `followSymbolicLinks=true` for --follow-symbolic-links;
//   node hash-files.js <npm project dir holding node_modules/@actions/glob>
//   writes __OUTPUT__<hex or empty>__OUTPUT__ on stderr, or exits 1 on any error.
//
// Many runs in one process (node start-up is most of the time of one run):
//   node hash-files.js <npm project dir> --many <cases.json> <results.json>
//   cases.json: [{"patterns": "...", "follow": false}, ...]; results.json: one string per
//   case, the hex or "" as above, or "ERROR: <message>" where the runner would exit 1.
'use strict'

const crypto = require('crypto')
const fs = require('fs')
const path = require('path')
const stream = require('stream')
const util = require('util')

const glob = require(path.join(process.argv[2], 'node_modules', '@actions', 'glob'))
const pipeline = util.promisify(stream.pipeline)

async function hashFiles(patterns, followSymbolicLinks) {
  // The runner starts the script with the workspace as cwd: the root is the physical path.
  const root = process.cwd()
  const globber = await glob.create(patterns, { followSymbolicLinks })
  const outer = crypto.createHash('sha256')
  let hashedAny = false
  for await (const file of globber.globGenerator()) {
    // A plain prefix test on the path as yielded, not resolved.
    if (!file.startsWith(`${root}${path.sep}`)) {
      continue
    }
    // stat follows links: a link to a directory is skipped, a dangling one throws.
    if (fs.statSync(file).isDirectory()) {
      continue
    }
    const inner = crypto.createHash('sha256')
    await pipeline(fs.createReadStream(file), inner)
    outer.write(inner.digest())
    hashedAny = true
  }
  outer.end()
  return hashedAny ? outer.digest('hex') : ''
}

async function many(casesFile, resultsFile) {
  const results = []
  for (const c of JSON.parse(fs.readFileSync(casesFile, 'utf8'))) {
    try {
      results.push(await hashFiles(c.patterns, c.follow))
    } catch (err) {
      results.push(`ERROR: ${err && err.message}`)
    }
  }
  fs.writeFileSync(resultsFile, JSON.stringify(results))
}

if (process.argv[3] === '--many') {
  many(process.argv[4], process.argv[5]).catch(err => {
    process.stderr.write(`${(err && err.stack) || err}\n`)
    process.exit(2)
  })
} else {
  hashFiles(process.env.patterns || '', process.env.followSymbolicLinks === 'true').then(
    value => {
      process.stderr.write(`__OUTPUT__${value}__OUTPUT__\n`)
    },
    err => {
      process.stderr.write(`${(err && err.stack) || err}\n`)
      process.exit(1)
    }
  )
}
