export { KeysModule } from './keys.module';
export { KeysService, KeyView, SigningAlg, SIGNING_ALGS, ACTIVATION_LEAD_MS, JWKS_MAX_AGE_S } from './keys.service';
export { KeyStatus, SigningKey } from './signing-key.entity';
