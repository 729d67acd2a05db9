import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiConflictResponse, ApiCreatedResponse, ApiNotFoundResponse, ApiOkResponse, ApiQuery } from '@nestjs/swagger';
import { pageRequest, CurrentContext, RequestContext } from '@idp/core';
import { ApiView, CreateApiDto, ResourcesService, UpdateApiDto } from '@idp/resources';
import { BearerToken, CurrentToken, RequireScopes } from '@idp/token';
import { AdminApi } from './admin.decorators';
import { PageQuery } from './page-query.dto';

@AdminApi('apis')
@Controller('admin/apis')
export class ApisAdminController {
  constructor(private readonly resources: ResourcesService) {}

  @Post()
  @RequireScopes('write:apis')
  @ApiCreatedResponse({ type: ApiView }) @ApiConflictResponse({ description: 'identifier already registered' })
  async create(@Body() dto: CreateApiDto, @CurrentToken() token: BearerToken, @CurrentContext() ctx: RequestContext | undefined): Promise<ApiView> {
    return ApiView.of(await this.resources.createApi(dto, token.client_id, ctx));
  }

  @Get()
  @RequireScopes('read:apis')
  @ApiQuery({ name: 'limit', required: false }) @ApiQuery({ name: 'cursor', required: false })
  list(@Query() query: PageQuery) {
    return this.resources.listApis(pageRequest(query));
  }

  @Get(':id')
  @RequireScopes('read:apis')
  @ApiOkResponse({ type: ApiView }) @ApiNotFoundResponse()
  async get(@Param('id') id: string): Promise<ApiView> {
    return ApiView.of(await this.resources.getApi(id));
  }

  @Patch(':id')
  @RequireScopes('write:apis')
  @ApiOkResponse({ type: ApiView }) @ApiNotFoundResponse()
  async update(@Param('id') id: string, @Body() dto: UpdateApiDto, @CurrentToken() token: BearerToken, @CurrentContext() ctx: RequestContext | undefined): Promise<ApiView> {
    return ApiView.of(await this.resources.updateApi(id, dto, token.client_id, ctx));
  }

  @Delete(':id')
  @HttpCode(204)
  @RequireScopes('write:apis')
  @ApiNotFoundResponse() @ApiConflictResponse({ description: 'the admin API cannot be deleted' })
  remove(@Param('id') id: string, @CurrentToken() token: BearerToken, @CurrentContext() ctx: RequestContext | undefined): Promise<void> {
    return this.resources.removeApi(id, token.client_id, ctx);
  }
}
