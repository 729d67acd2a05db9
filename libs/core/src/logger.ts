import { LoggerService } from '@nestjs/common';

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
type Level = keyof typeof LEVELS;

/** Keys whose values never reach a log line, whatever a caller passes in. */
const SECRET_KEY = /pass(word)?|secret|token|code|assertion|authorization|cookie|jwt|key$/i;

export function redact(value: unknown, depth = 0): unknown {
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = SECRET_KEY.test(k) && k !== 'status_code' && typeof v !== 'number' ? '[redacted]' : redact(v, depth + 1);
  }
  return out;
}

/**
 * stdout, written once per turn of the event loop instead of once per line: a write to a pipe is
 * a system call, and a busy server logs a line per request. Flushed on exit.
 */
let pending: string[] = [];
let scheduled = false;
export function flushLogs(): void {
  scheduled = false;
  if (!pending.length) return;
  const chunk = pending.join('\n') + '\n';
  pending = [];
  process.stdout.write(chunk);
}
function bufferedStdout(line: string): void {
  pending.push(line);
  if (pending.length >= 1000) return flushLogs();
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushLogs);
  }
}
process.once('exit', flushLogs);

/** Nest's start-up chatter (one line per module and route): debug, not info. */
const QUIET = new Set(['InstanceLoader', 'RoutesResolver', 'RouterExplorer', 'NestFactory']);

/**
 * One JSON object per line on stdout (CONTRACT §6). Nest's own messages come through `log/warn/…`;
 * structured records through `write`. Fields that look secret are redacted as a last line of
 * defence: callers are expected never to pass secrets in the first place.
 */
export class JsonLogger implements LoggerService {
  private readonly min: number;
  constructor(level: string = 'info', private readonly out: (line: string) => void = bufferedStdout) {
    this.min = LEVELS[(level as Level) in LEVELS ? (level as Level) : 'info'];
  }

  write(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
    if (LEVELS[level] < this.min) return;
    this.out(JSON.stringify({ time: new Date().toISOString(), level, msg, ...(redact(fields) as object) }));
  }

  log(message: unknown, context?: string) { this.write(context && QUIET.has(context) ? 'debug' : 'info', String(message), context ? { context } : {}); }
  warn(message: unknown, context?: string) { this.write('warn', String(message), context ? { context } : {}); }
  debug(message: unknown, context?: string) { this.write('debug', String(message), context ? { context } : {}); }
  verbose(message: unknown, context?: string) { this.write('debug', String(message), context ? { context } : {}); }
  error(message: unknown, ...rest: unknown[]) {
    // Nest passes (message, stack?, context?). Stacks go to the log only, never to a client.
    const context = typeof rest[rest.length - 1] === 'string' ? (rest[rest.length - 1] as string) : undefined;
    const stack = rest.length > 1 && typeof rest[0] === 'string' ? rest[0] : message instanceof Error ? message.stack : undefined;
    this.write('error', message instanceof Error ? message.message : String(message), { context, stack });
  }
}
