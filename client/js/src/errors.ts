/**
 * Error codes: the server's error frame codes (docs/PROTOCOL.md, e.g. `forbidden`, `not_joined`,
 * `token_expired`, `bad_since`), its refusal codes from close reasons (`token_invalid`,
 * `forbidden_origin`, `kicked`, ...), and the client's own:
 *
 * - `timeout`: no reply within `requestTimeout`;
 * - `disconnected`: the connection closed before the reply came (the request may or may not have
 *   taken effect);
 * - `closed`: the client was stopped with `disconnect()`, or stopped on its own after a close
 *   code that forbids reconnecting;
 * - `token`: `getToken()` failed or returned no token;
 * - `listener`: an event listener threw;
 * - `protocol`: the server sent something this client does not understand.
 */
export type ErrorCode = string;

/** An error from pushd or from the client; `code` says which (see {@link ErrorCode}). */
export class PushdError extends Error {
  /** The error code. */
  readonly code: ErrorCode;
  /** The doc the error is about, when it is about one. */
  readonly doc: string | undefined;
  /** For errors caused by a close: its close code. */
  readonly closeCode: number | undefined;

  constructor(code: ErrorCode, message: string, options: { doc?: string | undefined; closeCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PushdError";
    this.code = code;
    this.doc = options.doc;
    this.closeCode = options.closeCode;
  }
}
