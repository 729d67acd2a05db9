import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsBoolean, IsInt, IsObject, IsOptional, IsString, Matches, Max, MaxLength, Min, MinLength, ValidateIf, ValidateNested } from 'class-validator';
import type { Api } from './api.entity';
import type { ClientGrant } from './client-grant.entity';

const SCOPE = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

export class ApiScopeDto {
  @ApiProperty({ example: 'read:orders' }) @IsString() @MinLength(1) @MaxLength(128) @Matches(SCOPE, { message: 'value must be a scope token (no spaces, quotes or backslashes)' }) value: string;
  @ApiProperty({ example: 'Read your orders' }) @IsString() @MaxLength(500) description: string;
}

export class CreateApiDto {
  @ApiProperty({ example: 'https://api.example.com/orders', description: 'the audience of its tokens; an absolute URI' })
  @IsString() @MinLength(1) @MaxLength(512) identifier: string;
  @ApiProperty({ example: 'Orders API' }) @IsString() @MinLength(1) @MaxLength(255) name: string;
  @ApiPropertyOptional({ type: [ApiScopeDto] }) @IsOptional() @IsArray() @ArrayMaxSize(200) @IsObject({ each: true }) @ValidateNested({ each: true }) @Type(() => ApiScopeDto) scopes?: ApiScopeDto[];
  @ApiPropertyOptional({ default: 86400, minimum: 60, maximum: 86400 }) @IsOptional() @IsInt() @Min(60) @Max(86400) token_lifetime?: number;
  @ApiPropertyOptional({ default: false }) @IsOptional() @IsBoolean() allow_offline_access?: boolean;
}

/** Like @IsOptional() but for an absent field only: `null` is validated (and refused), none of these columns holds it. */
const IsOptionalNotNull = () => ValidateIf((_, value) => value !== undefined);

export class UpdateApiDto {
  @ApiPropertyOptional() @IsOptionalNotNull() @IsString() @MinLength(1) @MaxLength(255) name?: string;
  @ApiPropertyOptional({ type: [ApiScopeDto] }) @IsOptionalNotNull() @IsArray() @ArrayMaxSize(200) @IsObject({ each: true }) @ValidateNested({ each: true }) @Type(() => ApiScopeDto) scopes?: ApiScopeDto[];
  @ApiPropertyOptional({ minimum: 60, maximum: 86400 }) @IsOptionalNotNull() @IsInt() @Min(60) @Max(86400) token_lifetime?: number;
  @ApiPropertyOptional() @IsOptionalNotNull() @IsBoolean() allow_offline_access?: boolean;
}

export class ApiView {
  @ApiProperty() id: string;
  @ApiProperty() identifier: string;
  @ApiProperty() name: string;
  @ApiProperty({ type: [ApiScopeDto] }) scopes: ApiScopeDto[];
  @ApiProperty() token_lifetime: number;
  @ApiProperty() allow_offline_access: boolean;
  @ApiProperty({ description: 'the admin API itself' }) is_system: boolean;
  @ApiProperty() created_at: string;
  @ApiProperty() updated_at: string;

  static of(a: Api): ApiView {
    return {
      id: a.id, identifier: a.identifier, name: a.name, scopes: a.scopes, token_lifetime: a.token_lifetime,
      allow_offline_access: a.allow_offline_access, is_system: a.is_system,
      created_at: a.created_at.toISOString(), updated_at: a.updated_at.toISOString(),
    };
  }
}

export class CreateClientGrantDto {
  @ApiProperty() @IsString() @MinLength(1) @MaxLength(128) client_id: string;
  @ApiProperty({ description: 'the identifier of a registered API' }) @IsString() @MinLength(1) @MaxLength(512) audience: string;
  @ApiProperty({ type: [String], example: ['read:orders'] })
  @IsArray() @ArrayMaxSize(200) @IsString({ each: true }) @MaxLength(128, { each: true }) scope: string[];
}

export class ClientGrantView {
  @ApiProperty() id: string;
  @ApiProperty() client_id: string;
  @ApiProperty() audience: string;
  @ApiProperty({ type: [String] }) scope: string[];
  @ApiProperty() created_at: string;

  static of(g: ClientGrant, audience: string): ClientGrantView {
    return { id: g.id, client_id: g.client_id, audience, scope: g.scope, created_at: g.created_at.toISOString() };
  }
}
