export { TokenModule } from './token.module';
export { GrantHandler, GrantRegistry, TokenRequest, TokenResponse } from './grant-handler';
export { TokenIssuer, AccessTokenSpec, ID_TOKEN_LIFETIME } from './token-issuer';
export { BearerGuard, BearerAudience, BearerToken, CurrentToken, RequireScopes } from './bearer.guard';
export { RevocationService } from './revocation.service';
export { TokenCustomizer, TokenCustomizerContext, PROTECTED_CLAIMS } from './token-customizer';
export { RefreshToken } from './refresh-token.entity';
export { RevokedToken } from './revoked-token.entity';
export { grantedScopes, parseScope, requestedAudience } from './token-params';
