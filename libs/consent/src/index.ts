export { ConsentModule } from './consent.module';
export { ConsentService, ConsentRequest } from './consent.service';
export { Consent, ConsentScopes } from './consent.entity';
export { OIDC_SCOPE_DESCRIPTIONS } from './scope-descriptions';
