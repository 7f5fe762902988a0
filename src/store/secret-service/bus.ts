import { createClient, type Message, type MessageBus } from '@homebridge/dbus-native';

const METHOD_CALL = 1;

/** A D-Bus error reply to `member`; `dbusName` is e.g. org.freedesktop.Secret.Error.IsLocked. */
export class DBusError extends Error {
  override name = 'DBusError';
  constructor(
    readonly dbusName: string,
    readonly member: string,
    message: string,
  ) {
    super(message);
  }
}

/** The bus could not be reached, refused us, or went away. */
export class BusConnectionError extends Error {
  override name = 'BusConnectionError';
}

/** A call got no reply in time: the bus or the service behind it is dead or stuck. */
export class BusTimeoutError extends Error {
  override name = 'BusTimeoutError';
  constructor(
    readonly member: string,
    readonly timeoutMs: number,
  ) {
    super(`no reply to ${member} within ${timeoutMs} ms`);
  }
}

/** One method call; `body` values follow `signature` as dbus-native marshals them. */
export interface MethodCall {
  destination: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: unknown[];
}

/** A session-bus connection on which every call is bounded by `timeoutMs`. */
export class Bus {
  private failure: Error | undefined;
  private readonly inFlight = new Set<(err: Error) => void>();

  private constructor(
    private readonly client: MessageBus,
    readonly timeoutMs: number,
  ) {
    const conn = client.connection;
    conn.on('error', (err: Error) => this.fail(new BusConnectionError(err.message, { cause: err })));
    conn.on('end', () => this.fail(new BusConnectionError('the bus closed the connection')));
    // Calls in flight hold their own timers; an idle connection must never keep the process alive.
    conn.stream.unref();
  }

  /** Connects to a D-Bus address; connection failures surface on the first call, as BusConnectionError. */
  static connect(address: string, timeoutMs: number): Bus {
    // The library's own message for a malformed address is a TypeError about its parser's internals.
    if (!/^[a-z]+:/i.test(address)) {
      throw new BusConnectionError(
        `DBUS_SESSION_BUS_ADDRESS "${address.slice(0, 100)}" is not a D-Bus address (expected e.g. unix:path=/run/user/1000/bus)`,
      );
    }
    // Abstract-namespace sockets need a native module the bundle leaves out (scripts/bundle.mjs): offer
    // the library only the alternatives it can use, and say so plainly when none is left.
    const usable = address.split(';').filter((a) => !/^unix:(.*,)?abstract=/.test(a));
    if (usable.length === 0) {
      throw new BusConnectionError(
        `DBUS_SESSION_BUS_ADDRESS offers only abstract sockets (unix:abstract=...), which entraclaw cannot use; it connects to unix:path= addresses`,
      );
    }
    try {
      return new Bus(createClient({ busAddress: usable.join(';') }), timeoutMs);
    } catch (err) {
      throw new BusConnectionError(`cannot connect to ${address}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Sends one call and resolves with the reply's body values. */
  call(c: MethodCall): Promise<unknown[]> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const msg: Message = { type: METHOD_CALL, ...c };
      const settle = (err: Error | undefined, body: unknown[] = []) => {
        clearTimeout(timer);
        this.inFlight.delete(abort);
        if (err) reject(err);
        else resolve(body);
      };
      // Dropping the reply handler keeps a late reply from resolving anything, and lets it be collected.
      const abort = (err: Error) => {
        if (msg.serial !== undefined) delete this.client.cookies[msg.serial];
        settle(err);
      };
      const timer = setTimeout(() => abort(new BusTimeoutError(c.member, this.timeoutMs)), this.timeoutMs);
      this.inFlight.add(abort);
      try {
        this.client.invoke(msg, (err, ...body) => {
          if (!err) settle(undefined, body);
          else if (err instanceof Error) settle(new BusConnectionError(err.message, { cause: err }));
          else settle(new DBusError(err.name, c.member, err.message));
        });
      } catch (err) {
        abort(err as Error);
      }
    });
  }

  /** Fails every call in flight and drops the socket without waiting for the peer. */
  close(): void {
    this.fail(new BusConnectionError('the connection is closed'));
    this.client.connection.stream.destroy();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const abort of [...this.inFlight]) abort(this.failure);
  }
}
