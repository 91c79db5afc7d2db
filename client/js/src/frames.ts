/** The server's first frame of a session (docs/PROTOCOL.md). */
export interface HelloFrame {
  type: "hello";
  /** The session ID: a snowflake as a decimal string. */
  sid: string;
  /** The node's number. */
  node: number;
  user: string;
  /** Milliseconds between the client's heartbeats. */
  ping_interval: number;
  /** Milliseconds of silence after which the server closes the session. */
  ping_timeout: number;
  /** The user subject's position (durable delivery). */
  seq?: string;
  /** With `since` in connect: whether every push since it is being replayed. */
  recovered?: boolean;
  id?: string;
}

/** A push frame as the server sends it. */
export interface PushFrame {
  type: "push";
  target: "user" | "doc" | "all" | "session";
  doc?: string;
  event: string;
  id?: string;
  seq?: string;
  ack?: boolean;
  data: unknown;
}

/** Any frame from the server; unknown fields are ignored. */
export interface ServerFrame {
  type: string;
  id?: string;
  doc?: string;
  code?: string;
  message?: string;
  seq?: string;
  recovered?: boolean;
  exp?: number;
  ping_interval?: number;
  ping_timeout?: number;
  [field: string]: unknown;
}

/** A frame the client sends. */
export interface ClientFrame {
  type: string;
  id?: string;
  [field: string]: unknown;
}
