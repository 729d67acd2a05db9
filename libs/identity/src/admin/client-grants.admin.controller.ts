import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiConflictResponse, ApiCreatedResponse, ApiNotFoundResponse, ApiQuery } from '@nestjs/swagger';
import { pageRequest, CurrentContext, RequestContext } from '@idp/core';
import { ClientGrantView, CreateClientGrantDto, ResourcesService } from '@idp/resources';
import { BearerToken, CurrentToken, RequireScopes } from '@idp/token';
import { AdminApi } from './admin.decorators';
import { ClientGrantQuery } from './page-query.dto';

@AdminApi('client-grants')
@Controller('admin/client-grants')
export class ClientGrantsAdminController {
  constructor(private readonly resources: ResourcesService) {}

  @Post()
  @RequireScopes('write:client_grants')
  @ApiCreatedResponse({ type: ClientGrantView }) @ApiNotFoundResponse({ description: 'unknown client_id or audience' }) @ApiConflictResponse()
  create(@Body() dto: CreateClientGrantDto, @CurrentToken() token: BearerToken, @CurrentContext() ctx: RequestContext | undefined): Promise<ClientGrantView> {
    return this.resources.createGrant(dto, token.client_id, ctx);
  }

  @Get()
  @RequireScopes('read:client_grants')
  @ApiQuery({ name: 'client_id', required: false }) @ApiQuery({ name: 'limit', required: false }) @ApiQuery({ name: 'cursor', required: false })
  list(@Query() query: ClientGrantQuery) {
    return this.resources.listGrants(pageRequest(query), { clientId: query.client_id });
  }

  @Delete(':id')
  @HttpCode(204)
  @RequireScopes('write:client_grants')
  @ApiNotFoundResponse()
  remove(@Param('id') id: string, @CurrentToken() token: BearerToken, @CurrentContext() ctx: RequestContext | undefined): Promise<void> {
    return this.resources.removeGrant(id, token.client_id, ctx);
  }
}
