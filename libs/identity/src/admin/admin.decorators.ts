import { applyDecorators, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiForbiddenResponse, ApiTags, ApiUnauthorizedResponse } from '@nestjs/swagger';
import { BearerAudience, BearerGuard } from '@idp/token';

/**
 * Marks a controller as part of the admin API: bearer access tokens with `aud = $ISSUER/admin`;
 * each route adds `@RequireScopes(...)`. Customer modules use it for their own admin routes.
 */
export function AdminApi(tag: string) {
  return applyDecorators(
    ApiTags(tag),
    ApiBearerAuth(),
    ApiUnauthorizedResponse({ description: 'missing or invalid access token' }),
    ApiForbiddenResponse({ description: 'insufficient_scope' }),
    BearerAudience((c) => c.adminAudience),
    UseGuards(BearerGuard),
  );
}
