/**
 * Minimal structured logger port. Adapters must not throw. `fields` never carry secrets: callers redact
 * URLs and passwords before logging (see `redactUrl`).
 */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const order: LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

/** Writes one line per event to stderr: `tmm <level> <message> {json fields}`. */
export class ConsoleLogger implements Logger {
  constructor(private readonly level: LogLevel = 'info') {}
  private write(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    if (order.indexOf(level) < order.indexOf(this.level)) return;
    let tail = '';
    if (fields && Object.keys(fields).length > 0) {
      try {
        tail = ' ' + JSON.stringify(fields, (_k, v) => (v instanceof Error ? { name: v.name, message: v.message } : v));
      } catch {
        tail = ' [unserializable fields]';
      }
    }
    process.stderr.write(`tmm ${level} ${message}${tail}\n`);
  }
  debug(m: string, f?: Record<string, unknown>): void { this.write('debug', m, f); }
  info(m: string, f?: Record<string, unknown>): void { this.write('info', m, f); }
  warn(m: string, f?: Record<string, unknown>): void { this.write('warn', m, f); }
  error(m: string, f?: Record<string, unknown>): void { this.write('error', m, f); }
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** `amqp://user:secret@host/vhost` → `amqp://user:***@host/vhost`; anything unparseable is fully masked. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '***';
  }
}

type LogMethod = (...args: unknown[]) => unknown;

/**
 * Takes the logger an app already has: any object with debug/info/warn/error. A pino logger (its methods
 * take the fields first: `info(obj, msg)`) is called that way; winston, console-like and tmm loggers
 * take `(message, fields)`. Missing methods fall back to the nearest present one; a logger that throws
 * is never allowed to break tmm.
 */
export function toLogger(logger: object): Logger {
  const l = logger as Record<string, unknown>;
  const pino = typeof l.bindings === 'function' && typeof l.child === 'function' && 'levels' in l;
  const pick = (...names: string[]): LogMethod | undefined => {
    for (const n of names) if (typeof l[n] === 'function') return (l[n] as LogMethod).bind(logger);
    return undefined;
  };
  const make = (...names: string[]) => {
    const fn = pick(...names);
    return (message: string, fields?: Record<string, unknown>): void => {
      if (!fn) return;
      try {
        if (pino) fields === undefined ? fn(message) : fn(fields, message);
        else fields === undefined ? fn(message) : fn(message, fields);
      } catch {
        // a broken logger must not turn into a failed publish or handler
      }
    };
  };
  if (!pino && l instanceof ConsoleLogger) return logger as Logger;
  return { debug: make('debug', 'info'), info: make('info'), warn: make('warn', 'error'), error: make('error', 'warn') };
}
