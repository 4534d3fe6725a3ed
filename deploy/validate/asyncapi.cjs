#!/usr/bin/env node
// Validates an AsyncAPI document with the reference parser (@asyncapi/parser), resolving the
// payload schemas it refers to relative to the document's own path.
//
//   node deploy/validate/asyncapi.cjs docs/asyncapi.yaml
//
// @asyncapi/parser is looked up through NODE_PATH (deploy/local/lib.sh installs it, pinned by
// package-lock.json beside this file, into .vbp/validate/node_modules). Exit status: 0 valid,
// 1 invalid (every error printed), 2 usage or set-up problem.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

async function main() {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: asyncapi.cjs FILE');
    return 2;
  }
  let Parser, fromFile, DiagnosticSeverity;
  try {
    ({ Parser, fromFile, DiagnosticSeverity } = require('@asyncapi/parser'));
  } catch (e) {
    console.error(`cannot load @asyncapi/parser (NODE_PATH=${process.env.NODE_PATH || ''}): ${e.message}`);
    return 2;
  }
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) {
    console.error(`no such file: ${abs}`);
    return 2;
  }
  const parser = new Parser();
  const { document, diagnostics } = await fromFile(parser, abs).parse({
    validateOptions: { allowedSeverity: { warning: true, info: true, hint: true } },
  });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  for (const d of diagnostics) {
    const where = (d.path || []).join('/');
    const level = d.severity === DiagnosticSeverity.Error ? 'error' : 'warning';
    if (level === 'error' || process.env.VBP_ASYNCAPI_VERBOSE) {
      console.error(`${level}: ${d.code}: ${d.message} at /${where}`);
    }
  }
  if (!document || errors.length > 0) {
    console.error(`${abs}: INVALID (${errors.length} errors)`);
    return 1;
  }
  const channels = document.channels().length;
  const operations = document.operations().length;
  const messages = document.allMessages().length;
  console.log(
    `${abs}: valid AsyncAPI ${document.version()} (${channels} channels, ${operations} operations, ${messages} messages, ${diagnostics.length - errors.length} warnings)`,
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e && e.stack ? e.stack : String(e));
    process.exit(2);
  },
);
