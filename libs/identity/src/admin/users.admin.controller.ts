import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiConflictResponse, ApiCreatedResponse, ApiNotFoundResponse, ApiOkResponse, ApiQuery } from '@nestjs/swagger';
import { pageRequest, CurrentContext, RequestContext } from '@idp/core';
import { CreateUserDto, UpdateUserDto, UserView, UsersService } from '@idp/users';
import { BearerToken, CurrentToken, RequireScopes } from '@idp/token';
import { AdminApi } from './admin.decorators';
import { UserQuery } from './page-query.dto';

@AdminApi('users')
@Controller('admin/users')
export class UsersAdminController {
  constructor(private readonly users: UsersService) {}

  @Post()
  @RequireScopes('write:users')
  @ApiCreatedResponse({ type: UserView }) @ApiConflictResponse({ description: 'email already registered' })
  async create(@Body() dto: CreateUserDto, @CurrentToken() token: BearerToken, @CurrentContext() ctx: RequestContext | undefined): Promise<UserView> {
    return UserView.of(await this.users.create(dto, token.client_id, ctx));
  }

  @Get()
  @RequireScopes('read:users')
  @ApiQuery({ name: 'email', required: false }) @ApiQuery({ name: 'limit', required: false }) @ApiQuery({ name: 'cursor', required: false })
  list(@Query() query: UserQuery) {
    return this.users.list(pageRequest(query), { email: query.email });
  }

  @Get(':user_id')
  @RequireScopes('read:users')
  @ApiOkResponse({ type: UserView }) @ApiNotFoundResponse()
  async get(@Param('user_id') id: string): Promise<UserView> {
    return UserView.of(await this.users.get(id));
  }

  @Patch(':user_id')
  @RequireScopes('write:users')
  @ApiOkResponse({ type: UserView }) @ApiNotFoundResponse() @ApiConflictResponse()
  async update(@Param('user_id') id: string, @Body() dto: UpdateUserDto, @CurrentToken() token: BearerToken, @CurrentContext() ctx: RequestContext | undefined): Promise<UserView> {
    return UserView.of(await this.users.update(id, dto, token.client_id, ctx));
  }

  @Delete(':user_id')
  @HttpCode(204)
  @RequireScopes('write:users')
  @ApiNotFoundResponse()
  remove(@Param('user_id') id: string, @CurrentToken() token: BearerToken, @CurrentContext() ctx: RequestContext | undefined): Promise<void> {
    return this.users.remove(id, token.client_id, ctx);
  }
}
