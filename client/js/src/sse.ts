/**
 * @internal A `text/event-stream` parser (the WHATWG rules that pushd's streams use): lines end
 * with `\r\n`, `\n` or `\r`; `data:` lines join with `\n`; a blank line dispatches the event;
 * `id:` and `retry:` are kept; comments (`: keepalive`) and other fields are skipped.
 */
export class EventStreamParser {
  /** The ID of the last event dispatched: what a reconnect sends as Last-Event-ID. */
  id = "";
  /** The latest `retry:` (ms), when the server sent one. */
  retry: number | undefined;
  private rest = "";
  private data: string | undefined;
  private nextId: string | undefined;

  constructor(private readonly event: (data: string) => void) {}

  /** Parses the next chunk of the stream, dispatching the events it completes. */
  push(chunk: string): void {
    const s = this.rest + chunk;
    let start = 0;
    for (let i = 0; i < s.length; i++) {
      const ch = s.charCodeAt(i);
      if (ch !== 10 && ch !== 13) continue;
      if (ch === 13 && i + 1 === s.length) break; // a "\n" may follow in the next chunk
      this.line(s.slice(start, i));
      if (ch === 13 && s.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
    this.rest = s.slice(start);
  }

  private line(line: string): void {
    if (line === "") {
      if (this.nextId !== undefined) this.id = this.nextId;
      const data = this.data;
      this.data = this.nextId = undefined;
      if (data !== undefined) this.event(data);
      return;
    }
    const colon = line.indexOf(":");
    if (colon === 0) return; // a comment
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === "data") this.data = this.data === undefined ? value : `${this.data}\n${value}`;
    else if (field === "id" && !value.includes("\0")) this.nextId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }
}
