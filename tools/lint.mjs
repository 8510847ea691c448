#!/usr/bin/env node
/**
 * Checks the habits a type checker cannot: no cross-folder deep imports inside @tp/core (import a
 * folder through its index), no family checks outside the family descriptors, no focused tests.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const problems = [];

function* files(dir, ext) {
  for (const entry of readdirSync(dir)) {
    if (entry === 'node_modules' || entry === 'dist' || entry.startsWith('.')) continue;
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) yield* files(full, ext);
    else if (ext.some((e) => entry.endsWith(e))) yield full;
  }
}

const coreSrc = path.join(root, 'packages/core/src');
for (const file of files(coreSrc, ['.ts'])) {
  const rel = path.relative(coreSrc, file);
  const folder = rel.split(path.sep)[0];
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(/from '(\.\.\/[^']+)'/g)) {
    const target = path.relative(coreSrc, path.resolve(path.dirname(file), m[1]));
    const [targetFolder, ...rest] = target.split(path.sep);
    const viaIndex = rest.length === 1 && rest[0] === 'index.js';
    if (targetFolder !== folder && !viaIndex && !rel.startsWith(`graph${path.sep}families`)) {
      problems.push(`${path.relative(root, file)}: imports ${m[1]} — import another folder through its index.js`);
    }
  }
  if (!rel.startsWith(`graph${path.sep}families`) && /(modelType|model_type|family)\s*===\s*'/.test(text)) {
    problems.push(`${path.relative(root, file)}: compares a family name — family knowledge belongs in graph/families`);
  }
}

// The tensor-parallel trick lives in one place: only runtime/linear.ts calls collectives.
for (const file of files(path.join(coreSrc, 'runtime'), ['.ts'])) {
  if (file.endsWith(`${path.sep}linear.ts`)) continue;
  if (/collective\.(allReduce|allGather|broadcast)\(/.test(readFileSync(file, 'utf8'))) {
    problems.push(`${path.relative(root, file)}: calls a collective — only runtime/linear.ts may (the linear op performs every reduction)`);
  }
}

for (const dir of ['packages', 'tools', 'apps']) {
  for (const file of files(path.join(root, dir), ['.test.ts', '.test.mjs'])) {
    if (/\b(it|describe|test)\.only\(/.test(readFileSync(file, 'utf8'))) problems.push(`${path.relative(root, file)}: focused test (.only)`);
  }
}

if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log('lint: ok');
