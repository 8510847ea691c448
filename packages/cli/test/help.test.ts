/** Every command is listed and teaches with examples. */
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers.js';

describe('help', () => {
  it('tp --help lists every command', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    for (const command of ['plan <model-dir>', 'run <model-dir>', 'logits <model-dir>', 'bench <model-dir>', 'devices']) expect(stdout).toContain(command);
    expect((await runCli([])).code).toBe(2);
  });

  it('each command --help gives its options and examples', async () => {
    const expected: Record<string, string[]> = {
      plan: ['--tp N', '--json', '--policy FILE', '--dtype T', '--kv-dtype T', 'always f32'],
      run: ['--tp N', '--backend NAME', '--max-new-tokens N', '--temperature T', '--top-k K', '--top-p P', '--seed N', '--json', '--vocab-parallel', '--policy FILE', '--dtype T', '--kv-dtype T', 'always f32', 'tp run ./'],
      logits: ['--tokens IDS', '--text TEXT', '--out FILE', '--tp N', '--dtype T', '--kv-dtype T', 'always f32', 'tp logits ./'],
      devices: ['--backend NAME', '--json', 'tp devices'],
      bench: ['--tp LIST', '--prompt N', '--new N', '--runs N', '--json', 'decode_ms_per_token', 'tp bench ./'],
    };
    for (const [command, texts] of Object.entries(expected)) {
      for (const argv of [[command, '--help'], ['help', command]]) {
        const { code, stdout } = await runCli(argv);
        expect(code).toBe(0);
        expect(stdout).toContain('Examples:');
        for (const text of texts) expect(stdout, `${command}: ${text}`).toContain(text);
      }
    }
  });
});
