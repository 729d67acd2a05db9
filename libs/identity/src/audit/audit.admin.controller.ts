import { Controller, Get, Query } from '@nestjs/common';
import { ApiQuery } from '@nestjs/swagger';
import { IsOptional, IsString, MaxLength } from 'class-validator';
import { pageRequest } from '@idp/core';
import { RequireScopes } from '@idp/token';
import { AdminApi } from '../admin/admin.decorators';
import { PageQuery } from '../admin/page-query.dto';
import { AuditService, parseSince } from './audit.service';

export class AuditQuery extends PageQuery {
  @IsOptional() @IsString() @MaxLength(64) type?: string;
  @IsOptional() @IsString() @MaxLength(36) user_id?: string;
  @IsOptional() @IsString() @MaxLength(128) client_id?: string;
  @IsOptional() @IsString() @MaxLength(40) since?: string;
}

@AdminApi('audit-events')
@Controller('admin/audit-events')
export class AuditAdminController {
  constructor(private readonly audit: AuditService) {}

  /** Newest first. */
  @Get()
  @RequireScopes('read:audit_events')
  @ApiQuery({ name: 'type', required: false }) @ApiQuery({ name: 'user_id', required: false }) @ApiQuery({ name: 'client_id', required: false })
  @ApiQuery({ name: 'since', required: false, description: 'ISO 8601 date-time' }) @ApiQuery({ name: 'limit', required: false }) @ApiQuery({ name: 'cursor', required: false })
  list(@Query() q: AuditQuery) {
    return this.audit.list(pageRequest(q), { type: q.type, userId: q.user_id, clientId: q.client_id, since: parseSince(q.since) });
  }
}
