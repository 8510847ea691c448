/** Generated text on a terminal: streaming deltas and visible control characters. */
import type { TextTokenizer } from '@tp/core';

/**
 * Turns a growing list of tokens into text deltas. Each step decodes the whole continuation and
 * returns what was added since the last step. A trailing U+FFFD is held back: it usually means a
 * multi-byte character whose remaining bytes come with the next token.
 */
export class StreamingDecoder {
  private readonly tokens: number[] = [];
  private printed = '';

  constructor(private readonly tokenizer: TextTokenizer | undefined) {}

  /** Add one token; returns the new text to print ('' when nothing is settled yet). */
  push(token: number): string {
    this.tokens.push(token);
    if (this.tokenizer === undefined) return `${this.tokens.length === 1 ? '' : ' '}${token}`;
    return this.advance(this.tokenizer.decode(this.tokens).replace(/\uFFFD+$/, ''));
  }

  /** The rest, once generation has ended (held-back characters included). */
  flush(): string {
    if (this.tokenizer === undefined) return '';
    return this.advance(this.tokenizer.decode(this.tokens));
  }

  private advance(text: string): string {
    // Decoding is not always prefix-stable; print only once the text extends what was printed.
    if (!text.startsWith(this.printed)) return '';
    const delta = text.slice(this.printed.length);
    this.printed = text;
    return delta;
  }
}

/**
 * Control characters (other than newline and tab) written as \xNN, so that a model's output — random
 * weights produce any byte — cannot move the cursor or change the terminal's state.
 */
export function visibleText(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
