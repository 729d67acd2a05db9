import { LoggerService } from '@nestjs/common';
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';

/** LOG_LEVEL's values (config.ts); pino's own levels of the same names. */
type Level = 'debug' | 'info' | 'warn' | 'error';
const LEVELS = new Set(['debug', 'info', 'warn', 'error', 'silent']);

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
 * pino's redaction by path: the credentials a request or response carries in its headers, wherever
 * a request (`req`), a response (`res`) or headers are logged. Each path begins with a literal key,
 * so lines without such a key (a request line, an audit line) pay nothing for it.
 */
export const REDACTED_PATHS = ['req.headers', 'res.headers', 'headers'].flatMap((at) =>
  ['authorization', 'proxy-authorization', 'cookie', 'set-cookie'].map((header) => `${at}["${header}"]`),
);

/**
 * A request object as it may appear in a line (`{ req }`): its method and path, never its query
 * string, headers or body.
 */
function requestSerializer(req: { method?: unknown; url?: unknown } | undefined): unknown {
  if (!req || typeof req !== 'object') return req;
  const url = typeof req.url === 'string' ? req.url : '';
  const q = url.indexOf('?');
  return { method: req.method, path: q < 0 ? url : url.slice(0, q) };
}

/**
 * stdout, written once per turn of the event loop instead of once per line: a write to a pipe is
 * a system call, and a busy server logs a line per request. Flushed on exit. pino's destination.
 */
let pending: string[] = [];
let scheduled = false;
export function flushLogs(): void {
  scheduled = false;
  if (!pending.length) return;
  const chunk = pending.join('');
  pending = [];
  process.stdout.write(chunk);
}
const batchedStdout: DestinationStream = {
  write(line: string): void {
    pending.push(line);
    if (pending.length >= 1000) return flushLogs();
    if (!scheduled) {
      scheduled = true;
      setImmediate(flushLogs);
    }
  },
};
process.once('exit', flushLogs);

/** A destination that hands each line (without its newline) to `sink`: the tests' seam. */
function sinkStream(sink: (line: string) => void): DestinationStream {
  return { write: (line: string) => sink(line.endsWith('\n') ? line.slice(0, -1) : line) };
}

/** Nest's start-up chatter (one line per module and route): debug, not info. */
const QUIET = new Set(['InstanceLoader', 'RoutesResolver', 'RouterExplorer', 'NestFactory']);

/**
 * The application's logger: pino, one JSON object per line on stdout (CONTRACT §6), `time` (ISO
 * 8601), `level` (its name) and `msg`, then the line's fields. Nest's own messages come through
 * `log/warn/…`; structured records through `write`; request lines straight on `pino`
 * (request-log.ts). Header credentials are redacted by path (REDACTED_PATHS), and the
 * fields a caller passes to `write` that look secret by their key (`redact`), as a last line of
 * defence: callers are expected never to pass secrets in the first place. `sink` receives each
 * line instead of stdout (tests).
 */
export class JsonLogger implements LoggerService {
  readonly pino: PinoLogger;
  constructor(level: string = 'info', sink?: (line: string) => void) {
    this.pino = pino(
      {
        level: LEVELS.has(level) ? level : 'info',
        base: null,
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
        serializers: { req: requestSerializer, err: pino.stdSerializers.err },
        redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      },
      sink ? sinkStream(sink) : batchedStdout,
    );
  }

  write(level: Level | 'fatal', msg: string, fields: Record<string, unknown> = {}): void {
    if (!this.pino.isLevelEnabled(level)) return;
    this.pino[level](redact(fields) as object, msg);
  }

  log(message: unknown, context?: string) { this.write(context && QUIET.has(context) ? 'debug' : 'info', String(message), context ? { context } : {}); }
  warn(message: unknown, context?: string) { this.write('warn', String(message), context ? { context } : {}); }
  debug(message: unknown, context?: string) { this.write('debug', String(message), context ? { context } : {}); }
  verbose(message: unknown, context?: string) { this.write('debug', String(message), context ? { context } : {}); }
  fatal(message: unknown, context?: string) { this.write('fatal', String(message), context ? { context } : {}); }
  error(message: unknown, ...rest: unknown[]) {
    // Nest passes (message, stack?, context?). Stacks go to the log only, never to a client.
    const context = typeof rest[rest.length - 1] === 'string' ? (rest[rest.length - 1] as string) : undefined;
    const stack = rest.length > 1 && typeof rest[0] === 'string' ? rest[0] : message instanceof Error ? message.stack : undefined;
    this.write('error', message instanceof Error ? message.message : String(message), { context, stack });
  }
}
