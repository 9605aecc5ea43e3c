// Exports the Actions cache service's credentials to later steps through $GITHUB_ENV.
// No dependencies: it runs as the `main` of a node20 action, and the repository's root
// action.yml (a composite action, which cannot `uses:` a path of its own repository)
// requires it from actions/github-script and calls run().
'use strict';

const crypto = require('crypto');
const fs = require('fs');

const REQUIRED = ['ACTIONS_RESULTS_URL', 'ACTIONS_RUNTIME_TOKEN'];

// Appends NAME<<DELIMITER / value / DELIMITER blocks, the form $GITHUB_ENV takes for any
// value (a value with a line break could otherwise set a second variable).
function envFileText(vars) {
  let text = '';
  for (const [name, value] of Object.entries(vars)) {
    let delimiter;
    do {
      delimiter = `ghadelimiter_${crypto.randomUUID()}`;
    } while (value.includes(delimiter));
    text += `${name}<<${delimiter}\n${value}\n${delimiter}\n`;
  }
  return text;
}

// Writes the variables and returns their names; throws naming what is missing.
function run(env = process.env, out = process.stdout) {
  const missing = REQUIRED.filter((name) => !env[name]);
  if (missing.length > 0) {
    throw new Error(
      `${missing.join(' and ')} not set: this action must run as a step of a GitHub Actions job ` +
        '(GitHub gives them to JavaScript actions only)'
    );
  }
  if (!env.GITHUB_ENV) {
    throw new Error('GITHUB_ENV not set: nowhere to export the variables to');
  }
  // Masked before anything else could print it.
  out.write(`::add-mask::${env.ACTIONS_RUNTIME_TOKEN}\n`);
  const vars = {
    ACTIONS_RESULTS_URL: env.ACTIONS_RESULTS_URL,
    ACTIONS_RUNTIME_TOKEN: env.ACTIONS_RUNTIME_TOKEN,
    // Selects the v2 (Twirp) cache protocol in clients that support both.
    ACTIONS_CACHE_SERVICE_V2: 'on',
  };
  fs.appendFileSync(env.GITHUB_ENV, envFileText(vars));
  out.write(`exported ${Object.keys(vars).join(', ')} for later steps\n`);
  return Object.keys(vars);
}

module.exports = { run, envFileText };

if (require.main === module) {
  try {
    run();
  } catch (err) {
    process.stdout.write(`::error::${err.message}\n`);
    process.exitCode = 1;
  }
}
