import { writeTinyModel, FAMILY_NAMES, familyVariants } from '/work/main/tools/tiny-models/dist/index.js';
import { openCheckpoint, analyzeModel, planTensorParallel } from '@tp/core';
import { readFileSync } from 'node:fs';
const out = [];
for (const family of FAMILY_NAMES) {
  const variants = familyVariants(family);
  for (const variant of variants.length ? variants : [undefined]) {
    const dir = `/tmp/tm-smoke/${family}${variant ? '-' + variant : ''}`;
    const r = await writeTinyModel(dir, { family, variant });
    const ck = await openCheckpoint(dir);
    const g = analyzeModel(ck);
    const generic = g.weights.filter((w) => w.rule.startsWith('generic:')).map((w) => w.name);
    let plan = 'ok';
    try { planTensorParallel(g, { tpSize: 2 }); } catch (e) { plan = e.message; }
    console.log(family, variant ?? '', r.tensorCount, r.parameters, g.modelType, 'warn', g.warnings.length, g.warnings.slice(0,2), 'generic', generic.slice(0, 3), 'plan', plan);
    ck.close();
  }
}
