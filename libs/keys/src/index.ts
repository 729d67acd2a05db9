export { KeysModule } from './keys.module';
export { KeysService, KeyView, SigningAlg, SIGNING_ALGS } from './keys.service';
export { SigningKey } from './signing-key.entity';
