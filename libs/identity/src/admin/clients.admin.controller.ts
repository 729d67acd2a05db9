import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiConflictResponse, ApiCreatedResponse, ApiNotFoundResponse, ApiOkResponse, ApiQuery } from '@nestjs/swagger';
import { pageRequest, CurrentContext, RequestContext } from '@idp/core';
import { ClientMetadataDto, ClientView, ClientsService } from '@idp/clients';
import { BearerToken, CurrentToken, GrantRegistry, RequireScopes } from '@idp/token';
import { AdminApi } from './admin.decorators';
import { PageQuery } from './page-query.dto';

@AdminApi('clients')
@Controller('admin/clients')
export class ClientsAdminController {
  constructor(private readonly clients: ClientsService, private readonly grants: GrantRegistry) {}

  @Post()
  @RequireScopes('write:clients')
  @ApiCreatedResponse({ type: ClientView, description: 'the client, with its client_secret (shown only here and on rotation)' })
  async create(@Body() dto: ClientMetadataDto, @CurrentToken() token: BearerToken, @CurrentContext() ctx: RequestContext | undefined): Promise<ClientView> {
    const { client, secret } = await this.clients.register(dto, { grantTypes: this.grants.grantTypes, actor: token.client_id, ctx });
    return ClientView.of(client, secret);
  }

  @Get()
  @RequireScopes('read:clients')
  @ApiQuery({ name: 'limit', required: false }) @ApiQuery({ name: 'cursor', required: false })
  list(@Query() query: PageQuery) {
    return this.clients.list(pageRequest(query));
  }

  @Get(':client_id')
  @RequireScopes('read:clients')
  @ApiOkResponse({ type: ClientView }) @ApiNotFoundResponse()
  async get(@Param('client_id') id: string): Promise<ClientView> {
    return ClientView.of(await this.clients.get(id));
  }

  @Patch(':client_id')
  @RequireScopes('write:clients')
  @ApiOkResponse({ type: ClientView }) @ApiNotFoundResponse()
  async update(@Param('client_id') id: string, @Body() dto: ClientMetadataDto, @CurrentToken() token: BearerToken, @CurrentContext() ctx: RequestContext | undefined): Promise<ClientView> {
    const { client, secret } = await this.clients.update(id, dto, { grantTypes: this.grants.grantTypes, actor: token.client_id, ctx });
    return ClientView.of(client, secret);
  }

  @Delete(':client_id')
  @HttpCode(204)
  @RequireScopes('write:clients')
  @ApiNotFoundResponse()
  remove(@Param('client_id') id: string, @CurrentToken() token: BearerToken, @CurrentContext() ctx: RequestContext | undefined): Promise<void> {
    return this.clients.remove(id, token.client_id, ctx);
  }

  @Post(':client_id/secret')
  @HttpCode(200)
  @RequireScopes('write:clients')
  @ApiOkResponse({ type: ClientView, description: 'the client with its new client_secret (shown once)' }) @ApiConflictResponse()
  async rotateSecret(@Param('client_id') id: string, @CurrentToken() token: BearerToken, @CurrentContext() ctx: RequestContext | undefined): Promise<ClientView> {
    const { client, secret } = await this.clients.rotateSecret(id, { actor: token.client_id, ctx });
    return ClientView.of(client, secret);
  }
}
