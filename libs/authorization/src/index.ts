export { AuthorizationModule } from './authorization.module';
export { AuthorizationService, CODE_TTL_S } from './authorization.service';
export { AuthorizationCode } from './authorization-code.entity';
export { verifyPkce } from './pkce';
export { OIDC_SCOPES } from './authorize-request';
