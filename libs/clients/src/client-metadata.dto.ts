import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, IsArray, IsBoolean, IsObject, IsOptional, IsString, MaxLength } from 'class-validator';
import type { Client } from './client.entity';

/** RFC 7591 §2 client metadata, plus our extensions, as the admin API accepts it. */
export class ClientMetadataDto {
  @ApiPropertyOptional({ maxLength: 255 }) @IsOptional() @IsString() @MaxLength(255) client_name?: string;
  @ApiPropertyOptional({ type: [String], description: 'exact-match redirect URIs' })
  @IsOptional() @IsArray() @ArrayMaxSize(50) @IsString({ each: true }) @MaxLength(2048, { each: true }) redirect_uris?: string[];
  @ApiPropertyOptional({ type: [String] })
  @IsOptional() @IsArray() @ArrayMaxSize(50) @IsString({ each: true }) @MaxLength(2048, { each: true }) post_logout_redirect_uris?: string[];
  @ApiPropertyOptional({ type: [String], default: ['authorization_code'] })
  @IsOptional() @IsArray() @ArrayMaxSize(10) @IsString({ each: true }) @MaxLength(255, { each: true }) grant_types?: string[];
  @ApiPropertyOptional({ type: [String], default: ['code'] })
  @IsOptional() @IsArray() @ArrayMaxSize(5) @IsString({ each: true }) @MaxLength(64, { each: true }) response_types?: string[];
  @ApiPropertyOptional({ default: 'client_secret_basic', example: 'client_secret_basic' })
  @IsOptional() @IsString() @MaxLength(64) token_endpoint_auth_method?: string;
  @ApiPropertyOptional({ type: Object, description: 'JWK Set of the client (private_key_jwt)' }) @IsOptional() @IsObject() jwks?: { keys: Record<string, unknown>[] };
  @ApiPropertyOptional({ maxLength: 2048 }) @IsOptional() @IsString() @MaxLength(2048) jwks_uri?: string;
  @ApiPropertyOptional({ description: 'space-separated scopes the client may request' }) @IsOptional() @IsString() @MaxLength(2048) scope?: string;
  @ApiPropertyOptional({ default: false, description: 'skips the consent page' }) @IsOptional() @IsBoolean() first_party?: boolean;
  @ApiPropertyOptional({ type: [String], description: 'origins allowed to call the token endpoint (CORS)' })
  @IsOptional() @IsArray() @ArrayMaxSize(50) @IsString({ each: true }) @MaxLength(2048, { each: true }) allowed_origins?: string[];
  @ApiPropertyOptional({ default: true }) @IsOptional() @IsBoolean() refresh_token_rotation?: boolean;
}

/** What the admin API answers for a client. `client_secret` only at creation and rotation. */
export class ClientView {
  @ApiProperty() client_id: string;
  @ApiProperty({ description: 'seconds since the epoch' }) client_id_issued_at: number;
  @ApiPropertyOptional({ description: 'only in the response that created or rotated it' }) client_secret?: string;
  @ApiPropertyOptional({ description: '0: the secret does not expire' }) client_secret_expires_at?: number;
  @ApiProperty({ nullable: true, type: String }) client_name: string | null;
  @ApiProperty({ type: [String] }) redirect_uris: string[];
  @ApiProperty({ type: [String] }) post_logout_redirect_uris: string[];
  @ApiProperty({ type: [String] }) grant_types: string[];
  @ApiProperty({ type: [String] }) response_types: string[];
  @ApiProperty() token_endpoint_auth_method: string;
  @ApiPropertyOptional({ type: Object }) jwks?: { keys: Record<string, unknown>[] };
  @ApiPropertyOptional() jwks_uri?: string;
  @ApiPropertyOptional() scope?: string;
  @ApiProperty() first_party: boolean;
  @ApiProperty({ type: [String] }) allowed_origins: string[];
  @ApiProperty() refresh_token_rotation: boolean;

  static of(c: Client, secret?: string): ClientView {
    const view: ClientView = {
      client_id: c.client_id,
      client_id_issued_at: c.client_id_issued_at,
      client_name: c.client_name,
      redirect_uris: c.redirect_uris,
      post_logout_redirect_uris: c.post_logout_redirect_uris,
      grant_types: c.grant_types,
      response_types: c.grant_types.includes('authorization_code') ? ['code'] : [],
      token_endpoint_auth_method: c.token_endpoint_auth_method,
      first_party: c.first_party,
      allowed_origins: c.allowed_origins,
      refresh_token_rotation: c.refresh_token_rotation,
    };
    if (c.jwks) view.jwks = c.jwks;
    if (c.jwks_uri) view.jwks_uri = c.jwks_uri;
    if (c.scope) view.scope = c.scope;
    if (secret) {
      view.client_secret = secret;
      view.client_secret_expires_at = 0;
    }
    return view;
  }
}
