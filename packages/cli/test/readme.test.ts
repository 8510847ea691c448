/**
 * The README tells the truth: every example in it, except the benchmark commands (`tp bench`,
 * `pnpm bench:*`) and the Quickstart's install, is run here as written, in a folder laid out like the
 * repository (`apps/demo/.model/demo-llama` and `demo-t5` from the same presets `pnpm demo` uses,
 * `../shared` beside it):
 * - every line of a ```sh block (`pnpm tp` is the built CLI; `<model-dir>`, `<t5-dir>` and
 *   `<bert-dir>` are the demo llama, the demo T5 and the README's synthetic BERT; policy.json is the
 *   README's Hugging Face tp_plan example) must exit 0;
 * - every `$ command` of a transcript block must give what the block shows: the same error line and
 *   exit code, the same stdout for deterministic output (text, JSON, `head`), exit 0 otherwise;
 * - both policies of the ```jsonc block plan and run;
 * - the ```ts blocks of the Library section run as one script (their placeholder folders mapped to
 *   synthetic checkpoints with vocabularies large enough for the ids they use); a block importing a
 *   GPU backend runs only when that backend's probe says this machine can.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PRESETS, writeTinyModel } from '@tp/tiny-models';
import { beforeAll, describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');
const README = path.join(repo, 'README.md');
const CLI = path.join(repo, 'packages/cli/dist/bin.js');
const TINY = path.join(repo, 'tools/tiny-models/dist/bin.js');
const SHARED = process.env.TP_SHARED_DIR ?? path.resolve(repo, '../shared');
const hasShared = existsSync(path.join(SHARED, 'golden'));

interface Block {
  lang: string;
  body: string;
  /** The section (## heading) it is in, and the paragraph before it. */
  section: string;
  before: string;
}

function blocks(markdown: string): Block[] {
  const out: Block[] = [];
  const lines = markdown.split('\n');
  let section = '';
  let paragraph: string[] = [];
  let ended = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('## ')) section = line.slice(3);
    const fence = line.match(/^```(\w*)\s*$/);
    if (fence === null) {
      // The last paragraph before a block, even with a blank line between them.
      if (line.trim() === '') ended = true;
      else {
        paragraph = ended ? [line] : [...paragraph, line];
        ended = false;
      }
      continue;
    }
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i]!.startsWith('```'); i++) body.push(lines[i]!);
    out.push({ lang: fence[1]!, body: body.join('\n'), section, before: paragraph.join(' ') });
    paragraph = [];
    ended = false;
  }
  return out;
}

/** The README's words for things, as they are in the test folder. */
function substitute(text: string): string {
  return text
    .replaceAll('pnpm tp ', `node ${CLI} `)
    .replaceAll('pnpm tiny-models ', `node ${TINY} `)
    .replaceAll('<model-dir>', 'apps/demo/.model/demo-llama')
    .replaceAll('<t5-dir>', 'apps/demo/.model/demo-t5')
    .replaceAll('<bert-dir>', 'bert')
    .replaceAll('/tmp/bert', 'bert')
    .replaceAll('/models/my-llama', `${work}/models/my-llama`);
}

/** What the README shows in place of a path the test lays out (for comparing output). */
const shown = (text: string) => text.replaceAll('/models/my-llama', `${work}/models/my-llama`);

/**
 * Lines of `head -c` over a logits file: the same text, and the same floats to 1e-4 (kernels may
 * change the last digits; the last number of a line cut by head is not compared).
 */
function expectSameFloats(actual: string[], expected: string[], where: string) {
  expect(actual.length, where).toBe(expected.length);
  const numbers = /-?\d+\.\d+(?:e-?\d+)?/g;
  actual.forEach((line, i) => {
    const want = expected[i]!;
    expect(line.replace(numbers, '#').replace(/#[^#]*$/, '#'), where).toBe(want.replace(numbers, '#').replace(/#[^#]*$/, '#'));
    const a = line.match(numbers) ?? [];
    const b = want.match(numbers) ?? [];
    for (let j = 0; j < Math.min(a.length, b.length) - 1; j++) expect(Math.abs(Number(a[j]) - Number(b[j])), `${where}: ${a[j]} vs ${b[j]}`).toBeLessThan(1e-4);
  });
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

let work = '';
function sh(command: string): Promise<Ran> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', command], { cwd: work, maxBuffer: 64 * 2 ** 20, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const readme = await readFile(README, 'utf8');
const all = blocks(readme);
const isBenchmark = (command: string) => /\btp bench\b|pnpm bench:/.test(command);
const isInstall = (command: string) => /tools\/setup\.sh|^pnpm test$|^pnpm demo$/.test(command.trim());
const commandsOf = (b: Block) =>
  b.body
    .split('\n')
    .map((l) => l.replace(/\s+#(?![^"]*"[^"]*$).*$/, '').trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

/** The two policies of the ```jsonc block: the DeepSpeed one, then the Hugging Face tp_plan. */
function policies(): unknown[] {
  const block = all.find((b) => b.lang === 'jsonc')!;
  const text = block.body
    .split('\n')
    .filter((l) => !l.trim().startsWith('//'))
    .join('\n');
  return text
    .split(/\n\s*\n/)
    .filter((part) => part.trim() !== '')
    .map((part) => JSON.parse(part));
}

beforeAll(async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'tp-readme-'));
  work = path.join(root, 'repo');
  await mkdir(work, { recursive: true });
  if (hasShared) await symlink(SHARED, path.join(root, 'shared'));
  await writeTinyModel(path.join(work, 'apps/demo/.model/demo-llama'), PRESETS['demo-llama']!.options);
  await writeTinyModel(path.join(work, 'apps/demo/.model/demo-t5'), PRESETS['demo-t5']!.options);
  // The README's synthetic BERT, made with the README's own command.
  const bert = await sh(`node ${TINY} bert bert --vocab 512`);
  expect(bert.code, bert.stderr).toBe(0);
  // config.json that disagrees with the weights (the shape-mismatch example).
  const mine = path.join(work, 'models/my-llama');
  await writeTinyModel(mine, { family: 'llama', hidden: 64, intermediate: 128, vocab: 256, tokenizer: false });
  const config = JSON.parse(await readFile(path.join(mine, 'config.json'), 'utf8'));
  await writeFile(path.join(mine, 'config.json'), JSON.stringify({ ...config, hidden_size: 128 }));
  // Library placeholders: checkpoints whose vocabularies hold the ids the examples use.
  await writeTinyModel(path.join(work, 't5-small'), { family: 't5', vocab: 32128, seed: 1 });
  await writeTinyModel(path.join(work, 'bert-base-uncased'), { family: 'bert', vocab: 30522, seed: 1 });
  await writeTinyModel(path.join(work, 'no-tokenizer-model'), { family: 'llama', vocab: 256, seed: 1, tokenizer: false });
  const [deepspeed, hf] = policies();
  await writeFile(path.join(work, 'policy.json'), JSON.stringify(hf));
  await writeFile(path.join(work, 'deepspeed-o_proj-only.json'), JSON.stringify({ 'model.layers.*': ['self_attn.o_proj'] }));
  await writeFile(path.join(work, 'deepspeed.json'), JSON.stringify(deepspeed));
}, 120_000);

describe('README: sh blocks', () => {
  const commands = all.filter((b) => b.lang === 'sh').flatMap(commandsOf);
  it('has commands to run', () => expect(commands.length).toBeGreaterThan(10));
  for (const command of commands) {
    const skip = isBenchmark(command) ? 'a benchmark command' : isInstall(command) ? 'the Quickstart install (CI runs it)' : undefined;
    it.skipIf(skip !== undefined || (command.includes('../shared') && !hasShared))(`${command}${skip ? ` (skipped: ${skip})` : ''}`, async () => {
      const r = await sh(substitute(command));
      expect(r.code, `${command}\n${r.stderr}`).toBe(0);
      expect(r.stderr).not.toMatch(/tp: (error|internal)/);
    }, 120_000);
  }
});

describe('README: transcripts', () => {
  // One test per block: its commands run in order (a later one may read what an earlier one wrote).
  const transcripts = all
    .filter((b) => b.lang === '' && b.body.trimStart().startsWith('$ '))
    .map((b) => {
      const out: Array<{ command: string; expected: string[] }> = [];
      for (const line of b.body.split('\n')) {
        if (line.startsWith('$ ')) out.push({ command: line.slice(2), expected: [] });
        else out.at(-1)?.expected.push(line);
      }
      return out;
    });
  it('has transcripts', () => expect(transcripts.length).toBeGreaterThan(4));
  // Lines a command writes to stderr (progress, summaries), not compared with stdout.
  const stderrLine = (l: string) => /^rank \d|tokens? in [\d.]+ s · |^wrote /.test(l);
  for (const steps of transcripts) {
    const title = steps.map((s) => `$ ${s.command}`).join(' ; ');
    const skip = steps.some((s) => isBenchmark(s.command)) ? 'a benchmark command' : undefined;
    it.skipIf(skip !== undefined || (title.includes('../shared') && !hasShared))(title, async () => {
      for (const { command, expected } of steps) {
        const r = await sh(substitute(command));
        const where = `$ ${command}\n${r.stderr}`;
        const error = expected.find((l) => l.startsWith('tp: '));
        if (error?.startsWith('tp: error [')) {
          expect(r.code, where).toBe(1);
          expect(r.stderr.split('\n'), where).toContain(shown(error));
          continue;
        }
        if (error !== undefined) {
          expect(r.code, where).toBe(2);
          expect(r.stderr.split('\n').slice(0, expected.length), where).toEqual(expected.map(shown));
          continue;
        }
        expect(r.code, where).toBe(0);
        const stdout = expected.filter((l) => !stderrLine(l));
        if (stdout.length === 0) continue;
        if (command.startsWith('head -c')) expectSameFloats(r.stdout.trimEnd().split('\n'), stdout, where);
        else expect(r.stdout.trimEnd().split('\n'), where).toEqual(stdout);
      }
    }, 120_000);
  }
});

describe('README: examples shown after a command in the text', () => {
  it('the plan table of the demo llama is what tp plan prints', async () => {
    const block = all.find((b) => b.lang === '' && /pnpm tp plan apps\/demo\/\.model\/demo-llama --tp 2/.test(b.before))!;
    const r = await sh(`node ${CLI} plan apps/demo/.model/demo-llama --tp 2`);
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd()).toBe(block.body.trimEnd());
  });

  it('the streamed demo run and its --json line are what tp run prints', async () => {
    const streamed = all.find((b) => b.lang === '' && /pnpm tp run apps\/demo\/\.model\/demo-llama --tp 2 --max-new-tokens 24 "The quick brown fox"/.test(b.before))!;
    const r = await sh(`node ${CLI} run apps/demo/.model/demo-llama --tp 2 --max-new-tokens 24 "The quick brown fox"`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trimEnd()).toBe(streamed.body.split('\n').find((l) => l.startsWith('The quick brown fox')));
    const json = all.find((b) => b.lang === 'json' && b.section === '`tp run`')!;
    const shownJson = JSON.parse(json.body);
    const j = await sh(`node ${CLI} run apps/demo/.model/demo-llama --tp 2 --max-new-tokens 8 --json "The quick brown fox"`);
    expect(j.code, j.stderr).toBe(0);
    const ran = JSON.parse(j.stdout);
    for (const key of ['prompt', 'prompt_tokens', 'text', 'tokens', 'finish_reason', 'tp', 'backend']) expect(ran[key], key).toEqual(shownJson[key]);
    expect(Object.keys(ran.timings)).toEqual(Object.keys(shownJson.timings));
  });

  it('both policies of the jsonc block plan and run (the HF tp_plan example as shown)', async () => {
    for (const file of ['deepspeed.json', 'policy.json']) {
      const plan = await sh(`node ${CLI} plan apps/demo/.model/demo-llama --tp 2 --policy ${file}`);
      expect(plan.code, plan.stderr).toBe(0);
      const run = await sh(`node ${CLI} run apps/demo/.model/demo-llama --tp 2 --policy ${file} --max-new-tokens 4 --json "Hello"`);
      expect(run.code, run.stderr).toBe(0);
    }
  });
});

describe('README: Library examples', () => {
  const CORE = pathToFileURL(path.join(repo, 'packages/core/dist/index.js')).href;
  const CPU = pathToFileURL(path.join(repo, 'packages/backend-cpu/dist/index.js')).href;
  const library = all.filter((b) => b.lang === 'ts' && b.section === 'Library');
  // Blocks for a page (they import the browser entries) run in headless Chromium's test, not here.
  const forPages = (b: { body: string }) => b.body.includes("from '@tp/core/browser'");
  const gpu = all.filter((b) => b.lang === 'ts' && /@tp\/backend-(cuda|webgpu)/.test(b.body) && !forPages(b));

  /** One module: imports hoisted and merged, top-level const → var (blocks reuse names), TS `!` dropped, folders mapped. */
  function script(sources: readonly string[]): string {
    const imports = new Map<string, Set<string>>();
    const code: string[] = [];
    for (const source of sources) {
      for (const line of source.split('\n')) {
        const m = line.match(/^import \{ (.+) \} from '(.+)';$/);
        if (m) {
          const set = imports.get(m[2]!) ?? new Set();
          for (const name of m[1]!.split(',')) set.add(name.trim());
          imports.set(m[2]!, set);
        } else code.push(line.replace(/^const /, 'var ').replace(/([)\]])!(?=[.;,)\s])/g, '$1'));
      }
    }
    const url = (spec: string) => ({ '@tp/core': CORE, '@tp/backend-cpu': CPU })[spec] ?? spec;
    const head = [...imports].map(([spec, names]) => `import { ${[...names].join(', ')} } from '${url(spec)}';`);
    return [...head, ...code].join('\n').replaceAll("'./my-model'", "'apps/demo/.model/demo-llama'").replaceAll("'./Llama-3.2-1B'", "'apps/demo/.model/demo-llama'").replaceAll("'./t5-v1_1-small'", "'t5-small'").replaceAll("'./", "'");
  }

  it('the Library section\'s ts blocks run as one script', async () => {
    expect(library.length).toBeGreaterThan(2);
    const file = path.join(work, 'library.mjs');
    await writeFile(file, script(library.map((b) => b.body)));
    const r = await sh(`node ${file}`);
    expect(r.code, `${r.stderr}\n${await readFile(file, 'utf8')}`).toBe(0);
  }, 180_000);

  it("the In a browser section's page and worker import names the browser entries export", async () => {
    const pages = all.filter((b) => b.lang === 'ts' && forPages(b));
    expect(pages.length).toBeGreaterThan(0);
    const entries: Record<string, string> = { '@tp/core/browser': 'packages/core/dist/browser.js', '@tp/backend-webgpu/browser': 'packages/backend-webgpu/dist/browser.js' };
    for (const b of pages) {
      for (const [, names, spec] of b.body.matchAll(/^import \{ (.+) \} from '(.+)';$/gm)) {
        const file = entries[spec!];
        expect(file, `a page block imports ${spec}`).toBeDefined();
        const exported = (await import(pathToFileURL(path.join(repo, file!)).href)) as Record<string, unknown>;
        for (const name of names!.split(',').map((n) => n.trim())) expect(exported[name], `${spec} exports ${name}`).toBeDefined();
      }
    }
  });

  for (const b of gpu) {
    const name = b.body.match(/@tp\/backend-(cuda|webgpu)/)![1]!;
    it(`the ${name} example runs where its backend is available`, async (context) => {
      const dist = path.join(repo, `packages/backend-${name}/dist/index.js`);
      if (!existsSync(dist)) return context.skip(`packages/backend-${name} is not built`);
      const { backend } = (await import(pathToFileURL(dist).href)) as { backend: { probe(): Promise<{ available: boolean; reason?: string }> } };
      const probe = await backend.probe();
      if (!probe.available) return context.skip(`the ${name} backend is not available here: ${probe.reason ?? ''}`);
      const file = path.join(work, `${name}.mjs`);
      await writeFile(file, script([`import { initInference } from '@tp/core';`, b.body]).replaceAll(`'@tp/backend-${name}'`, `'${pathToFileURL(dist).href}'`));
      const r = await sh(`node ${file}`);
      expect(r.code, r.stderr).toBe(0);
    }, 180_000);
  }
});
