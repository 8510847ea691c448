/** A bad option or argument: the message alone says what is wrong (the CLI prints it and exits 2). */
export class TinyModelError extends Error {
  override readonly name = 'TinyModelError';
}
