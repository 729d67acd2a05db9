export { TokenModule } from './token.module';
export { GrantHandler, GrantRegistry, TokenRequest, TokenResponse } from './grant-handler';
export { TokenIssuer, AccessTokenSpec } from './token-issuer';
export { BearerGuard, BearerAudience, BearerToken, CurrentToken, RequireScopes } from './bearer.guard';
export { parseScope, requestedAudience } from './token-params';
