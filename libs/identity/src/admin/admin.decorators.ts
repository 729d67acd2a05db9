import { applyDecorators, UseGuards, UsePipes, ValidationPipe } from '@nestjs/common';
import { ApiBearerAuth, ApiForbiddenResponse, ApiTags, ApiUnauthorizedResponse } from '@nestjs/swagger';
import { BearerAudience, BearerGuard } from '@idp/token';

/**
 * The admin API's validation of its DTOs (class-validator): unknown properties refused, each bad
 * field named. Bound to the admin controllers, not to every route: the protocol endpoints check
 * their form bodies themselves (OAuthFormGuard), with no per-parameter pipe on their hot path.
 */
export const ADMIN_VALIDATION = new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true, stopAtFirstError: false });

/**
 * Marks a controller as part of the admin API: bearer access tokens with `aud = $ISSUER/admin`,
 * and its DTOs validated (ADMIN_VALIDATION); each route adds `@RequireScopes(...)`. Customer
 * modules use it for their own admin routes.
 */
export function AdminApi(tag: string) {
  return applyDecorators(
    ApiTags(tag),
    ApiBearerAuth(),
    ApiUnauthorizedResponse({ description: 'missing or invalid access token' }),
    ApiForbiddenResponse({ description: 'insufficient_scope' }),
    BearerAudience((c) => c.adminAudience),
    UseGuards(BearerGuard),
    UsePipes(ADMIN_VALIDATION),
  );
}
