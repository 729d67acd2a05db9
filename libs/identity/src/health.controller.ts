import { Controller, Get, Header, ServiceUnavailableException } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { InjectDataSource } from '@nestjs/typeorm';
import { HealthCheckService, TypeOrmHealthIndicator, type HealthCheckResult } from '@nestjs/terminus';
import { DataSource } from 'typeorm';

/** How long the database has to answer `SELECT 1` before the IdP is not ready. */
export const READY_TIMEOUT_MS = 2000;

/**
 * `GET /health/live` and `GET /health/ready` (CONTRACT.md §6), on @nestjs/terminus: readiness is
 * its HealthCheckService over the TypeORM ping of the IdP's database, answered in the IdP's shapes
 * (`{ status: 'ok', database: 'up' }`, or 503 in the admin error format). IdentityModule registers
 * TerminusModule with `logger: false`: a failed check is answered, not logged (terminus would log
 * through Nest's process-wide Logger, not this application's JsonLogger).
 */
@ApiExcludeController()
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly typeorm: TypeOrmHealthIndicator,
    @InjectDataSource() private readonly db: DataSource,
  ) {}

  /** The process answers. Nothing else is checked, so an outage of the database restarts nothing. */
  @Get('live')
  @Header('Cache-Control', 'no-store')
  live() {
    return { status: 'ok' };
  }

  /** Ready when the database answers within READY_TIMEOUT_MS, and the application is not shutting down. */
  @Get('ready')
  @Header('Cache-Control', 'no-store')
  async ready() {
    let result: HealthCheckResult;
    try {
      result = await this.health.check([() => this.typeorm.pingCheck('database', { connection: this.db, timeout: READY_TIMEOUT_MS })]);
    } catch (err) {
      if (!(err instanceof ServiceUnavailableException)) throw err;
      const shuttingDown = (err.getResponse() as HealthCheckResult).status === 'shutting_down';
      throw new ServiceUnavailableException({ statusCode: 503, error: 'temporarily_unavailable', message: shuttingDown ? 'the server is shutting down' : 'database is down' });
    }
    return { status: 'ok', database: result.details.database.status };
  }
}
