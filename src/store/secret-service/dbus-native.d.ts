// The package's own index.d.ts covers only systemBus(); this declares the part of the CommonJS API the
// Secret Service client and its tests use. An ambient declaration takes precedence over the package's types.
declare module '@homebridge/dbus-native' {
  import type { EventEmitter } from 'node:events';
  import type { Socket } from 'node:net';

  /** A message as dbus-native marshals it; `body` values follow `signature`. */
  export interface Message {
    type?: number;
    flags?: number;
    serial?: number;
    destination?: string;
    path?: string;
    interface?: string;
    member?: string;
    signature?: string;
    body?: unknown[];
  }

  /** What a call's callback receives for a D-Bus error reply. */
  export interface ErrorReply {
    name: string;
    message: string;
  }

  /** The socket-level connection; emits 'error' and 'end'. */
  export interface Connection extends EventEmitter {
    stream: Socket;
  }

  /** A client connection to a bus. */
  export interface MessageBus {
    connection: Connection;
    /** Reply handlers by request serial; a call that gives up must remove its own. */
    cookies: Record<number, unknown>;
    invoke(msg: Message, callback: (err: ErrorReply | Error | null, ...body: unknown[]) => void): void;
    /**
     * Serves an object at `path`: methods of `impl` answer calls (a returned Error carrying `dbusName` goes
     * back as that D-Bus error) and its fields are the interface's properties.
     */
    exportInterface(
      impl: object,
      path: string,
      iface: {
        name: string;
        methods: Record<string, [string, string]>;
        properties: Record<string, string>;
        signals: Record<string, string[]>;
      },
    ): void;
    /** Asks the bus for a well-known name (flags: 4 = do not queue). */
    requestName(
      name: string,
      flags: number,
      callback: (err: ErrorReply | null, result?: number) => void,
    ): void;
  }

  /** Connects to the bus at `busAddress` (a D-Bus address string) and says Hello. */
  export function createClient(opts: { busAddress: string }): MessageBus;
}
