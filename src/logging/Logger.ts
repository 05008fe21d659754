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
